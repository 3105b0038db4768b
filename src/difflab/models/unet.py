"""The spec's UNet blocks and its three UNets (CS180 project 5, Part B, figures
`atomic_ops_new.png`, `unconditional_arch.png`, `conditional_arch.png`).

Images are N x 1 x 28 x 28 in [0, 1]; D is the hidden width. Shapes through every UNet:

    x 1x28x28 -ConvBlock(1->D)-> e0 Dx28x28 -DownBlock(D->D)-> e1 Dx14x14 -DownBlock(D->2D)-> e2 2Dx7x7
    e2 -Flatten-> 2Dx1x1 -Unflatten-> u0 2Dx7x7
    cat(e2, u0) -UpBlock(4D->D)-> u1 Dx14x14;  cat(e1, u1) -UpBlock(2D->D)-> u2 Dx28x28
    cat(e0, u2) -ConvBlock(2D->D)-> -Conv2d(D->1, 3x3)-> 1x28x28

The conditional UNets modulate u0 (the Unflatten output) and u1 (the first UpBlock output).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def Conv(d_in: int, d_out: int) -> nn.Sequential:
    """Conv2d(3x3, stride 1, pad 1) + BatchNorm + GELU: keeps H x W."""
    return nn.Sequential(nn.Conv2d(d_in, d_out, 3, 1, 1), nn.BatchNorm2d(d_out), nn.GELU())


def DownConv(d_in: int, d_out: int) -> nn.Sequential:
    """Conv2d(3x3, stride 2, pad 1) + BatchNorm + GELU: halves H x W."""
    return nn.Sequential(nn.Conv2d(d_in, d_out, 3, 2, 1), nn.BatchNorm2d(d_out), nn.GELU())


def UpConv(d_in: int, d_out: int) -> nn.Sequential:
    """ConvTranspose2d(4x4, stride 2, pad 1) + BatchNorm + GELU: doubles H x W."""
    return nn.Sequential(nn.ConvTranspose2d(d_in, d_out, 4, 2, 1), nn.BatchNorm2d(d_out), nn.GELU())


def Flatten() -> nn.Sequential:
    """AvgPool2d(7) + GELU: D x 7 x 7 -> D x 1 x 1."""
    return nn.Sequential(nn.AvgPool2d(7), nn.GELU())


def Unflatten(d: int) -> nn.Sequential:
    """ConvTranspose2d(7x7, stride 7, pad 0) + BatchNorm + GELU: D x 1 x 1 -> D x 7 x 7."""
    return nn.Sequential(nn.ConvTranspose2d(d, d, 7, 7, 0), nn.BatchNorm2d(d), nn.GELU())


def ConvBlock(d_in: int, d_out: int) -> nn.Sequential:
    """Conv(d_in -> d_out) then Conv(d_out -> d_out)."""
    return nn.Sequential(Conv(d_in, d_out), Conv(d_out, d_out))


def DownBlock(d_in: int, d_out: int) -> nn.Sequential:
    """DownConv(d_in -> d_out) then ConvBlock(d_out -> d_out)."""
    return nn.Sequential(DownConv(d_in, d_out), ConvBlock(d_out, d_out))


def UpBlock(d_in: int, d_out: int) -> nn.Sequential:
    """UpConv(d_in -> d_out) then ConvBlock(d_out -> d_out)."""
    return nn.Sequential(UpConv(d_in, d_out), ConvBlock(d_out, d_out))


def FCBlock(f_in: int, f_out: int) -> nn.Sequential:
    """Linear(f_in, f_out) + GELU + Linear(f_out, f_out): embeds a time or class vector."""
    return nn.Sequential(nn.Linear(f_in, f_out), nn.GELU(), nn.Linear(f_out, f_out))


class _UNetBody(nn.Module):
    """Encoder, bottleneck and decoder shared by the three UNets; `modulate_*` hooks add conditioning."""

    def __init__(self, in_channels: int, num_hiddens: int):
        super().__init__()
        d = num_hiddens
        self.in_channels = in_channels
        self.num_hiddens = d
        self.conv_in = ConvBlock(in_channels, d)
        self.down1 = DownBlock(d, d)
        self.down2 = DownBlock(d, 2 * d)
        self.flatten = Flatten()
        self.unflatten = Unflatten(2 * d)
        self.up1 = UpBlock(4 * d, d)
        self.up2 = UpBlock(2 * d, d)
        self.conv_out = ConvBlock(2 * d, d)
        self.head = nn.Conv2d(d, in_channels, 3, 1, 1)

    def run(self, x: Tensor, modulate_u0=None, modulate_u1=None) -> Tensor:
        if x.shape[-2:] != (28, 28):
            raise ValueError(f"UNet expects 28x28 images, got {tuple(x.shape[-2:])}")
        e0 = self.conv_in(x)
        e1 = self.down1(e0)
        e2 = self.down2(e1)
        u0 = self.unflatten(self.flatten(e2))
        if modulate_u0 is not None:
            u0 = modulate_u0(u0)
        u1 = self.up1(torch.cat([e2, u0], dim=1))
        if modulate_u1 is not None:
            u1 = modulate_u1(u1)
        u2 = self.up2(torch.cat([e1, u1], dim=1))
        return self.head(self.conv_out(torch.cat([e0, u2], dim=1)))


class UnconditionalUNet(_UNetBody):
    """The single-step denoiser D_theta(z) (spec B.1.1): predicts the clean image from a noisy one."""

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x)


class TimeConditionalUNet(_UNetBody):
    """eps_theta(x_t, t) (spec B.2.1): t/T through two FCBlocks, added to u0 (2D) and to u1 (D)."""

    def __init__(self, in_channels: int, num_hiddens: int):
        super().__init__(in_channels, num_hiddens)
        self.fc1_t = FCBlock(1, 2 * num_hiddens)
        self.fc2_t = FCBlock(1, num_hiddens)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """t: (N,) normalised time t/T in [0, 1]."""
        t = t.reshape(-1, 1).to(x.dtype)
        t1 = self.fc1_t(t)[:, :, None, None]
        t2 = self.fc2_t(t)[:, :, None, None]
        return self.run(x, lambda u0: u0 + t1, lambda u1: u1 + t2)


class ClassConditionalUNet(_UNetBody):
    """eps_theta(x_t, t, c) (spec B.2.4): u0 = c1 * u0 + t1 and u1 = c2 * u1 + t2.

    c is a one-hot vector (or the zero vector for "no class", used for classifier-free guidance).
    """

    def __init__(self, in_channels: int, num_classes: int, num_hiddens: int):
        super().__init__(in_channels, num_hiddens)
        self.num_classes = num_classes
        self.fc1_t = FCBlock(1, 2 * num_hiddens)
        self.fc2_t = FCBlock(1, num_hiddens)
        self.fc1_c = FCBlock(num_classes, 2 * num_hiddens)
        self.fc2_c = FCBlock(num_classes, num_hiddens)

    def forward(self, x: Tensor, c: Tensor, t: Tensor, mask: Tensor | None = None) -> Tensor:
        """c: (N,) int64 labels or (N, num_classes) condition vectors; t: (N,) t/T;
        mask: optional (N,) 0/1, where 0 replaces the condition by the zero vector."""
        if c.dim() == 1:
            c = F.one_hot(c.long(), self.num_classes)
        c = c.to(x.dtype)
        if mask is not None:
            c = c * mask.reshape(-1, 1).to(x.dtype)
        t = t.reshape(-1, 1).to(x.dtype)
        c1 = self.fc1_c(c)[:, :, None, None]
        c2 = self.fc2_c(c)[:, :, None, None]
        t1 = self.fc1_t(t)[:, :, None, None]
        t2 = self.fc2_t(t)[:, :, None, None]
        return self.run(x, lambda u0: c1 * u0 + t1, lambda u1: c2 * u1 + t2)


ARCHITECTURES = ("unconditional", "time", "class")


def build_model(architecture: str, num_hiddens: int, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """Build a UNet from its config name: 'unconditional' | 'time' | 'class'."""
    if architecture == "unconditional":
        return UnconditionalUNet(in_channels, num_hiddens)
    if architecture == "time":
        return TimeConditionalUNet(in_channels, num_hiddens)
    if architecture == "class":
        return ClassConditionalUNet(in_channels, num_classes, num_hiddens)
    raise ValueError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
