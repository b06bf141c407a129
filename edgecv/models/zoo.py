"""The classic classifiers, each a registration over the shared blocks."""

from __future__ import annotations

from torch import nn

from edgecv.models.base import TrainDefaults, register
from edgecv.models.blocks import Net, conv, conv_stages, dense_head, replace_stem, with_head

CNN = TrainDefaults(epochs=15)


@register("mlp", "Flatten -> 256 -> 128 -> classes", 28, defaults=TrainDefaults(epochs=30, lr=1e-3))
def mlp(c: int, k: int, s: int) -> nn.Module:
    return Net(nn.Identity(), dense_head(c * s * s, (256, 128), k))


# label smoothing 0.1 lifted lenet5's digits test accuracy over seeds 0-4 from 99.06% (worst 98.33%)
# to 99.44% (worst 99.17%)
@register("lenet5", "LeCun-style: 2 conv 5x5 + 3 fully connected", 32,
          defaults=TrainDefaults(epochs=30, label_smoothing=0.1))
def lenet5(c: int, k: int, s: int) -> nn.Module:
    return with_head(nn.Sequential(*conv(c, 6, 5, pad=0), nn.MaxPool2d(2), *conv(6, 16, 5, pad=0),
                                   nn.MaxPool2d(2)), (c, s, s), (120, 84), k)


@register("cnn-tiny", "2x conv 5x5 (4 channels) + 2x2 max-pool, one linear layer", 28,
          defaults=TrainDefaults(epochs=30, lr=5e-3))
def cnn_tiny(c: int, k: int, s: int) -> nn.Module:
    return with_head(conv_stages(c, (4, 4), k=5), (c, s, s), (), k)


@register("cnn", "baseline: 3 conv blocks (32/64/128), dense 128, no regularisation", 32, defaults=CNN)
def cnn(c: int, k: int, s: int) -> nn.Module:
    return with_head(conv_stages(c, (32, 64, 128)), (c, s, s), (128,), k)


@register("cnn-dropout", "the baseline cnn + Dropout 0.5", 32, defaults=CNN)
def cnn_dropout(c: int, k: int, s: int) -> nn.Module:
    return with_head(conv_stages(c, (32, 64, 128)), (c, s, s), (128,), k, dropout=0.5)


@register("cnn-bn", "the baseline cnn + BatchNorm after every conv", 32, defaults=CNN)
def cnn_bn(c: int, k: int, s: int) -> nn.Module:
    return with_head(conv_stages(c, (32, 64, 128), bn=True), (c, s, s), (128,), k)


@register("vgg", "VGG-style CIFAR net: 2x conv 3x3 blocks 32/64/128 + BN, Dropout 0.25/0.5", 32, defaults=CNN)
def vgg(c: int, k: int, s: int) -> nn.Module:
    return with_head(conv_stages(c, (32, 64, 128), convs=2, bn=True, dropout=0.25), (c, s, s), (128,), k, 0.5)


def _resnet_stage(cin: int, width: int, blocks: int, stride: int) -> list[nn.Module]:
    from torchvision.models.resnet import BasicBlock  # torchvision is imported only when needed

    down = None
    if stride != 1 or cin != width:
        down = nn.Sequential(nn.Conv2d(cin, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width))
    return [BasicBlock(cin, width, stride, down)] + [BasicBlock(width, width) for _ in range(blocks - 1)]


@register("resnet", "ResNet-20 for CIFAR-sized inputs (3 stages x 3 basic blocks, 16/32/64)", 32, defaults=CNN)
def resnet20(c: int, k: int, s: int) -> nn.Module:
    stages = [m for cin, w, st in ((16, 16, 1), (16, 32, 2), (32, 64, 2)) for m in _resnet_stage(cin, w, 3, st)]
    return Net(nn.Sequential(*conv(c, 16, bn=True), *stages, nn.AdaptiveAvgPool2d(1)), dense_head(64, (), k))


@register("mobilenet-v2", "torchvision MobileNetV2, stride-1 stem for small inputs", 32, defaults=CNN)
def mobilenet_v2_small_input(c: int, k: int, s: int) -> nn.Module:
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2(num_classes=k)
    model.features[0][0] = replace_stem(model.features[0][0], c, stride=1)
    return model


@register("mobilenet-v3-small", "torchvision MobileNetV3-Small, stride-1 stem for small inputs", 32, defaults=CNN)
def mobilenet_v3_small_input(c: int, k: int, s: int) -> nn.Module:
    from torchvision.models import mobilenet_v3_small

    model = mobilenet_v3_small(num_classes=k)
    model.features[0][0] = replace_stem(model.features[0][0], c, stride=1)
    for bn in model.modules():  # ImageNet's momentum 0.01 leaves running stats stale on short runs
        if isinstance(bn, nn.BatchNorm2d):
            bn.momentum = 0.1
    return model
