"""The lite colorizer: an EfficientNet-Lite0 U-Net that predicts chroma from luminance.

Small enough to run at 15+ frames/s on two CPU cores at 256 px. The encoder is an
EfficientNet-Lite0 (TF "SAME" padding, ReLU6, no squeeze-excite) whose stem takes one
luminance channel; the decoder upsamples with ICNR-initialised pixel shuffles, merges the
encoder's skips, applies self-attention at stride 16 and uses spectral norm throughout.
Chroma is predicted at stride 2 and upsampled bilinearly to the input size.

Two heads read the stride-2 features out as chroma:

* ``"chroma"`` (the shipped model): a regression, ``0.5 * tanh`` of two channels.
* ``"bins"``: ``Q`` logits over quantised (Cb, Cr) bins (a regular grid of step
  :data:`BIN_STEP` restricted to the colours some luminance can show, :func:`gamut_bins`),
  read out as the annealed mean (softmax of ``logits / T``, then the mean of the bin centres;
  Zhang et al., "Colorful Image Colorization", 2016). Trained with a class-rebalanced
  cross-entropy on the logits (:mod:`deoldify_video.train.bins`), it gives more vivid colour
  than a regression, which averages the possible colours of an ambiguous object to brown.
  The bin centres and the temperature are buffers, so a state dict says which head it has
  (:func:`head_of_state`).

Input: ``(N, 1, H, W)`` luminance normalised as ``(y - 0.5) / 0.5`` with ``y`` in ``[0, 1]``,
``H`` and ``W`` multiples of 32. Output: ``(N, 2, H, W)`` BT.601 (Cb, Cr) in ``[-0.5, 0.5]``.

The ImageNet encoder weights are only needed for training (:mod:`deoldify_video.train.nogan`);
this module builds the network with random weights and never downloads anything.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from ..color import rgb_to_ycbcr, ycbcr_to_rgb

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
# The heads (see the module docstring).
HEADS = ("chroma", "bins")
# Step of the (Cb, Cr) bin grid and the readout temperature of the bins head.
BIN_STEP = 1.0 / 16.0
TEMPERATURE = 0.38
# Luminance samples and round-trip tolerance of the gamut test.
_GAMUT_LUMA_STEPS = 2049
_GAMUT_TOLERANCE = 1e-3


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


def in_gamut(cbcr: torch.Tensor) -> torch.Tensor:
    """Whether some luminance in ``[0, 1]`` shows each chroma inside the RGB cube.

    A (Y, Cb, Cr) triple is inside the cube when converting it to RGB and back (BT.601,
    :mod:`deoldify_video.color`, whose RGB is clamped) returns it unchanged; ``Y`` is sampled
    every 1/2048 and the round trip may miss by 1e-3 (a point on the gamut's edge counts).

    Args:
        cbcr: ``(Q, 2)`` BT.601 (Cb, Cr).

    Returns:
        ``(Q,)`` bool.

    >>> in_gamut(torch.tensor([[0.0, 0.0], [0.5, 0.5], [-0.1687, 0.5]])).tolist()
    [True, False, True]
    """
    y = torch.linspace(0.0, 1.0, _GAMUT_LUMA_STEPS, dtype=torch.float64, device=cbcr.device)
    q = cbcr.shape[0]
    ycc = torch.stack(
        [
            y.expand(q, -1),
            cbcr[:, :1].to(torch.float64).expand(-1, y.numel()),
            cbcr[:, 1:].to(torch.float64).expand(-1, y.numel()),
        ]
    )  # (3, Q, Y)
    error = (rgb_to_ycbcr(ycbcr_to_rgb(ycc)) - ycc).abs().amax(dim=0)
    return (error < _GAMUT_TOLERANCE).any(dim=1)


def gamut_bins(step: float = BIN_STEP) -> torch.Tensor:
    """The bin centres: a regular (Cb, Cr) grid of ``step`` over ``[-0.5, 0.5]^2`` (0 on
    it), keeping the points :func:`in_gamut`.

    Returns:
        ``(Q, 2)`` float32 (Cb, Cr) in ``[-0.5, 0.5]``, Cb-major order (179 bins for the
        default step of 1/16), on the CPU (also while building on the meta device).
    """
    half = round(0.5 / step)
    values = torch.arange(-half, half + 1, dtype=torch.float64, device="cpu") * step
    cb, cr = torch.meshgrid(values, values, indexing="ij")
    grid = torch.stack([cb.flatten(), cr.flatten()], dim=1)
    return grid[in_gamut(grid)].to(torch.float32)


def annealed_mean(
    logits: torch.Tensor, centres: torch.Tensor, temperature: float | torch.Tensor
) -> torch.Tensor:
    """Chroma from bin logits: the mean of the bin centres under ``softmax(logits / T)``.

    ``T = 1`` gives the distribution's mean (muted where it is multimodal), ``T -> 0`` its
    mode (vivid but patchy); about 0.38 is between.

    Args:
        logits: ``(N, Q, h, w)``.
        centres: ``(Q, 2)`` bin centres (Cb, Cr).
        temperature: ``T > 0``.

    Returns:
        ``(N, 2, h, w)`` (Cb, Cr), inside the convex hull of the centres (so in
        ``[-0.5, 0.5]``), in ``logits``' dtype.
    """
    # Written out for speed on the CPU: one large tensor, changed in place; exp() of values
    # below -30 (weights under 1e-13 of the largest) is skipped, as its underflow is slow; a
    # 1x1 convolution gives the centres' weighted sums and the normaliser together. The
    # subtracted maximum only keeps exp() finite (no gradient flows through it).
    weights = logits.float() / temperature
    weights.sub_(weights.detach().amax(dim=1, keepdim=True)).clamp_(min=-30.0).exp_()
    sums = torch.cat([centres.float().t(), torch.ones_like(centres[:, :1]).t()])
    totals = F.conv2d(weights, sums.to(weights)[:, :, None, None])
    return (totals[:, :2] / totals[:, 2:]).to(logits.dtype)


class BinsHead(nn.Sequential):
    """Stride-2 features ``(N, 32, h, w)`` -> bin logits ``(N, Q, h, w)``.

    The same spectral-norm 3x3 conv and ReLU as the chroma head, then a plain 1x1 conv to the
    ``Q`` logits (spectral norm would cap how sharp the distribution can get). Buffers:
    ``centres`` ``(Q, 2)`` (Cb, Cr) and ``temperature`` (scalar) of the readout.
    """

    centres: torch.Tensor
    temperature: torch.Tensor

    def __init__(self, channels: int, centres: torch.Tensor, temperature: float) -> None:
        super().__init__(
            _sn_conv(channels, channels, 3, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, centres.shape[0], 1),
        )
        self.register_buffer("centres", centres.clone())
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def readout(self, logits: torch.Tensor) -> torch.Tensor:
        """The annealed mean ``(N, 2, h, w)`` of ``logits`` ``(N, Q, h, w)``."""
        return annealed_mean(logits, self.centres, self.temperature)


class LiteColorizer(nn.Module):
    """The lite U-Net: luminance ``(N, 1, H, W)`` -> chroma ``(N, 2, H, W)``.

    Args:
        head: ``"chroma"`` (regression, the shipped model) or ``"bins"`` (bin logits read out
            as the annealed mean).
        step: bin grid step of the bins head.
        temperature: readout temperature of the bins head.

    Args (of ``forward``):
        x: ``(N, 1, H, W)`` luminance scaled to ``[-1, 1]``, ``H`` and ``W`` multiples of 32.

    Returns:
        ``(N, 2, H, W)`` BT.601 (Cb, Cr) in ``[-0.5, 0.5]``, whichever the head.
    """

    def __init__(
        self, head: str = "chroma", step: float = BIN_STEP, temperature: float = TEMPERATURE
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r} (heads: {', '.join(HEADS)})")
        self.head_kind = head
        self.encoder = Encoder(1)
        widths = (_BOTTOM_CHANNELS, *_DECODER_CHANNELS)
        skips = tuple(reversed(_SKIP_CHANNELS))
        self.decoder = nn.ModuleList(
            UpBlock(widths[i], skips[i], widths[i + 1], attention=i == 0) for i in range(4)
        )
        last = _DECODER_CHANNELS[-1]
        self.head: nn.Sequential
        if head == "bins":
            self.head = BinsHead(last, gamut_bins(step), temperature)
        else:
            self.head = nn.Sequential(
                _sn_conv(last, last, 3, bias=True),
                nn.ReLU(inplace=True),
                _sn_conv(last, 2, 1, True),
            )

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's stride-2 features ``(N, 32, H/2, W/2)``."""
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(
                f"expected luminance of shape (N, 1, H, W) with H, W multiples of 32, "
                f"got {tuple(x.shape)}"
            )
        skips, y = self.encoder(x.contiguous(memory_format=torch.channels_last))
        for block, skip in zip(self.decoder, reversed(skips), strict=True):
            y = block(y, skip)
        return y

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The bins head's logits ``(N, Q, H/2, W/2)`` for luminance ``x`` as in ``forward``.

        Raises:
            ValueError: the network has the chroma head.
        """
        return self._bins_head()(self._features(x))

    def readout(self, logits: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        """Chroma ``(N, 2, *size)`` in ``[-0.5, 0.5]`` from :meth:`logits`' output: the
        annealed mean, upsampled bilinearly (what ``forward`` returns).

        Raises:
            ValueError: the network has the chroma head.
        """
        return _upsample(self._bins_head().readout(logits), size)

    @property
    def centres(self) -> torch.Tensor:
        """The bins head's centres ``(Q, 2)`` (Cb, Cr).

        Raises:
            ValueError: the network has the chroma head.
        """
        return self._bins_head().centres

    def _bins_head(self) -> BinsHead:
        if not isinstance(self.head, BinsHead):
            raise ValueError("the chroma head has no bin logits")
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.head, BinsHead):
            return self.readout(self.logits(x), x.shape[-2:])
        return _upsample(0.5 * torch.tanh(self.head(self._features(x))), x.shape[-2:])


def _upsample(chroma: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    return F.interpolate(chroma, size=size, mode="bilinear", align_corners=False)


def lite(head: str = "chroma") -> LiteColorizer:
    """The ``lite`` model with random weights, in channels-last layout (faster on CPU).

    Args:
        head: ``"chroma"`` (the shipped model) or ``"bins"`` (see the module docstring).

    Loading a state dict keeps that layout, as does moving the model to another device.
    """
    return LiteColorizer(head).to(memory_format=torch.channels_last)


def lite_bins() -> LiteColorizer:
    """``lite(head="bins")``: the builder of a bins-head weights file."""
    return lite("bins")


def head_of_state(state: Mapping[str, torch.Tensor]) -> str:
    """Which head a lite state dict was saved from: ``"bins"`` when it holds the bin centres
    (``head.centres``), else ``"chroma"``."""
    return "bins" if "head.centres" in state else "chroma"
