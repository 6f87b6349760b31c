import mxnet as mx
import pytest
from mxnet.gluon import nn
from mxnet.gluon.model_zoo import vision

from dlmark import models


def test_shipped_table_lists_exactly_mxnets_model_zoo():
    with pytest.raises(ValueError) as info:
        vision.get_model("no-such-model")
    mxnet_names = {line.strip() for line in str(info.value).splitlines()[1:]}
    assert set(models.zoo()) == mxnet_names


def test_unknown_model_suggests_close_names_and_lists_all():
    with pytest.raises(models.UnknownModelError) as info:
        models.model_info("resnet18v1")
    message = str(info.value)
    assert "Did you mean resnet18_v1" in message
    assert "squeezenet1.1" in message  # the full list follows


def test_inception_has_its_own_input_size():
    assert models.input_shape("inceptionv3", 4) == (4, 3, 299, 299)
    assert models.input_shape("resnet18_v1", 2) == (2, 3, 224, 224)


def test_flop_count_equals_the_hand_count():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, kernel_size=3, padding=1), nn.Conv2D(4, kernel_size=1, groups=2), nn.Dense(5))
    net.initialize()
    symbol = net(mx.sym.var("data"))
    # conv 3->8, 3x3, 10x10 output: 8*3*9*100 MACs; grouped 1x1 conv 8->4 in
    # 2 groups: 4*(8/2)*100 MACs; dense 400->5: 2000 MACs. 2 FLOPs per MAC.
    expected = 2 * (8 * 3 * 9 * 100 + 4 * 4 * 100 + 400 * 5)
    assert models.count_flops(symbol, (1, 3, 10, 10)) == expected


def test_resnet18_flops_match_its_published_cost():
    # ResNet-18 is known as 1.8 G multiply-accumulates per 224x224 image.
    assert models.gflops_per_image("resnet18_v1") == pytest.approx(3.63, abs=0.05)
    assert models.gflops_per_image("inceptionv3") > 3 * models.gflops_per_image("resnet18_v1")


@pytest.mark.parametrize("name", ["resnet18_v1", "mobilenetv2_0.25", "inceptionv3", "vgg11_bn"])
def test_the_gflops_table_equals_counting_on_the_graph(name):
    assert models.gflops_per_image(name) == pytest.approx(models.count_gflops(name), abs=1e-6)


def test_every_zoo_model_has_its_gflops_in_the_table():
    assert set(models._gflops_table()) == set(models.zoo())
