"""The pins users install from (pip or conda) must be one and the same set."""

from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def pins_from_requirements():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_environment_yml_pins_equal_requirements_txt():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip_section) == pins_from_requirements()
    assert "python=3.11" in env["dependencies"]


def test_pins_satisfy_the_packages_declared_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {Requirement(p).name.lower(): Requirement(p) for p in pins_from_requirements()}
    declared = project["dependencies"] + [
        d for extra in project["optional-dependencies"].values() for d in extra
    ]
    for spec in map(Requirement, declared):
        pin = pinned.get(spec.name.lower())
        assert pin is not None, f"{spec.name} is declared in pyproject.toml but not pinned"
        version = next(iter(pin.specifier)).version
        assert spec.specifier.contains(version), f"{pin} does not satisfy {spec}"
