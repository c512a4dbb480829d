"""Colour-space math: luminance planes in, chroma planes out. Pure torch / numpy, no I/O.

Conventions used across the package:

* ``luma`` is a float tensor ``(N, 1, H, W)`` in ``[0, 1]`` (0 = black, 1 = white).
* ``chroma`` is a float tensor ``(N, 2, H, W)`` holding (Cb, Cr) of BT.601 full-range YCbCr,
  each in ``[-0.5, 0.5]``; (0, 0) is grey. Every model's output is turned into this form.
* Video planes are integer numpy arrays as ffmpeg delivers them: ``uint8`` for 8-bit sources,
  ``uint16`` holding 10-bit values (0..1023) for deeper ones; "tv" range puts black at
  ``16 << (bits - 8)``, white at ``235 << (bits - 8)`` and chroma between 16 and 240 (scaled).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Luma weights (Kr, Kb) of the matrices we read and write.
_MATRIX_KR_KB = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
}


def matrix_for(color_space: str) -> str:
    """Map an ffprobe ``color_space`` tag to one of the matrices this module knows.

    Untagged and unknown material is treated as BT.601, like most SD film transfers.
    """
    tag = color_space.lower()
    if tag == "bt709":
        return "bt709"
    if tag.startswith("bt2020"):
        return "bt2020"
    return "bt601"


def rgb_to_ycbcr(rgb: torch.Tensor, matrix: str = "bt601") -> torch.Tensor:
    """RGB ``(*, 3, H, W)`` in ``[0, 1]`` -> full-range YCbCr ``(*, 3, H, W)``.

    Y is in ``[0, 1]``, Cb and Cr in ``[-0.5, 0.5]``.

    >>> rgb_to_ycbcr(torch.ones(1, 3, 1, 1)).flatten().tolist()  # white
    [1.0, 0.0, 0.0]
    """
    _check_channels(rgb, 3, "rgb")
    kr, kb = _MATRIX_KR_KB[matrix]
    r, g, b = rgb.unbind(-3)
    y = kr * r + (1.0 - kr - kb) * g + kb * b
    cb = (b - y) / (2.0 * (1.0 - kb))
    cr = (r - y) / (2.0 * (1.0 - kr))
    return torch.stack([y, cb, cr], dim=-3)


def ycbcr_to_rgb(ycbcr: torch.Tensor, matrix: str = "bt601") -> torch.Tensor:
    """Full-range YCbCr ``(*, 3, H, W)`` -> RGB ``(*, 3, H, W)``, clamped to ``[0, 1]``."""
    _check_channels(ycbcr, 3, "ycbcr")
    kr, kb = _MATRIX_KR_KB[matrix]
    y, cb, cr = ycbcr.unbind(-3)
    r = y + 2.0 * (1.0 - kr) * cr
    b = y + 2.0 * (1.0 - kb) * cb
    g = (y - kr * r - kb * b) / (1.0 - kr - kb)
    return torch.stack([r, g, b], dim=-3).clamp(0.0, 1.0)


def convert_chroma(luma: torch.Tensor, chroma: torch.Tensor, matrix: str) -> torch.Tensor:
    """Re-express BT.601 chroma in another matrix, keeping the given luminance.

    The colour is rebuilt as RGB with BT.601 and split again with ``matrix``; only the new
    chroma is returned, so the caller's luminance plane stays untouched.

    Args:
        luma: ``(N, 1, H, W)`` in ``[0, 1]``.
        chroma: ``(N, 2, H, W)`` BT.601 (Cb, Cr) in ``[-0.5, 0.5]``, same size as ``luma``.
        matrix: ``"bt601"``, ``"bt709"`` or ``"bt2020"``.

    Returns:
        ``(N, 2, H, W)`` chroma of ``matrix`` in ``[-0.5, 0.5]``.
    """
    if matrix == "bt601":
        return chroma
    rgb = ycbcr_to_rgb(torch.cat([luma, chroma], dim=1), "bt601")
    return rgb_to_ycbcr(rgb, matrix)[:, 1:].clamp(-0.5, 0.5)


def plane_levels(bit_depth: int, full_range: bool) -> tuple[float, float, float]:
    """(black, white, chroma half-span) sample values of a plane of ``bit_depth`` bits."""
    scale = float(1 << (bit_depth - 8))
    if full_range:
        top = float((1 << bit_depth) - 1)
        return 0.0, top, top / 2.0
    return 16.0 * scale, 235.0 * scale, 112.0 * scale


def luma_to_unit(
    plane: np.ndarray | torch.Tensor, bit_depth: int, full_range: bool
) -> torch.Tensor:
    """Integer Y planes ``(N, H, W)`` -> float32 luma ``(N, 1, H, W)`` in ``[0, 1]``.

    ``plane`` is a numpy array (the result is on the CPU) or an integer tensor on any device
    (the result is on that device); both give the same values.
    """
    if plane.ndim != 3:
        raise ValueError(f"expected Y planes of shape (N, H, W), got {tuple(plane.shape)}")
    black, white, _ = plane_levels(bit_depth, full_range)
    if isinstance(plane, torch.Tensor):
        y = plane.to(torch.float32)
        if plane.dtype == torch.int16:  # uint16 samples carried as int16: the same bits
            y = torch.where(y < 0, y + 65536.0, y)
    else:
        y = torch.from_numpy(plane.astype(np.float32, copy=False))
    return ((y - black) / (white - black)).clamp_(0.0, 1.0).unsqueeze(1)


def chroma_to_planes(
    chroma: torch.Tensor, size: tuple[int, int], bit_depth: int, full_range: bool
) -> np.ndarray:
    """Model chroma -> integer U, V planes of the size the encoder takes.

    Args:
        chroma: ``(N, 2, h, w)`` (Cb, Cr) in ``[-0.5, 0.5]``, at any (render) size.
        size: ``(height, width)`` of the output chroma planes (the frame's size for 4:4:4,
            half of it for 4:2:0).
        bit_depth: bits per sample of the output planes (8 -> uint8, more -> uint16).
        full_range: "pc" range when True, "tv" range otherwise.

    Returns:
        ``(N, 2, height, width)`` uint8 or uint16 array on the CPU; bilinear resampling,
        computed on ``chroma``'s device, which sends back only the integer planes.
    """
    _check_channels(chroma, 2, "chroma")
    height, width = size
    if chroma.shape[-2:] != (height, width):
        chroma = F.interpolate(chroma, size=(height, width), mode="bilinear", align_corners=False)
    _, _, half_span = plane_levels(bit_depth, full_range)
    mid = float(1 << (bit_depth - 1))
    top = float((1 << bit_depth) - 1)
    planes = (chroma.float() * (2.0 * half_span) + mid).round_().clamp_(0.0, top)
    if bit_depth <= 8:
        return planes.to(torch.uint8).cpu().numpy()
    return planes.to(torch.int32).cpu().numpy().astype(np.uint16)


def _check_channels(t: torch.Tensor, channels: int, name: str) -> None:
    if t.ndim < 3 or t.shape[-3] != channels:
        raise ValueError(f"{name} must have shape (*, {channels}, H, W), got {tuple(t.shape)}")


def planes_to_rgb(
    planes: np.ndarray, bit_depth: int, full_range: bool, matrix: str = "bt601"
) -> np.ndarray:
    """Integer Y, U, V planes ``(N, 3, H, W)`` (4:4:4) -> integer RGB ``(N, H, W, 3)`` of the
    same depth whose luma is the source's Y.

    For full-range planes the luma of each output pixel, ``round(Kr*R + Kg*G + Kb*B)`` with the
    matrix's weights, equals its Y sample exactly: the colour is added around Y with weights
    that cancel in the luma, each channel is rounded (so the luma moves by at most 0.5), and a
    colour that would leave the RGB cube is desaturated toward the grey of the same Y until it
    fits. "tv"-range planes are stretched to full range first (then the luma is within 1).

    >>> grey = np.array([[[[700]], [[512]], [[512]]]], np.uint16)  # 10-bit, no colour
    >>> planes_to_rgb(grey, 10, True)[0, 0, 0].tolist()
    [700, 700, 700]
    """
    if planes.ndim != 4 or planes.shape[1] != 3:
        raise ValueError(f"expected Y, U, V planes of shape (N, 3, H, W), got {planes.shape}")
    kr, kb = _MATRIX_KR_KB[matrix]
    kg = 1.0 - kr - kb
    black, white, half_span = plane_levels(bit_depth, full_range)
    top = float((1 << bit_depth) - 1)
    mid = float(1 << (bit_depth - 1))
    values = planes.astype(np.float64)
    y = (values[:, 0] - black) * (top / (white - black))
    if not full_range:
        y = np.clip(np.round(y), 0.0, top)
    cb = (values[:, 1] - mid) / (2.0 * half_span)
    cr = (values[:, 2] - mid) / (2.0 * half_span)
    dr = 2.0 * (1.0 - kr) * cr * top
    db = 2.0 * (1.0 - kb) * cb * top
    dg = -(kr * dr + kb * db) / kg
    offsets = np.stack([dr, dg, db], axis=-1)
    room = np.where(offsets > 0, top - y[..., None], y[..., None])
    need = np.abs(offsets)
    scale = np.min(np.where(need > room, room / np.maximum(need, 1e-12), 1.0), axis=-1)
    rgb = np.round(y[..., None] + offsets * scale[..., None])
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    return np.clip(rgb, 0.0, top).astype(dtype)


def rgb_luma(rgb: np.ndarray, matrix: str = "bt601") -> np.ndarray:
    """The rounded luma ``round(Kr*R + Kg*G + Kb*B)`` of integer RGB ``(..., 3)``, as int64."""
    kr, kb = _MATRIX_KR_KB[matrix]
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return np.round(kr * r + (1.0 - kr - kb) * g + kb * b).astype(np.int64)
