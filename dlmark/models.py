"""The model zoo: which models exist, how to build them, what they cost.

The list of models, their families and input sizes comes from the shipped
table of published accuracies (`dlmark/data/gluon_model_zoo_published.csv`),
so validating a config does not need to import MXNet (which would slow
every `snakemake -n`). A unit test keeps that table equal to MXNet's own.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

ZOO_TABLE = "gluon_model_zoo_published.csv"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    input_size: int
    params_million: float
    top1: float
    top5: float


@lru_cache(maxsize=1)
def zoo() -> dict[str, ModelInfo]:
    """Every Gluon model-zoo classifier dlmark knows, by name."""
    text = resources.files("dlmark.data").joinpath(ZOO_TABLE).read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return {
        r["model"]: ModelInfo(
            name=r["model"],
            family=r["family"],
            input_size=int(r["input_size"]),
            params_million=float(r["params_million"]),
            top1=float(r["top1"]),
            top5=float(r["top5"]),
        )
        for r in rows
    }


class UnknownModelError(ValueError):
    pass


def model_info(name: str) -> ModelInfo:
    """Look a model up, or fail with the close matches and the full list."""
    models = zoo()
    if name in models:
        return models[name]
    close = difflib.get_close_matches(name, list(models), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"unknown model '{name}'.{hint} Valid Gluon model-zoo names: {', '.join(sorted(models))}"
    )


def input_shape(name: str, batch_size: int) -> tuple[int, int, int, int]:
    size = model_info(name).input_size
    return (batch_size, 3, size, size)


def build_net(name: str, ctx: Any, params_file: str | None = None) -> Any:
    """A hybridized Gluon network on `ctx`, with weights from `params_file`.

    Without a params file the weights are randomly initialised: speed and
    memory do not depend on the values of the weights, only accuracy does.
    static_alloc/static_shape let MXNet plan memory once and reuse it, the
    way a deployed inference server would run.
    """
    import mxnet as mx
    from mxnet.gluon.model_zoo import vision

    net = vision.get_model(name, pretrained=False)
    if params_file:
        net.load_parameters(params_file, ctx=ctx)
    else:
        # He initialisation keeps activations at unit scale through deep ReLU
        # stacks, so random-weight outputs are informative for correctness gates.
        net.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2), ctx=ctx)
        # Allocate the weights now rather than in the first forward pass, so
        # memory read before that pass includes them, as with loaded weights.
        net.infer_shape(mx.nd.zeros(input_shape(name, 1), ctx=ctx))
        for param in net.collect_params().values():
            param._finish_deferred_init()
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def count_flops(symbol: Any, data_shape: tuple[int, ...], data_name: str = "data") -> float:
    """Floating-point operations of one forward pass, from the graph itself.

    Convolutions and fully connected layers hold nearly all the work of a
    CNN; each multiply-accumulate counts as 2 FLOPs (so a 3x3 convolution
    with C_in=C_out=64 on a 56x56 map is 2*64*64*9*56*56 FLOPs). The count
    comes from the weight and output shapes that MXNet infers for the exact
    graph being timed, so it follows any model without a hand-kept table.
    """
    internals = symbol.get_internals()
    arg_shapes, out_shapes, _ = internals.infer_shape(**{data_name: data_shape})
    shapes = dict(zip(internals.list_arguments(), arg_shapes))
    shapes.update(zip(internals.list_outputs(), out_shapes))
    graph = json.loads(symbol.tojson())
    nodes = graph["nodes"]
    total = 0.0
    for node in nodes:
        if node["op"] not in ("Convolution", "FullyConnected"):
            continue
        weight = shapes[nodes[node["inputs"][1][0]]["name"]]
        out = shapes[node["name"] + "_output"]
        # At each output position a layer does one MAC per weight (all filters);
        # a fully connected layer's "spatial" extent is 1.
        macs_per_output_position = math.prod(weight)
        positions = math.prod(out[2:]) if node["op"] == "Convolution" else 1
        total += 2.0 * macs_per_output_position * positions * out[0]
    return total


GFLOPS_TABLE = "gflops.csv"


@lru_cache(maxsize=1)
def _gflops_table() -> dict[str, float]:
    text = resources.files("dlmark.data").joinpath(GFLOPS_TABLE).read_text(encoding="utf-8")
    return {r["model"]: float(r["gflops_per_image"]) for r in csv.DictReader(text.splitlines())}


def gflops_per_image(name: str) -> float | None:
    """GFLOPs for one image of model `name`.

    Read from dlmark/data/gflops.csv (counted once by `count_gflops`; a test
    keeps the two equal), so measuring needs no MXNet; a model missing from
    the table is counted where MXNet is installed, else left blank.
    """
    if name in _gflops_table():
        return _gflops_table()[name]
    try:
        return count_gflops(name)
    except ImportError:
        return None


def count_gflops(name: str) -> float:
    """GFLOPs for one image, counted on the model's graph.

    The graph is traced symbolically from a fresh, uninitialised block, so
    counting allocates no weights.
    """
    import mxnet as mx
    from mxnet.gluon.model_zoo import vision

    sym = vision.get_model(name, pretrained=False)(mx.sym.var("data"))
    if isinstance(sym, (list, tuple)):
        sym = sym[0]
    return count_flops(sym, input_shape(name, 1)) / 1e9
