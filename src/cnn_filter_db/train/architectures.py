"""Low-resolution CNNs of the paper's own model family (SPEC.md section 1).

"Low resolution" means the ImageNet designs adapted to 8-32 pixel inputs: a 3x3 stride-1
stem and no max-pool in front of the ResNets, no stride-2 stem in the Inception, and
global average pooling before one linear classifier everywhere, so that every network
accepts any input size from 8 pixels up. ``ARCHITECTURES`` is the one registry:
name -> constructor(in_channels, num_classes).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, kernel=3, stride: int = 1, padding=None) -> nn.Sequential:
    """conv (no bias: the batch norm has one) + batch norm + ReLU."""
    if padding is None:
        padding = tuple(k // 2 for k in kernel) if isinstance(kernel, tuple) else kernel // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


# --------------------------------------------------------------------------- ResNet

class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with basic blocks; ``blocks`` per stage at widths 64, 128, 256, 512."""

    def __init__(self, blocks: tuple[int, int, int, int], in_channels: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, cin = [], 64
        for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
            layer = []
            for j in range(n):
                layer.append(BasicBlock(cin, width, stride=2 if i > 0 and j == 0 else 1))
                cin = width
            stages.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet9(in_channels: int, num_classes: int) -> ResNet:
    """Stem + 4 basic blocks (1, 1, 1, 1) + classifier: 9 3x3 convs (plus 3 1x1 projections)."""
    return ResNet((1, 1, 1, 1), in_channels, num_classes)


def resnet14(in_channels: int, num_classes: int) -> ResNet:
    """Stem + 6 basic blocks (1, 1, 2, 2) + classifier: 13 3x3 convs."""
    return ResNet((1, 1, 2, 2), in_channels, num_classes)


def resnet18(in_channels: int, num_classes: int) -> ResNet:
    """Stem + 8 basic blocks (2, 2, 2, 2) + classifier: 17 3x3 convs."""
    return ResNet((2, 2, 2, 2), in_channels, num_classes)


# --------------------------------------------------------------------------- VGG

VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    """VGG with batch norm; max-pools round up (ceil_mode) so that 8-pixel inputs survive
    all five of them, and a single linear classifier after global average pooling."""

    def __init__(self, cfg, in_channels: int, num_classes: int):
        super().__init__()
        layers, cin = [], in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def vgg11_bn(in_channels: int, num_classes: int) -> VGG:
    """VGG-11 with batch norm: 8 3x3 convs."""
    return VGG(VGG11, in_channels, num_classes)


# --------------------------------------------------------------------------- Inception v3

class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _conv_bn(cin, 64, 1)
        self.branch5x5_1 = _conv_bn(cin, 48, 1)
        self.branch5x5_2 = _conv_bn(48, 64, 5)
        self.branch3x3dbl_1 = _conv_bn(cin, 64, 1)
        self.branch3x3dbl_2 = _conv_bn(64, 96, 3)
        self.branch3x3dbl_3 = _conv_bn(96, 96, 3)
        self.branch_pool = _conv_bn(cin, pool_features, 1)

    def forward(self, x):
        pool = nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(pool)], 1)


class InceptionB(nn.Module):
    """Grid reduction 288 -> 768 channels, stride 2 (padded so odd sizes halve cleanly)."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = _conv_bn(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _conv_bn(cin, 64, 1)
        self.branch3x3dbl_2 = _conv_bn(64, 96, 3)
        self.branch3x3dbl_3 = _conv_bn(96, 96, 3, stride=2)

    def forward(self, x):
        pool = nn.functional.max_pool2d(x, 3, stride=2, padding=1)
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))), pool], 1)


class InceptionC(nn.Module):
    """Factorised 7x7 convolutions (1x7 then 7x1)."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = _conv_bn(cin, 192, 1)
        self.branch7x7_1 = _conv_bn(cin, c7, 1)
        self.branch7x7_2 = _conv_bn(c7, c7, (1, 7))
        self.branch7x7_3 = _conv_bn(c7, 192, (7, 1))
        self.branch7x7dbl_1 = _conv_bn(cin, c7, 1)
        self.branch7x7dbl_2 = _conv_bn(c7, c7, (7, 1))
        self.branch7x7dbl_3 = _conv_bn(c7, c7, (1, 7))
        self.branch7x7dbl_4 = _conv_bn(c7, c7, (7, 1))
        self.branch7x7dbl_5 = _conv_bn(c7, 192, (1, 7))
        self.branch_pool = _conv_bn(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for m in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = m(bd)
        pool = nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(pool)], 1)


class InceptionD(nn.Module):
    """Grid reduction 768 -> 1280 channels, stride 2."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = _conv_bn(cin, 192, 1)
        self.branch3x3_2 = _conv_bn(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _conv_bn(cin, 192, 1)
        self.branch7x7x3_2 = _conv_bn(192, 192, (1, 7))
        self.branch7x7x3_3 = _conv_bn(192, 192, (7, 1))
        self.branch7x7x3_4 = _conv_bn(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for m in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = m(b7)
        pool = nn.functional.max_pool2d(x, 3, stride=2, padding=1)
        return torch.cat([b3, b7, pool], 1)


class InceptionE(nn.Module):
    """Expanded filter bank: 3x3 split into parallel 1x3 and 3x1."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch1x1 = _conv_bn(cin, 320, 1)
        self.branch3x3_1 = _conv_bn(cin, 384, 1)
        self.branch3x3_2a = _conv_bn(384, 384, (1, 3))
        self.branch3x3_2b = _conv_bn(384, 384, (3, 1))
        self.branch3x3dbl_1 = _conv_bn(cin, 448, 1)
        self.branch3x3dbl_2 = _conv_bn(448, 384, 3)
        self.branch3x3dbl_3a = _conv_bn(384, 384, (1, 3))
        self.branch3x3dbl_3b = _conv_bn(384, 384, (3, 1))
        self.branch_pool = _conv_bn(cin, 192, 1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pool = nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd), self.branch_pool(pool)], 1)


class InceptionV3(nn.Module):
    """Inception v3 for small images: the ImageNet stem (three stride-2 steps and 5 convs)
    becomes one 3x3 stride-1 conv to 192 channels; the Mixed blocks are the original's."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.Conv2d_1a_3x3 = _conv_bn(in_channels, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        for name in ("Conv2d_1a_3x3", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
                     "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


def inception_v3(in_channels: int, num_classes: int) -> InceptionV3:
    return InceptionV3(in_channels, num_classes)


#: The registry: architecture name (as in a recipe) -> constructor(in_channels, num_classes).
ARCHITECTURES: dict[str, Callable[[int, int], nn.Module]] = {
    "resnet9": resnet9,
    "resnet14": resnet14,
    "resnet18": resnet18,
    "vgg11_bn": vgg11_bn,
    "inception_v3": inception_v3,
}


def build(name: str, in_channels: int, num_classes: int) -> nn.Module:
    """The named architecture, freshly initialised from torch's current random state."""
    try:
        ctor = ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None
    return ctor(in_channels, num_classes)
