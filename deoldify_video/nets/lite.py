"""The lite colorizer: an EfficientNet-Lite0 U-Net that predicts chroma from luminance.

Small enough to run at 15+ frames/s on two CPU cores at 256 px. The encoder is an
EfficientNet-Lite0 (TF "SAME" padding, ReLU6, no squeeze-excite) whose stem takes one
luminance channel; the decoder upsamples with ICNR-initialised pixel shuffles, merges the
encoder's skips, applies self-attention at stride 16 and uses spectral norm throughout.
Chroma is predicted at stride 2 and upsampled bilinearly to the input size.

Input: ``(N, 1, H, W)`` luminance normalised as ``(y - 0.5) / 0.5`` with ``y`` in ``[0, 1]``,
``H`` and ``W`` multiples of 32. Output: ``(N, 2, H, W)`` BT.601 (Cb, Cr) in ``[-0.5, 0.5]``.

The ImageNet encoder weights are only needed for training (:mod:`deoldify_video.train.nogan`);
this module builds the network with random weights and never downloads anything.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

# EfficientNet-Lite0 stages: (expand ratio, kernel, stride, output channels, repeats).
_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
# Index of the block after which each skip is taken (strides 2, 4, 8, 16) and their widths.
_SKIP_BLOCKS = (0, 2, 4, 10)
_SKIP_CHANNELS = (16, 24, 40, 112)
_BOTTOM_CHANNELS = 320
# Decoder widths from stride 16 up to stride 2.
_DECODER_CHANNELS = (192, 96, 64, 32)


def _same_pad(kernel: int, stride: int) -> nn.Module:
    """TF "SAME" padding for even input sizes (the extra pixel goes to the bottom/right)."""
    if stride == 1:
        return nn.ZeroPad2d(kernel // 2)
    before, after = (kernel - 2) // 2, kernel // 2
    return nn.ZeroPad2d((before, after, before, after))


class ConvBNAct(nn.Sequential):
    """Padding, a bias-free convolution, BatchNorm and (optionally) ReLU6."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
    ) -> None:
        layers: list[nn.Module] = [
            _same_pad(kernel, stride),
            nn.Conv2d(cin, cout, kernel, stride, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite (EfficientNet-Lite)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = ConvBNAct(cin, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid)
        self.project = ConvBNAct(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.residual else out


class Encoder(nn.Module):
    """EfficientNet-Lite0 features for a one-channel input.

    ``forward`` returns the skips at strides 2, 4, 8, 16 (16, 24, 40, 112 channels) and the
    stride-32 features (320 channels).
    """

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = ConvBNAct(in_channels, STEM_CHANNELS, 3, 2)
        blocks: list[nn.Module] = []
        cin = STEM_CHANNELS
        for expand, kernel, stride, cout, repeats in _STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        skips: list[torch.Tensor] = []
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in _SKIP_BLOCKS:
                skips.append(x)
        return skips, x


def _sn_conv(cin: int, cout: int, kernel: int, bias: bool = False) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias))


def _icnr_(weight: torch.Tensor, scale: int = 2) -> None:
    """ICNR init: every sub-pixel of a pixel shuffle starts equal (no checkerboard)."""
    cout, cin, kh, kw = weight.shape
    sub = torch.empty(cout // scale**2, cin, kh, kw)
    nn.init.kaiming_normal_(sub)
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(scale**2, dim=0))


class PixelShuffleUp(nn.Module):
    """x2 upsampling: spectral-norm 1x1 conv to 4x channels, ReLU, pixel shuffle, blur."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        conv = nn.Conv2d(cin, cout * 4, 1, bias=False)
        _icnr_(conv.weight)
        self.conv = spectral_norm(conv)
        self.shuffle = nn.PixelShuffle(2)
        self.blur = nn.Sequential(nn.ReplicationPad2d((1, 0, 1, 0)), nn.AvgPool2d(2, stride=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.shuffle(F.relu(self.conv(x))))


class SelfAttention(nn.Module):
    """SAGAN self-attention over all positions; ``gamma`` starts at 0 (identity)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = _sn_conv(channels, channels // 8, 1)
        self.key = _sn_conv(channels, channels // 8, 1)
        self.value = _sn_conv(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2)
        k = self.key(x).flatten(2)
        v = self.value(x).flatten(2)
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=1)
        out = torch.bmm(v, attn).view(n, c, h, w)
        return self.gamma * out + x


class UpBlock(nn.Module):
    """Upsample, concatenate the normalised skip, then a spectral-norm 3x3 conv, ReLU, BN."""

    def __init__(self, cin: int, skip: int, cout: int, attention: bool = False) -> None:
        super().__init__()
        self.up = PixelShuffleUp(cin, cin // 2)
        self.skip_bn = nn.BatchNorm2d(skip)
        self.conv = _sn_conv(cin // 2 + skip, cout, 3)
        self.bn = nn.BatchNorm2d(cout)
        self.attention = SelfAttention(cout) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.relu(torch.cat([self.up(x), self.skip_bn(skip)], dim=1))
        return self.attention(self.bn(F.relu(self.conv(x))))


class LiteColorizer(nn.Module):
    """The lite U-Net: luminance ``(N, 1, H, W)`` -> chroma ``(N, 2, H, W)``.

    Args (of ``forward``):
        x: ``(N, 1, H, W)`` luminance scaled to ``[-1, 1]``, ``H`` and ``W`` multiples of 32.

    Returns:
        ``(N, 2, H, W)`` BT.601 (Cb, Cr) in ``[-0.5, 0.5]``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder(1)
        widths = (_BOTTOM_CHANNELS, *_DECODER_CHANNELS)
        skips = tuple(reversed(_SKIP_CHANNELS))
        self.decoder = nn.ModuleList(
            UpBlock(widths[i], skips[i], widths[i + 1], attention=i == 0) for i in range(4)
        )
        last = _DECODER_CHANNELS[-1]
        self.head = nn.Sequential(
            _sn_conv(last, last, 3, bias=True), nn.ReLU(inplace=True), _sn_conv(last, 2, 1, True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(
                f"expected luminance of shape (N, 1, H, W) with H, W multiples of 32, "
                f"got {tuple(x.shape)}"
            )
        skips, y = self.encoder(x.contiguous(memory_format=torch.channels_last))
        for block, skip in zip(self.decoder, reversed(skips), strict=True):
            y = block(y, skip)
        chroma = 0.5 * torch.tanh(self.head(y))
        return F.interpolate(chroma, size=x.shape[-2:], mode="bilinear", align_corners=False)


def lite() -> LiteColorizer:
    """The shipped ``lite`` model, with random weights, in channels-last layout (faster on CPU).

    Loading a state dict keeps that layout, as does moving the model to another device.
    """
    return LiteColorizer().to(memory_format=torch.channels_last)
