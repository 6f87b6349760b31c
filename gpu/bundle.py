"""Make the folder that checks dlmark on an offline GPU node: `make gpu-bundle`.

    python gpu/bundle.py [OUT]       (default: gpu-bundle)

OUT holds this commit's workflow (git archive of HEAD), Python 3.12 wheels
of what the node lacks (gpu/carry.txt), the variant folders of the models of
gpu/config.yaml prepared here, where MXNet runs (ONNX exports and their gates; the
variants share one export through links), and gpu/config.yaml. On the
node, from OUT: `make gpu-check`. It stays within 60 MB; the build stops
if it would not.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 60
# ONNX Runtime's variants, which gpu/check.py adds where the node's onnxruntime has its CUDA provider.
ORT_VARIANTS = [("onnxruntime", "float32"), ("onnxruntime", "float16")]


def check_config() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "gpu" / "config.yaml").read_text())


def bundled_variants() -> dict[str, list[tuple[str, str]]]:
    """Every variant the check may run, by model: gpu/config.yaml's, their device gates' references, ORT's."""
    from dlmark import config as dlconfig

    settings = check_config()
    return {model: list(dict.fromkeys(dlconfig.gated_variants(settings, model) + ORT_VARIANTS))
            for model in settings["models"]}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def carried() -> list[str]:
    lines = (ROOT / "gpu" / "carry.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def fetch_wheels(into: Path) -> None:
    """Each carried package at the version installed here, as a wheel for CPython 3.12.

    Binary wheels come from the package index; a package published only as
    source (connection-pool, for one) is built here, and must then be pure
    Python to serve 3.12.
    """
    into.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    platform = [flag for p in PLATFORMS for flag in ("--platform", p)]
    download = pip + ["download", "--no-deps", "--only-binary", ":all:", "--python-version", "3.12",
                      "--implementation", "cp", *platform, "--dest", str(into)]
    pins = [f"{name}=={metadata.version(name)}" for name in carried()]
    # One resolver run for them all (a pip start per package took most of a minute); a
    # package with no 3.12 wheel, which pip names, is built here and left out of the next run.
    while pins:
        done = subprocess.run(download + pins, capture_output=True, text=True)
        if done.returncode == 0:
            return
        named = re.search(r"No matching distribution found for (\S+)", done.stderr)
        wanted = {_normal(p.split("==")[0]): p for p in pins}
        pin = wanted.get(_normal(named.group(1).split("==")[0])) if named else None
        if pin is None:
            raise SystemExit(f"pip download failed:\n{done.stderr}")
        _build_pure_wheel(pip, pin, into)
        pins.remove(pin)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _build_pure_wheel(pip: list[str], pin: str, into: Path) -> None:
    """A package published only as source (connection-pool, for one): it must be pure Python to serve 3.12."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(pip + ["wheel", "--no-deps", "--wheel-dir", scratch, pin], check=True)
        (wheel,) = Path(scratch).glob("*.whl")
        if not wheel.name.endswith("-py3-none-any.whl"):
            raise SystemExit(f"{pin}: no Python 3.12 wheel on the index and not pure Python ({wheel.name})")
        shutil.move(str(wheel), into / wheel.name)


def prepare_variants(out: Path) -> None:
    """Variant folders as the workflow's prepare_variant rule writes them, one export shared.

    Beside them, each model's outputs as defined (rule defined_outputs),
    which the node's device gates compare float32 with, since it has no MXNet.
    """
    from dlmark import variants

    for model, listed in bundled_variants().items():
        variants.write_defined_outputs(model, out / "resources" / "variants" / model / "defined_outputs.json")
        shared = None
        for runtime, precision in listed:
            folder = out / "resources" / "variants" / model / f"{runtime}-{precision}"
            # One thread: the gate's verdict does not depend on it, and the rest of the machine stays free.
            spec = variants.VariantSpec(model, runtime, precision, str(folder), 1)
            gate = variants.prepare(spec)
            print(f"{model} {runtime}/{precision}: gate {'passed' if gate['passed'] else 'FAILED'}, "
                  f"top-1 agreement {gate['top1_agreement']:.2f}", flush=True)
            if not gate["passed"]:
                raise SystemExit(f"{model} {runtime}/{precision} failed its gate: not bundled")
            export = folder / "model.onnx"
            if (runtime, precision) != ("onnxruntime", "float16"):  # the float32 export
                if shared is None:
                    shared = export
                else:
                    export.unlink()
                    export.symlink_to(os.path.relpath(shared, folder))


def size_mb(folder: Path) -> float:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="gpu-bundle")
    out = Path(parser.parse_args().out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode:
        print("note: the bundle holds the last commit; uncommitted changes are not in it", file=sys.stderr)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    (out / "REVISION").write_text(commit.stdout)  # the rows' git_commit on the node (dlmark.provenance)
    shutil.rmtree(out / "tests")  # the node runs the workflow, not the test suite
    fetch_wheels(out / "wheels")
    prepare_variants(out)
    total = size_mb(out)
    wheels = size_mb(out / "wheels")
    print(f"{out}: {total:.1f} MB ({wheels:.1f} MB of {len(list((out / 'wheels').glob('*.whl')))} wheels); "
          f"on the node: cd {out.name} && make gpu-check")
    if total > LIMIT_MB:
        raise SystemExit(f"the bundle is {total:.1f} MB, over the {LIMIT_MB} MB a node may be sent")


if __name__ == "__main__":
    main()
