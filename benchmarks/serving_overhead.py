"""The serving loop's cost: LoadGen's SingleStream and Offline against the same calls timed bare.

In one fresh process per model: the model built for one batch size (and
for batch 1), then rounds of an Offline and a SingleStream run through
the dynamic batcher. Each run is bracketed by the same call timed bare
(what the throughput sweep times, `serving_child.direct_timing`, as in
every default-run row), so that a shared machine's drift hits both
alike. Each round gives two ratios, Offline's samples per second over
the bare loop's images per second at the batch, and SingleStream's p90
over the bare batch-1 calls' p90; the medians over the rounds are the
loop's overhead, measured more times than one row measures it.

    python benchmarks/serving_overhead.py [--models squeezenet1.1 mobilenet1.0] [--batch 4] [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from dlmark import config as dlconfig
from dlmark import hardware
from dlmark.measure import launchers, timing
from dlmark.measure.batcher import BatcherSettings
from dlmark.scenarios import serving_child
from dlmark.specs import Measured, identity


def rounds(args: tuple[str, int, int, int, float]) -> dict:
    model, batch, threads, count, seconds = args
    from dlmark import runtimes, variants
    from dlmark.measure.child import limit_threads

    limit_threads(threads)
    measured = Measured(model=model, device="cpu", runtime="mxnet", precision="float32", threads=threads,
                        variant_dir="")
    calls = runtimes.get("mxnet", "float32").batch_calls(variants.variant_of(measured), [1, batch], "cpu")
    config = {"measure": {}}
    for call in calls.values():
        for _ in range(5):
            call()
    sizing = timing.time_block(calls[batch], 1.0)  # Offline's expected rate; a query that ends early is asked again
    expected = 1.25 * batch * len(sizing) / sum(sizing)
    out = []
    with tempfile.TemporaryDirectory() as logs:
        for i in range(count):
            common = dict(**identity(measured), machine="bench", min_duration_s=seconds, official_length=False,
                          budget=dlconfig.budget(config, model), noise=dlconfig.noise_policy({}), log_dir=logs)
            offline = serving_child.ServingSpec(**common, scenario="Offline", min_queries=1,
                                                batcher=BatcherSettings(batch, 0.002, only_largest=True),
                                                target_qps=expected)
            served = serving_child.run_scenario(offline, {batch: calls[batch]})
            single = serving_child.ServingSpec(**common, scenario="SingleStream", min_queries=100,
                                               batcher=BatcherSettings(1, 0.0))
            stream = serving_child.run_scenario(single, {1: calls[1]})
            run, direct = served["runs"][served["sustained"]], served["direct"][served["sustained"]]
            stream_run, stream_direct = stream["runs"][0], stream["direct"][0]
            out.append({
                "offline_ratio": run["samples_per_second"] / direct["samples_per_second"],
                "offline": run["samples_per_second"], "bare": direct["samples_per_second"],
                "single_p90_ratio": stream_run["latency_ms"]["p90"] / stream_direct["latency_ms_p90"],
                "single_p90_ms": stream_run["latency_ms"]["p90"], "bare_p90_ms": stream_direct["latency_ms_p90"],
                "valid": run["validity"] == stream_run["validity"] == "VALID",
            })
            print(f"round {i}: {out[-1]}", flush=True)
    return {"rounds": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["squeezenet1.1", "mobilenet1.0"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    threads = hardware.resolve_threads(args.threads)
    print(f"CPU: {hardware.device_name('cpu')}, {threads} thread(s), batch {args.batch}", flush=True)
    from serving_overhead import rounds as importable_rounds  # the child imports it by name, not as __main__

    for model in args.models:
        outcome = launchers.run_isolated(importable_rounds, (model, args.batch, threads, args.rounds, args.seconds))
        if outcome.value is None:
            print(f"{model}: {outcome.status} {outcome.error}")
            continue
        found = outcome.value["rounds"]
        offline = statistics.median(r["offline_ratio"] for r in found)
        single = statistics.median(r["single_p90_ratio"] for r in found)
        each = ", ".join(f"{r['offline_ratio']:.3f}" for r in found)
        print(f"{model}: Offline / bare loop at batch {args.batch}: median {offline:.3f} "
              f"(rounds {each}); SingleStream p90 / bare p90: "
              f"median {single:.3f}; all VALID: {all(r['valid'] for r in found)}")


if __name__ == "__main__":
    main()
