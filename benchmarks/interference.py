"""A busy machine: does any disturbed row pass as plain ok?

Runs the default config twice in scratch folders: once on the quiet
machine, then again with one CPU-bound process spinning through the first
half of the run (half the quiet run's wall time). Every row of the busy run
whose status is ok must lie within 10% of the quiet run's throughput; a row
further away is a silently wrong row (target: none).

    python benchmarks/interference.py [--quiet DIR] [--busy DIR] [--config config.yaml]

--quiet may point at a finished run of the same config to reuse it;
--report-only reports on a finished pair again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from dlmark.results import compare

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
KEYS = ["machine", "device", "runtime", "precision", "model", "batch_size"]


def run(workdir: Path, config: Path) -> float:
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(config, workdir / "config.yaml")
    command = [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "1",
               "--resources", "gpu=1", "--quiet"]
    started = time.monotonic()
    with open(workdir / "run.log", "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quiet", type=Path, default=Path("bench/interference-quiet"))
    parser.add_argument("--busy", type=Path, default=Path("bench/interference-busy"))
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--report-only", action="store_true", help="report on finished --quiet and --busy runs")
    args = parser.parse_args()

    quiet_csv = args.quiet / "results/throughput.csv"
    if quiet_csv.exists():
        quiet_wall = json.loads((args.quiet / "wall.json").read_text())["seconds"]
        print(f"quiet run: reusing {args.quiet} ({quiet_wall:.0f} s)", flush=True)
    else:
        quiet_wall = run(args.quiet, args.config)
        (args.quiet / "wall.json").write_text(json.dumps({"seconds": quiet_wall}))
        print(f"quiet run: {quiet_wall:.0f} s", flush=True)

    window = args.busy / "busy.json"
    if args.report_only:
        busy_until = pd.Timestamp(json.loads(window.read_text())["busy_until"])
    else:
        shutil.rmtree(args.busy, ignore_errors=True)
        busy_for = quiet_wall / 2
        spin = f"import time\nend = time.time() + {busy_for}\nwhile time.time() < end: pass"
        burner = subprocess.Popen([sys.executable, "-c", spin])
        busy_until = pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=busy_for)
        print(f"busy run: one CPU-bound process for the first {busy_for:.0f} s", flush=True)
        try:
            busy_wall = run(args.busy, args.config)
        finally:
            burner.kill()
        window.write_text(json.dumps({"busy_until": busy_until.isoformat(), "seconds": busy_wall}))
        print(f"busy run: {busy_wall:.0f} s", flush=True)

    quiet = pd.read_csv(quiet_csv)
    busy = pd.read_csv(args.busy / "results/throughput.csv")
    both = busy.merge(quiet, on=KEYS, suffixes=("", "_quiet"))
    both = both[both["status_quiet"] == "ok"]
    both["off"] = (both["throughput"] / both["throughput_quiet"] - 1).abs()
    measured = both[both["status"].isin(["ok", "noisy"])]
    wrong = measured[(measured["status"] == "ok") & (measured["off"] > 0.10)]
    started = pd.to_datetime([
        json.loads((args.busy / "results/raw" / row["machine"] / "throughput" / row["device"]
                    / f"{row['runtime']}-{row['precision']}" / row["model"] / f"bs{row['batch_size']}.json")
                   .read_text())["started_at"]
        for _, row in measured.iterrows()
    ])
    during = measured[started < busy_until]
    print(f"rows begun while the CPU-bound process ran: {len(during)}, by status: "
          f"{during['status'].value_counts().to_dict()}")
    counts = busy["status"].value_counts().to_dict()
    remeasured = int((busy["remeasured"] > 0).sum())
    print(f"busy run statuses: {counts}; rows with a remeasured process: {remeasured} "
          f"({int(busy['remeasured'].sum())} processes measured again)")
    noisy = measured[measured["status"] == "noisy"]
    if len(noisy):
        print(f"noisy rows: median {noisy['off'].median():.0%} away from the quiet run "
              f"(max {noisy['off'].max():.0%})")
    ok = measured[measured["status"] == "ok"]
    print(f"ok rows: median {ok['off'].median():.1%} away from the quiet run (max {ok['off'].max():.1%})")
    # The quiet run drifts too (dlmark.measure.drift): a row whose interval holds the quiet row's, or the
    # other way round, does not claim anything the quiet run contradicts.
    apart = compare.intervals_apart(wrong, "", "_quiet")
    # A disturbance only takes time from a row: one faster than the quiet run is the VM's own drift.
    slower = int((wrong["throughput"] < wrong["throughput_quiet"]).sum())
    print(f"silently wrong rows (ok but > 10% away from the quiet run): {len(wrong)} of {len(measured)} "
          f"(target 0); of them, with 95% intervals apart from the quiet row's: {int(apart.sum())}; "
          f"slower than the quiet run: {slower}")
    for _, row in wrong.iterrows():
        print(f"  {row['model']} batch {row['batch_size']} {row['runtime']}/{row['precision']}: "
              f"{row['throughput']:.1f} [{row['throughput_ci95_low']:.1f}, {row['throughput_ci95_high']:.1f}] vs "
              f"{row['throughput_quiet']:.1f} [{row['throughput_ci95_low_quiet']:.1f}, "
              f"{row['throughput_ci95_high_quiet']:.1f}] img/s quiet, machine_speed "
              f"{row['machine_speed']:.2f} vs {row['machine_speed_quiet']:.2f}, cpu_share "
              f"{row['cpu_share']:.2f}, interference {row['interference']:.2f}"
              + (" (begun while the CPU-bound process ran)" if row.name in during.index else " (begun after it ended)"))


if __name__ == "__main__":
    main()
