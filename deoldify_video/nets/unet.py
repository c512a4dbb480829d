"""DeOldify's released generators in plain PyTorch.

Two families of self-attention U-Nets on a torchvision ResNet encoder, laid out so that the
state dicts of DeOldify's released weight files load with ``load_state_dict(strict=True)``
unchanged (module paths ``layers.<i>...`` as in fastai's ``DynamicUnet``):

* "wide" (``DynamicUnetWide``, ResNet-101 encoder, ``nf_factor`` 2): ColorizeVideo_gen and
  ColorizeStable_gen, 218.2 M parameters;
* "deep" (``DynamicUnetDeep``, ResNet-34 encoder, ``nf_factor`` 1.5): ColorizeArtistic_gen,
  63.6 M parameters.

The network maps an ImageNet-normalised grey image ``(N, 3, H, W)`` (the grey value in all three
channels, see :mod:`deoldify_video.deoldify_policy`) to ImageNet-normalised RGB ``(N, 3, H, W)``
in ``(-3, 3)``. It is fully convolutional; DeOldify feeds squares whose side is a multiple of 16.
Odd sizes work too: an upsampled map that misses its skip connection's size is resized to it
(nearest neighbour), as DeOldify does.

Computation notes (these decide numerical parity with DeOldify):

* spectral norm is :func:`torch.nn.utils.spectral_norm` (keys ``weight_orig/_u/_v``); in eval mode
  it divides by ``u . (W v)`` with the stored vectors, without power iteration;
* every upsampler ends with ``ReplicationPad2d((1, 0, 1, 0))`` and a 2x2 stride-1 average pool
  (the "blur"), the last one included;
* the last upsampler uses weight norm (keys ``weight_g/weight_v``), not spectral norm;
* convolution blocks run conv -> ReLU -> BatchNorm (activation before the norm).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm
from torchvision import models

# Encoder constructor and the channel counts of its five feature maps: after the stem's ReLU
# (H/2), layer1 (H/4), layer2 (H/8), layer3 (H/16) and layer4 (H/32).
_ENCODERS: dict[str, tuple[Callable[..., nn.Module], tuple[int, int, int, int, int]]] = {
    "resnet34": (models.resnet34, (64, 64, 128, 256, 512)),
    "resnet101": (models.resnet101, (64, 256, 512, 1024, 2048)),
}
_SKIP_INDICES = (2, 4, 5, 6)  # encoder children whose outputs feed the U-Net blocks
_Y_RANGE = (-3.0, 3.0)


def _sn_conv(ni: int, nf: int, ks: int, bias: bool) -> nn.Module:
    return nn.utils.spectral_norm(nn.Conv2d(ni, nf, ks, padding=ks // 2, bias=bias))


def _conv_relu_bn(ni: int, nf: int, ks: int = 3, attention: bool = False) -> nn.Sequential:
    """Spectral-norm conv (no bias) -> ReLU -> BatchNorm, optionally followed by attention."""
    layers = [_sn_conv(ni, nf, ks, bias=False), nn.ReLU(inplace=True), nn.BatchNorm2d(nf)]
    if attention:
        layers.append(SelfAttention(nf))
    return nn.Sequential(*layers)


class WeightNormConv2d(nn.Module):
    """A 1x1 convolution whose kernel is ``weight_g * weight_v / ||weight_v||`` (norm over dims
    1..3, per output channel), stored as ``weight_g`` ``(out, 1, 1, 1)``, ``weight_v``
    ``(out, in, 1, 1)`` and ``bias`` ``(out,)``: the layout of the old weight-norm hook."""

    def __init__(self, ni: int, nf: int) -> None:
        super().__init__()
        weight = nn.init.kaiming_normal_(torch.empty(nf, ni, 1, 1))
        self.bias = nn.Parameter(torch.zeros(nf))
        self.weight_g = nn.Parameter(torch.linalg.vector_norm(weight, dim=(1, 2, 3), keepdim=True))
        self.weight_v = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch._weight_norm(self.weight_v, self.weight_g, 0)
        return F.conv2d(x, weight, self.bias)


class SelfAttention(nn.Module):
    """SAGAN self-attention over all positions of a ``(N, C, H, W)`` map (shape kept).

    ``out[:, :, j] = gamma * sum_i value[:, :, i] * softmax_i(query_i . key_j) + x[:, :, j]``,
    with spectral-norm 1x1 convolutions (C -> C/8 for query and key, C -> C for value).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = nn.utils.spectral_norm(nn.Conv1d(channels, channels // 8, 1, bias=False))
        self.key = nn.utils.spectral_norm(nn.Conv1d(channels, channels // 8, 1, bias=False))
        self.value = nn.utils.spectral_norm(nn.Conv1d(channels, channels, 1, bias=False))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        query, key, value = self.query(flat), self.key(flat), self.value(flat)
        beta = F.softmax(torch.bmm(query.transpose(1, 2), key), dim=1)
        out = self.gamma * torch.bmm(value, beta) + flat
        return out.reshape(x.shape)


class PixelShuffleUp(nn.Module):
    """Doubles the spatial size: ``conv`` -> ReLU -> PixelShuffle(2) -> blur.

    The blur is a one-pixel replication pad on the left and top followed by a 2x2 average pool
    of stride 1, so ``(N, ni, H, W)`` becomes ``(N, nf, 2H, 2W)``.
    """

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.shuf = nn.PixelShuffle(2)
        self.pad = nn.ReplicationPad2d((1, 0, 1, 0))
        self.blur = nn.AvgPool2d(2, stride=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.pad(self.shuf(self.relu(self.conv(x)))))


def _sn_shuffle(ni: int, nf: int) -> PixelShuffleUp:
    """Upsampler ``ni -> nf`` channels with a spectral-norm 1x1 conv and BatchNorm."""
    conv = nn.Sequential(_sn_conv(ni, nf * 4, 1, bias=False), nn.BatchNorm2d(nf * 4))
    return PixelShuffleUp(conv)


class UnetBlock(nn.Module):
    """One decoder stage: upsample, concatenate the BatchNorm'd skip, convolve.

    Args:
        up_in: channels of the incoming decoder map.
        up_out: channels after upsampling.
        skip_in: channels of the skip connection.
        convs: the convolution stack applied to the concatenation; registered as ``conv1`` and
            ``conv2`` (deep family) or ``conv`` (wide family) to match DeOldify's keys.
    """

    def __init__(
        self, up_in: int, up_out: int, skip_in: int, convs: Mapping[str, nn.Module]
    ) -> None:
        super().__init__()
        self.shuf = _sn_shuffle(up_in, up_out)
        self.bn = nn.BatchNorm2d(skip_in)
        self.relu = nn.ReLU()
        self._conv_names = tuple(convs)
        for name, module in convs.items():
            self.add_module(name, module)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``x`` ``(N, up_in, h, w)`` and ``skip`` ``(N, skip_in, H, W)`` -> ``(N, out, H, W)``."""
        up = self.shuf(x)
        if up.shape[-2:] != skip.shape[-2:]:
            up = F.interpolate(up, size=skip.shape[-2:], mode="nearest")
        out = self.relu(torch.cat([up, self.bn(skip)], dim=1))
        for name in self._conv_names:
            out = getattr(self, name)(out)
        return out


class DenseMerge(nn.Module):
    """Concatenates the network input to the decoder output along the channels."""

    def forward(self, x: torch.Tensor, network_input: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, network_input], dim=1)


class ResBlock(nn.Module):
    """``x + ReLU(conv_b(ReLU(conv_a(x))))`` with biased spectral-norm 3x3 convs, no norm."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(_sn_conv(channels, channels, 3, bias=True), nn.ReLU(inplace=True))
            for _ in range(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.layers:
            out = layer(out)
        return out + x


class SigmoidRange(nn.Module):
    """``sigmoid(x) * (high - low) + low``, elementwise."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) * (self.high - self.low) + self.low


class DeOldifyUnet(nn.Module):
    """A DeOldify generator; ``layers`` holds the 13 stages of fastai's ``DynamicUnet``.

    ``forward``: ``(N, 3, H, W)`` ImageNet-normalised grey -> ``(N, 3, H, W)`` ImageNet-normalised
    RGB in ``(-3, 3)``. ``H`` and ``W`` of at least 32 are safest (the encoder divides by 32).

    Args:
        encoder: ``"resnet34"`` or ``"resnet101"`` (built by torchvision, no pretrained weights).
        nf_factor: width multiplier of the decoder.
        deep: True for the "deep" decoder (two convs per stage), False for the "wide" one.
    """

    def __init__(self, encoder: str, nf_factor: float, deep: bool) -> None:
        super().__init__()
        make_encoder, chans = _ENCODERS[encoder]
        body = nn.Sequential(*list(make_encoder(weights=None).children())[:-2])
        bottom = chans[-1]
        stages: list[nn.Module] = [
            body,
            nn.BatchNorm2d(bottom),
            nn.ReLU(),
            nn.Sequential(_conv_relu_bn(bottom, bottom * 2), _conv_relu_bn(bottom * 2, bottom)),
        ]
        up_in = bottom
        skips = chans[-2::-1]  # layer3, layer2, layer1, stem
        for i, skip_in in enumerate(skips):
            final = i == len(skips) - 1
            attention = i == len(skips) - 3
            if deep:
                up_out = up_in // 2
                ni = up_out + skip_in
                nf = int((ni // 2 if final else ni) * nf_factor)
                convs = {
                    "conv1": _conv_relu_bn(ni, nf),
                    "conv2": _conv_relu_bn(nf, nf, attention=attention),
                }
            else:
                n_out = int(512 * nf_factor) // (2 if final else 1)
                up_out = nf = n_out // 2
                convs = {"conv": _conv_relu_bn(up_out + skip_in, nf, attention=attention)}
            stages.append(UnetBlock(up_in, up_out, skip_in, convs))
            up_in = nf
        head = up_in + 3
        stages += [
            PixelShuffleUp(nn.Sequential(WeightNormConv2d(up_in, up_in * 4))),
            DenseMerge(),
            ResBlock(head),
            nn.Sequential(_sn_conv(head, 3, 1, bias=True)),
            SigmoidRange(*_Y_RANGE),
        ]
        self.layers = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for index, module in enumerate(self.layers[0].children()):
            h = module(h)
            if index in _SKIP_INDICES:
                skips.append(h)
        for stage in self.layers[1:4]:
            h = stage(h)
        for block, skip in zip(self.layers[4:8], reversed(skips), strict=True):
            h = block(h, skip)
        h = self.layers[8](h)
        h = self.layers[9](h, x)
        for stage in self.layers[10:]:
            h = stage(h)
        return h


def fold_spectral_norm(model: nn.Module) -> nn.Module:
    """Bake the eval-mode spectral-norm weights into plain parameters, in place.

    Each ``weight_orig / (u . (W v))`` is computed once and stored as ``weight``; the forward
    pass then skips the per-call recomputation and the model holds one copy of its weights
    instead of two. The outputs are unchanged, but the state dict no longer has DeOldify's
    layout (no ``weight_orig/_u/_v``) and further training would not renormalise: use it for
    inference only.

    Returns:
        ``model``.
    """
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, SpectralNorm):
                nn.utils.remove_spectral_norm(module, hook.name)
    return model


def deoldify_wide() -> DeOldifyUnet:
    """The ColorizeVideo_gen / ColorizeStable_gen architecture, random weights."""
    return DeOldifyUnet("resnet101", nf_factor=2.0, deep=False)


def deoldify_deep() -> DeOldifyUnet:
    """The ColorizeArtistic_gen architecture, random weights."""
    return DeOldifyUnet("resnet34", nf_factor=1.5, deep=True)
