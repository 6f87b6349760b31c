"""Check dlmark on a GPU node that has no network: `make gpu-check`, in the bundle folder.

Installs the carried wheels into .gpu-site (no index, no network), runs the
workflow on gpu0 with the bundled variant folders (torch float32, bfloat16
and float16, and ONNX Runtime float32/float16 when its CUDA provider is
installed), then prints every row and one verdict line per variant. Exits 1
when anything failed or ran anywhere but the GPU: it never passes quietly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
SITE = HERE / ".gpu-site"
BUDGET_SECONDS = 480


def fail(message: str) -> None:
    print(f"GPU CHECK FAILED: {message}", flush=True)
    sys.exit(1)


def install() -> dict[str, str]:
    wheels = sorted(str(p) for p in (HERE / "wheels").glob("*.whl"))
    if not wheels:
        fail(f"no wheels in {HERE / 'wheels'}: run `make gpu-bundle` on a machine with the package index")
    if not SITE.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                        "--target", str(SITE), *wheels], check=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SITE), str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(SITE / "bin"), env["PATH"]])
    return env


def config(env: dict[str, str]) -> Path:
    """gpu/config.yaml, with ONNX Runtime's variants when it can run on CUDA here."""
    import yaml

    settings = yaml.safe_load((HERE / "gpu" / "config.yaml").read_text())
    probe = "import onnxruntime as o; print('CUDAExecutionProvider' in o.get_available_providers())"
    has_cuda = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    if has_cuda.stdout.strip() == "True":
        settings["variants"] += [{"runtime": "onnxruntime", "precision": p} for p in ("float32", "float16")]
    else:
        print("onnxruntime has no CUDA execution provider here: its GPU variants are not checked", flush=True)
    path = HERE / "config.gpu.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def verdicts() -> bool:
    import pandas as pd

    throughput = pd.read_csv(HERE / "results" / "throughput.csv")
    largest = pd.read_csv(HERE / "results" / "max_batch_size.csv")
    columns = ["model", "device_name", "runtime", "precision", "batch_size", "status", "throughput",
               "throughput_ci95_low", "throughput_ci95_high", "peak_memory_mb", "energy_j_per_image", "power_w_mean",
               "energy_note", "error"]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(throughput[columns].to_string(index=False))
        print(largest[["model", "runtime", "precision", "max_batch_size", "memory_limit_mb",
                       "memory_at_max_mb", "reached_upper_bound", "status"]].to_string(index=False))
    good = True
    for (runtime, precision), rows in throughput.groupby(["runtime", "precision"]):
        bad = rows[~rows["status"].isin(["ok", "noisy"])]
        on_cpu = rows[~rows["device"].astype(str).str.startswith("gpu")]
        if len(bad) or len(on_cpu):
            good = False
            why = "; ".join(sorted(set(bad["error"].dropna().astype(str).str[:160]))) or "not on a GPU"
            print(f"FAIL {runtime}/{precision}: of {len(rows)} rows, {len(bad)} not measured and "
                  f"{len(on_cpu)} not on a GPU: {why}")
            continue
        speed = rows.sort_values("batch_size").groupby("model").tail(1)
        reference = throughput[(throughput["runtime"] == runtime) & (throughput["precision"] == "float32")]
        ratio = ""
        if precision != "float32" and len(reference):
            both = speed.merge(reference, on=["model", "batch_size"], suffixes=("", "_32"))
            ratio = ", ".join(f"{m} x{t / t32:.2f}" for m, t, t32 in
                              zip(both["model"], both["throughput"], both["throughput_32"]))
            ratio = f"; over {runtime}/float32 at the largest batch: {ratio}"
        best = ", ".join(f"{m} {t:,.0f} img/s at batch {b} ({mb:,.0f} MiB)" for m, t, b, mb in
                         zip(speed["model"], speed["throughput"], speed["batch_size"], speed["peak_memory_mb"]))
        found = largest[(largest["runtime"] == runtime) & (largest["precision"] == precision)]
        fits = ", ".join(f"{m} {'>=' if up else ''}{n} ({mb:,.0f} MiB)" for m, n, up, mb in
                         zip(found["model"], found["max_batch_size"], found["reached_upper_bound"],
                             found["memory_at_max_mb"]))
        print(f"OK   {runtime}/{precision} on {rows['device_name'].iloc[0]}: {best}{ratio}; largest batch: {fits}")
    return serving_verdicts() and good


def serving_verdicts() -> bool:
    """The serving rows (MLPerf LoadGen), and FAIL for any LoadGen did not judge VALID."""
    import pandas as pd

    path = HERE / "results" / "serving.csv"
    if not path.exists():
        print("FAIL serving: no results/serving.csv")
        return False
    rows = pd.read_csv(path)
    columns = ["model", "runtime", "precision", "scenario", "status", "loadgen_result", "qps", "latency_ms_p99",
               "latency_bound_ms", "proof_qps", "loadgen_runs", "reasons", "error"]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(rows[columns].to_string(index=False))
    bad = rows[~rows["status"].isin(["ok", "noisy"])]
    for _, row in bad.iterrows():
        print(f"FAIL serving {row['runtime']}/{row['precision']} {row['scenario']}: {row['status']} "
              f"{str(row['reasons'] if pd.notna(row['reasons']) else row['error'])[:200]}")
    for _, row in rows.drop(bad.index).iterrows():
        print(f"OK   serving {row['runtime']}/{row['precision']} {row['scenario']}: {row['qps']:,.0f} queries/s, "
              f"p99 {row['latency_ms_p99']:.2f} ms")
    return bad.empty


def main() -> None:
    os.chdir(HERE)
    try:
        import pynvml

        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() < 1:
            fail("NVML sees no GPU")
    except Exception as exc:  # noqa: BLE001  (any NVML failure means there is no GPU to check)
        fail(f"no NVIDIA GPU visible ({exc})")
    env = install()
    path = config(env)
    started = time.monotonic()
    command = [sys.executable, "-m", "snakemake", "--cores", "4", "--resources", "gpu=1",
               "--configfile", str(path), "--scheduler", "greedy", "--rerun-triggers", "mtime",
               "--keep-going"]
    try:
        run = subprocess.run(command, env=env, timeout=BUDGET_SECONDS)
    except subprocess.TimeoutExpired:
        fail(f"the workflow took longer than {BUDGET_SECONDS} s")
    print(f"workflow finished in {time.monotonic() - started:.0f} s (exit {run.returncode})", flush=True)
    if not (HERE / "results" / "throughput.csv").exists():
        fail("the workflow wrote no results/throughput.csv; see logs/ and the output above")
    if not verdicts() or run.returncode:
        fail("see the FAIL lines and logs/")
    print("GPU CHECK PASSED")


if __name__ == "__main__":
    main()
