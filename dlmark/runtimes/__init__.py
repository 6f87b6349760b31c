"""Runtime backends, registered by (runtime, precision): see `base`.

Importing the package registers every backend module below; none of them
imports its framework until it is used.
"""

from dlmark.runtimes import mxnet_backend, onnxruntime_backend, torch_backend  # noqa: F401  (they register)
from dlmark.runtimes.base import (
    REFERENCE,
    WEIGHTS_SEED,
    Backend,
    Predict,
    VariantSpec,
    device_reference,
    framework_of,
    get,
    known,
    problems,
)

__all__ = ["REFERENCE", "WEIGHTS_SEED", "Backend", "Predict", "VariantSpec", "device_reference", "framework_of", "get", "known", "problems"]
