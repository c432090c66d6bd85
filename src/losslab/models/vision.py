"""Image and tabular models: an MLP and a VGG-style CNN (the paper's VGG-19 layout selectable).

Each model returns raw class scores (logits) of shape ``(N, num_classes)``; the loss under
test decides how they become probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# The VGG-19 convolution layout (Simonyan & Zisserman 2015, configuration E): the number of
# 3x3 convolutions and their widths per block, each block followed by 2x2 max pooling.
VGG19_BLOCKS: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_dropout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {value!r}")
    return float(value)


class MLP(nn.Module):
    """A multilayer perceptron: flatten, then ``Linear -> ReLU -> Dropout`` per hidden layer.

    Args:
        in_features: number of input features (an image's ``C * H * W`` when fed images).
        num_classes: number of output scores.
        hidden: widths of the hidden layers; ``()`` gives multinomial logistic regression.
        dropout: dropout probability after each hidden layer.

    Shape:
        - Input: ``(N, in_features)`` or ``(N, *)`` with ``in_features`` elements per sample.
        - Output: ``(N, num_classes)`` logits.
    """

    def __init__(
        self, in_features: int, num_classes: int, hidden: Sequence[int] = (128,), dropout: float = 0.0
    ) -> None:
        super().__init__()
        _check_positive("in_features", in_features)
        _check_positive("num_classes", num_classes)
        for width in hidden:
            _check_positive("hidden width", width)
        dropout = _check_dropout(dropout)
        self.in_features = in_features
        layers: list[nn.Module] = [nn.Flatten()]
        width_in = in_features
        for width in hidden:
            layers += [nn.Linear(width_in, width), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width_in = width
        layers.append(nn.Linear(width_in, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x[0].numel() if x.ndim > 1 else x.numel()
        if features != self.in_features:
            raise ValueError(
                f"MLP expects {self.in_features} features per sample, got input of shape "
                f"{tuple(x.shape)} ({features} per sample)"
            )
        return self.layers(x)


class VGGStyleCNN(nn.Module):
    """A VGG-style CNN: blocks of 3x3 convolutions (+ batch norm) + ReLU, then 2x2 max pooling,
    then a classifier head.

    The default is small enough for a CPU: two blocks (``widths=(32, 64)``) of two
    convolutions each. ``layout="vgg19"`` selects the VGG-19 convolution layout
    (2-2-4-4-4 convolutions of widths 64-128-256-512-512) scaled by ``width_multiplier``;
    pooling stops once the feature map is 1x1, so small images (28x28, 32x32) work too.

    Args:
        in_channels: channels of the input images (1 grey, 3 colour).
        num_classes: number of output scores.
        image_size: height and width of the (square) input images.
        widths: output channels of each block (``layout="custom"``).
        convs_per_block: convolutions per block (``layout="custom"``).
        layout: ``"custom"`` (widths x convs_per_block) or ``"vgg19"``.
        width_multiplier: scales every block width of the ``vgg19`` layout (0.25 = a quarter).
        dropout: dropout before each dense layer of the head.
        batch_norm: batch normalisation after every convolution.
        head_width: width of the hidden dense layer of the head; ``None`` for a single
            linear layer.
        head_pool: how the last feature map enters the head: ``"flatten"`` keeps its spatial
            layout (VGG's own head flattens its 7x7 map; on Fashion-MNIST this is worth about
            6 points of test accuracy over averaging), ``"avg"`` averages it globally (a head
            independent of the image size).

    Shape:
        - Input: ``(N, in_channels, image_size, image_size)``.
        - Output: ``(N, num_classes)`` logits.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        image_size: int,
        widths: Sequence[int] = (32, 64),
        convs_per_block: int = 2,
        layout: str = "custom",
        width_multiplier: float = 1.0,
        dropout: float = 0.0,
        batch_norm: bool = True,
        head_width: int | None = 128,
        head_pool: str = "flatten",
    ) -> None:
        super().__init__()
        _check_positive("in_channels", in_channels)
        _check_positive("num_classes", num_classes)
        _check_positive("image_size", image_size)
        dropout = _check_dropout(dropout)
        if layout == "vgg19":
            if not isinstance(width_multiplier, (int, float)) or width_multiplier <= 0:
                raise ValueError(f"width_multiplier must be positive, got {width_multiplier!r}")
            blocks = [(n, max(1, round(w * width_multiplier))) for n, w in VGG19_BLOCKS]
        elif layout == "custom":
            _check_positive("convs_per_block", convs_per_block)
            if not widths:
                raise ValueError("widths must list at least one block width")
            blocks = [(convs_per_block, _check_positive("widths entry", w)) for w in widths]
        else:
            raise ValueError(f"layout must be 'custom' or 'vgg19', got {layout!r}")
        self.in_channels = in_channels
        self.image_size = image_size
        self.blocks = blocks

        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for convs, width in blocks:
            for _ in range(convs):
                layers.append(nn.Conv2d(channels, width, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                channels = width
            if size >= 2:  # pool while there is something to pool (small inputs, deep layouts)
                layers.append(nn.MaxPool2d(2))
                size //= 2
        self.features = nn.Sequential(*layers)
        if head_pool == "flatten":
            head: list[nn.Module] = [nn.Flatten()]
            channels *= size * size
        elif head_pool == "avg":
            head = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        else:
            raise ValueError(f"head_pool: expected 'flatten' or 'avg', got {head_pool!r}")
        if head_width is not None:
            _check_positive("head_width", head_width)
            if dropout > 0:
                head.append(nn.Dropout(dropout))
            head += [nn.Linear(channels, head_width), nn.ReLU(inplace=True)]
            channels = head_width
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(channels, num_classes))
        self.classifier = nn.Sequential(*head)
        self.head_pool = head_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"VGGStyleCNN expects input of shape (N, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        if self.head_pool == "flatten" and tuple(x.shape[2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"VGGStyleCNN with head_pool='flatten' expects {self.image_size}x{self.image_size} "
                f"images (image_size), got {tuple(x.shape[2:])}; use head_pool='avg' for other sizes"
            )
        return self.classifier(self.features(x))
