"""Fidelity: dlmark's throughput against a bare loop of forward calls.

The bare loop is what a careful person would time by hand: MXNet's own
CPU path (the network hybridized with oneDNN fusion), a few warm-up calls, then N forward calls back to back with a
single synchronisation at the end. dlmark synchronises after every call
(it needs per-call latencies), so this ratio shows what that costs. Both
run in fresh processes with the same thread count, alternated A/B/A/B so
that drift of a shared machine hits both alike.

    python benchmarks/fidelity.py [--models resnet18_v1 mobilenet1.0] [--batch 8] [--pairs 4] [--interleaved 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import yaml

from dlmark import config as dlconfig
from dlmark.measure import child, launchers
from dlmark.scenarios import throughput


def bare_loop(args: tuple[str, int, int, float]) -> dict[str, float]:
    model, batch, threads, seconds = args
    child.limit_threads(threads)
    import mxnet as mx

    from dlmark import models
    from dlmark.runtimes import mxnet_backend

    net = mxnet_backend.reference_net(model, mx.cpu())
    data = mx.nd.random.uniform(shape=models.input_shape(model, batch))
    for _ in range(5):
        net(data)
    mx.nd.waitall()
    # Size the loop to last about as long as dlmark measures.
    t0 = time.perf_counter()
    net(data).wait_to_read()
    calls = max(5, int(seconds / (time.perf_counter() - t0)))
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        net(data)
    mx.nd.waitall()
    elapsed = (time.perf_counter_ns() - t0) / 1e9
    return {"throughput": calls * batch / elapsed, "calls": calls, "seconds": elapsed}


def interleaved(args: tuple[str, int, int, int, int]) -> dict[str, float]:
    """Both timing styles in one process, alternating in short blocks.

    On a shared machine, throughput drifts by several percent from one
    process to the next; alternating blocks of K calls within one process
    exposes both styles to the same drift, so their ratio isolates what
    dlmark's per-call synchronisation and per-call clock reads cost.
    """
    model, batch, threads, blocks, calls = args
    child.limit_threads(threads)
    import mxnet as mx

    from dlmark import models
    from dlmark.runtimes import mxnet_backend

    net = mxnet_backend.reference_net(model, mx.cpu())
    data = mx.nd.random.uniform(shape=models.input_shape(model, batch))
    for _ in range(5):
        net(data).wait_to_read()
    per_call_ns, bare_ns = 0, 0
    for _ in range(blocks):
        t_block = 0
        for _ in range(calls):  # dlmark style: clock, call, sync, clock
            t0 = time.perf_counter_ns()
            net(data).wait_to_read()
            t_block += time.perf_counter_ns() - t0
        per_call_ns += t_block
        t0 = time.perf_counter_ns()  # bare style: calls back to back, one sync
        for _ in range(calls):
            net(data)
        mx.nd.waitall()
        bare_ns += time.perf_counter_ns() - t0
    images = blocks * calls * batch
    return {"dlmark": images / (per_call_ns / 1e9), "bare": images / (bare_ns / 1e9)}


def main() -> None:
    # The child process imports its target by module name; "__main__" would
    # name the runner there, so `measure` takes the loops from this file as a module.
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18_v1", "mobilenet1.0"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--interleaved", type=int, default=5)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="least measuring time of the bare loop"
    )
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    threads = dlconfig.cpu_threads(config)
    for model in args.models:
        measure(model, args, config, threads)


def measure(model: str, args: argparse.Namespace, config: dict, threads: int) -> None:
    from fidelity import bare_loop as importable_bare_loop
    from fidelity import interleaved as importable_interleaved

    spec = throughput.ThroughputSpec(
        model=model,
        device="cpu",
        runtime="mxnet",
        precision="float32",
        batch_size=args.batch,
        machine="fidelity",
        threads=threads,
        variant_dir="",
        budget=dlconfig.budget(config, model),
        noise=dlconfig.noise_policy(config),
    )
    ratios = []
    for pair in range(args.pairs):
        record = throughput.run_throughput(spec)
        seconds = record.measure_seconds / max(record.processes, 1)
        bare = launchers.run_isolated(importable_bare_loop, (model, args.batch, threads, max(seconds, args.seconds)))
        assert bare.value is not None, bare.error
        ratio = record.throughput / bare.value["throughput"]
        ratios.append(ratio)
        print(
            f"{model} pair {pair + 1}: dlmark {record.throughput:.2f} img/s [{record.throughput_ci95_low:.2f}, "
            f"{record.throughput_ci95_high:.2f}] ({record.status}, {record.processes} processes, "
            f"{record.iterations} calls), bare fused loop {bare.value['throughput']:.2f} img/s "
            f"({bare.value['calls']} calls), ratio {ratio:.3f}",
            flush=True,
        )
    inner = []
    for run in range(args.interleaved):
        inter = launchers.run_isolated(importable_interleaved, (model, args.batch, threads, 12, 5))
        assert inter.value is not None, inter.error
        inner.append(inter.value["dlmark"] / inter.value["bare"])
        print(
            f"{model} interleaved run {run + 1} (12 blocks of 5 calls each way, one process): "
            f"per-call sync {inter.value['dlmark']:.2f} img/s, bare {inter.value['bare']:.2f} img/s, "
            f"ratio {inner[-1]:.3f}",
            flush=True,
        )
    print(f"fidelity of {model} at batch {args.batch} (target >= 0.97):")
    if ratios:
        print(
            f"  dlmark's reported throughput vs the bare fused loop in the next process: median "
            f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} pairs)"
        )
    if inner:
        print(
            f"  timing method, interleaved in one process: median {statistics.median(inner):.3f} "
            f"(min {min(inner):.3f}, max {max(inner):.3f}, {len(inner)} processes)"
        )


if __name__ == "__main__":
    main()
