"""Classifier architectures by name, initialised from an explicit ``torch.Generator``.

Surrogates for the search (``tiny_cnn`` for ``micro``, ``small_cnn`` for ``quick``,
``resnet9_preact`` for ``paper``) are written here; transfer architectures come from torchvision
(always ``weights=None``: nothing downloads) or :mod:`~nlfs.evaluation.models_transfer`, adapted to
the input's channel count and the dataset's class count.

Every model is constructed on the ``meta`` device (so construction draws nothing from the global
generator) and then materialised and initialised by :func:`init_parameters` with the caller's
generator: the same seed gives the same weights, whatever else ran before.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from nlfs.errors import ConfigError


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class TinyCNN(nn.Module):
    """Two stride-2 conv layers and a linear head: the ``micro`` surrogate (seconds on a CPU).

    Strided convolutions instead of conv + max-pool: on a CPU the pooling cost as much as the
    convolutions, and on Fashion-MNIST the strided net is as accurate.
    """

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 8, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width * 16, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, stride), nn.BatchNorm2d(cout), nn.ReLU())


class SmallCNN(nn.Module):
    """A four-conv VGG-style net with batch norm: the ``quick`` surrogate.

    One convolution at full resolution (the expensive one on a CPU), two at half, one at
    quarter (downsampling by stride 2: max-pooling was a sixth of the time on a CPU), then
    global average pooling.
    """

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 32, dropout: float = 0.0
    ) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(in_channels, w),
            _conv_bn(w, 2 * w, stride=2),
            _conv_bn(2 * w, 2 * w),
            _conv_bn(2 * w, 4 * w, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016): x + conv(act(bn(conv(act(bn(x))))))."""

    def __init__(self, channels: int, act: Callable[[], nn.Module] = nn.SiLU) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels),
            act(),
            _conv(channels, channels),
            nn.BatchNorm2d(channels),
            act(),
            _conv(channels, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9PreAct(nn.Module):
    """The paper's surrogate: stem conv ``width``, residual stages 2x and 4x ``width``, swish,
    global pool and dropout (the reference paper: widths 8, 16, 32 and dropout 0.5)."""

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 8, dropout: float = 0.5
    ) -> None:
        super().__init__()
        stages = []
        cin = width
        for cout in (2 * width, 4 * width):
            stages += [
                nn.BatchNorm2d(cin),
                nn.SiLU(),
                _conv(cin, cout),
                nn.MaxPool2d(2),
                PreActBlock(cout),
            ]
            cin = cout
        self.features = nn.Sequential(
            _conv(in_channels, width),
            *stages,
            nn.BatchNorm2d(cin),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _resnet18(in_channels: int, num_classes: int, dropout: float = 0.0, **_: object) -> nn.Module:
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    # Small inputs (32 px): a 3x3 stride-1 stem and no max-pool keep the spatial resolution.
    model.conv1 = _conv(in_channels, 64)
    model.maxpool = nn.Identity()
    model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
    return model


def _replace_stem(model: nn.Module, in_channels: int) -> nn.Module:
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(
        in_channels,
        stem.out_channels,
        stem.kernel_size,
        stride=stem.stride,
        padding=stem.padding,
        bias=False,
    )
    return model


def _mobilenet_v3_small(
    in_channels: int, num_classes: int, dropout: float = 0.2, **_: object
) -> nn.Module:
    from torchvision.models import mobilenet_v3_small

    model = mobilenet_v3_small(weights=None, num_classes=num_classes, dropout=dropout)
    return _replace_stem(model, in_channels)


def _efficientnet_v2_s(
    in_channels: int, num_classes: int, dropout: float = 0.2, **_: object
) -> nn.Module:
    from torchvision.models import efficientnet_v2_s

    model = efficientnet_v2_s(weights=None, num_classes=num_classes, dropout=dropout)
    return _replace_stem(model, in_channels)


def _wide_resnet(
    in_channels: int, num_classes: int, dropout: float = 0.0, **_: object
) -> nn.Module:
    from nlfs.evaluation.models_transfer import WideResNet

    return WideResNet(in_channels, num_classes, depth=16, widen=4, dropout=dropout)


def _surrogate(cls: type[nn.Module]) -> Callable[..., nn.Module]:
    def make(
        in_channels: int,
        num_classes: int,
        width: int | None = None,
        dropout: float | None = None,
        **_: object,
    ) -> nn.Module:
        kwargs = {k: v for k, v in (("width", width), ("dropout", dropout)) if v is not None}
        return cls(in_channels, num_classes, **kwargs)

    return make


MODELS: dict[str, Callable[..., nn.Module]] = {
    "tiny_cnn": _surrogate(TinyCNN),
    "small_cnn": _surrogate(SmallCNN),
    "resnet9_preact": _surrogate(ResNet9PreAct),
    "resnet18": _resnet18,
    "wide_resnet": _wide_resnet,
    "mobilenet_v3_small": _mobilenet_v3_small,
    "efficientnet_v2_s": _efficientnet_v2_s,
}


def model_names() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return sorted(MODELS)


@torch.no_grad()
def _draw(param: torch.Tensor, init: Callable[..., torch.Tensor], *args, **kwargs) -> None:
    """Fill ``param`` with ``init`` drawn into a contiguous tensor, then copied in.

    In-place random fills follow the tensor's memory order, so drawing straight into
    channels-last weights would give other values than the same seed gives contiguous ones: the
    first candidate of a process (built contiguous, then converted) and every later one
    (re-initialised in place) would start from different weights under one evaluation seed.
    """
    fresh = torch.empty(param.shape, dtype=param.dtype, device=param.device)
    init(fresh, *args, **kwargs)
    with torch.no_grad():
        param.copy_(fresh)


def init_parameters(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """(Re-)initialise every parameter and norm buffer of ``model`` from ``generator``.

    Convolutions: Kaiming normal (fan-out, ReLU gain), as torchvision does; linear layers and
    biases: PyTorch's default uniform; norms: weight 1, bias 0, fresh running statistics. The
    generator must live on the parameters' device.

    Raises:
        ConfigError: a parameter in a layer type this function does not know (so nothing is
            ever left uninitialised silently).
    """
    done: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            if isinstance(module, nn.Conv2d):
                _draw(
                    module.weight,
                    nn.init.kaiming_normal_,
                    mode="fan_out",
                    nonlinearity="relu",
                    generator=generator,
                )
            else:
                _draw(module.weight, nn.init.kaiming_uniform_, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                _draw(module.bias, nn.init.uniform_, -bound, bound, generator=generator)
        elif isinstance(module, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm):
            if getattr(module, "weight", None) is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.modules.batchnorm._NormBase):
                module.reset_running_stats()
        else:
            continue
        done.update(id(p) for p in module.parameters(recurse=False))
    left = [name for name, p in model.named_parameters() if id(p) not in done]
    if left:
        raise ConfigError(f"init_parameters does not know how to initialise {', '.join(left)}")
    return model


def build_model(
    name: str,
    in_channels: int,
    num_classes: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device: torch.device | str = "cpu",
    **options: object,
) -> nn.Module:
    """The architecture ``name`` for ``in_channels`` inputs and ``num_classes`` outputs.

    Args:
        name: one of :func:`model_names`.
        generator: initialises the weights (on ``device``); or give ``seed`` instead.
        options: ``width`` and ``dropout`` (surrogates), ``dropout`` (transfer models);
            ``None`` values take the model's default.

    Raises:
        ConfigError: unknown name (the known ones are listed).
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(model_names())}")
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(0 if seed is None else seed)
    options = {k: v for k, v in options.items() if v is not None}
    with torch.device("meta"):
        model = MODELS[name](in_channels, num_classes, **options)
    model = model.to_empty(device=device)
    return init_parameters(model, generator)
