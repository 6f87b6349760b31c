"""Memory trials in new processes against trials forked from a warm process: the same peak?

    python benchmarks/fork_memory.py [--variants resources/variants] [--repeats 3]

Needs the prepared variants of a default run (`make run` makes them under
resources/variants). For each point below it runs `memory_trial.run_trial`
`--repeats` times in new processes (`launchers.Fresh`, the framework
imported by each) and as often in children of one warm process
(`launchers.Forker`, the framework imported once), alternating the two,
and prints each way's peak, baseline and seconds a trial.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dlmark import hardware
from dlmark.measure import launchers
from dlmark.scenarios import memory_trial

POINTS = [
    ("resnet18_v1", "mxnet", "float32", 4),
    ("resnet18_v1", "mxnet", "float32", 32),
    ("resnet18_v1", "onnxruntime", "float32", 16),
    ("resnet18_v1", "mxnet", "int8", 1),
    ("squeezenet1.1", "mxnet", "float32", 16),
    ("inceptionv3", "mxnet", "float32", 4),
]


def span(values: list[float], digits: int = 2) -> str:
    low, high = min(values), max(values)
    return f"{low:.{digits}f}" if round(low, digits) == round(high, digits) else f"{low:.{digits}f} to {high:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=Path, default=Path("resources/variants"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0: every physical core, as the config's cpu_threads")
    args = parser.parse_args()

    print("| point | new processes: peak, baseline (MiB), s a trial | forked: peak, baseline, s a trial |")
    print("|---|---|---|")
    for model, runtime, precision, batch in POINTS:
        spec = memory_trial.TrialSpec(
            model=model, device="cpu", runtime=runtime, precision=precision, threads=hardware.resolve_threads(args.threads),
            variant_dir=str(args.variants / model / f"{runtime}-{precision}"), batch_size=batch,
        )
        trials: dict[str, list[tuple[float, float, float]]] = {"fresh": [], "forked": []}
        with launchers.Forker(memory_trial.preload_trial, spec) as warm:
            for _ in range(args.repeats):
                for kind, launcher in (("fresh", launchers.Fresh()), ("forked", warm)):
                    started = time.monotonic()
                    value = launcher.run(memory_trial.run_trial, spec).value
                    if value is None:
                        raise SystemExit(f"{model} {runtime}/{precision} batch {batch}: the trial failed (see above)")
                    trials[kind].append((value["peak_memory_mb"], value["baseline_mb"], time.monotonic() - started))
        cells = [
            f"{span([t[0] for t in ts])}, {span([t[1] for t in ts])}, {span([t[2] for t in ts], 1)} s"
            for ts in trials.values()
        ]
        print(f"| {model} {runtime}/{precision}, batch {batch} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
