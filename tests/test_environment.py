"""The pins users install from (pip or conda) must be one and the same set."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def pins_from_requirements(name="requirements.txt"):
    lines = (ROOT / name).read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def optional_pins():
    return pins_from_requirements("requirements-torch.txt")


def test_environment_yml_pins_equal_requirements_txt():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip_section) == pins_from_requirements()
    assert "python=3.11" in env["dependencies"]


def test_the_venv_holds_the_pins_with_or_without_torch():
    """What runs is what is pinned, after `make test` installed torch as before it.

    torch's install may upgrade a shared dependency; one that mxnet imports
    (setuptools, through distutils) moved every MXNet point's memory by 7.3 MiB.
    """
    from importlib.metadata import PackageNotFoundError, version

    wrong = {}
    for pin in map(Requirement, pins_from_requirements()):
        try:
            installed = version(pin.name)
        except PackageNotFoundError:
            installed = None
        if installed is None or not pin.specifier.contains(installed):
            wrong[pin.name] = (str(pin.specifier), installed)
    assert not wrong, f"installed against pinned: {wrong}; run `make env` again"


def test_pins_satisfy_the_packages_declared_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {Requirement(p).name.lower(): Requirement(p) for p in pins_from_requirements() | optional_pins()}
    declared = project["dependencies"] + [
        d for extra in project["optional-dependencies"].values() for d in extra
    ]
    for spec in map(Requirement, declared):
        pin = pinned.get(spec.name.lower())
        assert pin is not None, f"{spec.name} is declared in pyproject.toml but not pinned"
        version = next(iter(pin.specifier)).version
        assert spec.specifier.contains(version), f"{pin} does not satisfy {spec}"


def imported_distributions():
    """Distributions whose modules the package and the job scripts import."""
    import ast
    import sys
    from importlib.metadata import packages_distributions

    modules = set()
    for path in [*(ROOT / "dlmark").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"dlmark", "__future__"}
    owners = packages_distributions()
    missing = {m for m in third_party if m not in owners}
    assert not missing, f"imported but installed by no distribution: {missing}"
    return {canonical(owners[m][0]) for m in third_party}


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares them (mlcommons_loadgen is mlcommons-loadgen)."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def test_environment_names_every_package_the_code_imports():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    named = {canonical(Requirement(p).name) for p in pip_section}
    optional = {canonical(Requirement(p).name) for p in optional_pins()}  # extras, not in the environment
    imported = imported_distributions()
    assert {"mxnet", "pandas", "onnxruntime", "adjusttext", "torch"} <= imported  # the scan sees the code
    assert imported <= named | optional, f"imported but not in environment.yml: {imported - named - optional}"


def test_post_deploy_script_installs_dlmark_into_a_fresh_environment(tmp_path):
    """What Snakemake runs in a new --use-conda environment, run in a fresh venv."""
    import os
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "venv", tmp_path / "env"], check=True)
    env = {**os.environ, "PATH": f"{tmp_path / 'env' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    script = ROOT / "environment.post-deploy.sh"
    run = subprocess.run(["bash", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    where = subprocess.run(
        [tmp_path / "env" / "bin" / "python", "-c", "import dlmark; print(dlmark.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )
    assert Path(where.stdout.strip()).parent == ROOT / "dlmark"
    # Started anywhere but the checkout, it says where to run from.
    elsewhere = subprocess.run(["bash", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert elsewhere.returncode == 1
    assert "run snakemake from the dlmark folder" in elsewhere.stderr
