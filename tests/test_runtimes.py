"""The runtime registry: how validation and the measurements find a backend."""

import numpy as np
import pytest

from dlmark import config as dlconfig, runtimes, variants
from dlmark.runtimes import base


def test_every_backend_is_found_by_its_own_names():
    assert runtimes.known() == [("mxnet", "float32"), ("mxnet", "int8"), ("onnxruntime", "float32")]
    for runtime, precision in runtimes.known():
        backend = runtimes.get(runtime, precision)
        assert (backend.runtime, backend.precision) == (runtime, precision)
    assert runtimes.REFERENCE in runtimes.known()


def test_an_unknown_variant_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown variant tensorrt/int4; known: mxnet/float32, mxnet/int8"):
        runtimes.get("tensorrt", "int4")


def test_importing_the_registry_imports_no_framework():
    import subprocess
    import sys

    code = (
        "import sys; import dlmark.runtimes, dlmark.variants, dlmark.config; "
        "loaded = {'mxnet', 'onnxruntime', 'onnx'} & set(sys.modules); assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def a_new_runtime():
    """A runtime added as the README says: one Backend subclass, registered."""

    @base.register
    class Doubled(base.Backend):
        runtime, precision = "doubling", "float32"
        device_kinds = frozenset({"cpu"})
        unsupported_device_reason = "CPU only"

        def load(self, spec):
            return lambda x: np.repeat(x.reshape(len(x), -1)[:, :10], 2, axis=1)

        def timed_call(self, spec, batch_size, device):
            return lambda: None

    yield Doubled
    del base._REGISTRY["doubling", "float32"]


def test_a_new_runtime_is_one_registered_class(a_new_runtime, tmp_path):
    config = {"models": ["resnet18_v1"], "batch_sizes": [1], "devices": ["cpu"],
              "variants": [{"runtime": "doubling", "precision": "float32"}]}
    dlconfig.check(config, dlconfig.load_schema(dlconfig.SCHEMA), gpu_count=0)  # validation knows it
    with pytest.raises(dlconfig.ConfigError, match="doubling/float32 does not run on a GPU: CPU only"):
        dlconfig.check(config | {"devices": ["gpu0"]}, dlconfig.load_schema(dlconfig.SCHEMA), gpu_count=1)
    spec = variants.VariantSpec("resnet18_v1", "doubling", "float32", str(tmp_path), 1)
    assert variants.load(spec)(np.ones((2, 3, 4, 4), np.float32)).shape == (2, 20)
