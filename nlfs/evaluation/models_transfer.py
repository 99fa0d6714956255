"""Transfer architectures written by hand (torchvision has no CIFAR-sized wide ResNet)."""

from __future__ import annotations

import torch
from torch import nn

from nlfs.errors import ConfigError


class WideBlock(nn.Module):
    """Pre-activation wide residual block with optional dropout between the convolutions."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.act = nn.ReLU()
        self.shortcut = (
            nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(self.drop(self.act(self.bn2(self.conv1(out)))))
        return out + skip


class WideResNet(nn.Module):
    """WRN-depth-widen (Zagoruyko & Komodakis 2016), e.g. WRN-16-4, for small images."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        depth: int = 16,
        widen: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ConfigError(f"wide ResNet depth must be 6n+4, got {depth}")
        blocks = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)]
        for stage in range(3):
            for i in range(blocks):
                cin = widths[stage] if i == 0 else widths[stage + 1]
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(WideBlock(cin, widths[stage + 1], stride, dropout))
        layers += [nn.BatchNorm2d(widths[3]), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
