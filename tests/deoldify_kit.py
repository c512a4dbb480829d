"""The inputs of the DeOldify reference kit, rebuilt: seeded weights and test pictures.

The kit's outputs (``tests/data/deoldify-reference``) were computed by DeOldify's own code from
deterministic weights and pictures; these functions rebuild both bit for bit, so that only the
outputs have to be stored. The recipes are the kit's (its ``seeded_weights.py`` and NOTES.md).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return x / x.norm().clamp_min(eps)


def seeded_state_dict(
    entries: Sequence[tuple[str, Sequence[int], str]], seed: int
) -> OrderedDict[str, torch.Tensor]:
    """Deterministic, well-conditioned weights for a state-dict manifest.

    Args:
        entries: ``[key, shape, dtype]`` of every state-dict entry in order (the ``state_dict``
            list of a ``*_state_dict.json`` manifest).
        seed: entry ``i`` draws from ``torch.Generator().manual_seed(seed + i)``.

    Returns:
        The state dict: BatchNorm running variance in [0.75, 1.25), running mean ``randn * 0.1``,
        BatchNorm weight ``1 + randn * 0.05``, spectral-norm ``*_orig`` ``randn * 0.05`` with
        ``u``, ``v`` one float64 power-iteration step from a random unit ``u`` (so
        ``sigma = u . (W v) > 0``), other tensors of 2+ dimensions ``randn / sqrt(fan_in)``,
        the rest ``randn * 0.05``; ``num_batches_tracked`` and integer tensors 0.
    """
    parsed = [(str(k), tuple(int(s) for s in shape), str(dt)) for k, shape, dt in entries]
    keys = {key for key, _, _ in parsed}
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    pairs: list[tuple[str, str, str]] = []  # (orig, u, v) keys of each spectral norm
    for i, (key, shape, dt) in enumerate(parsed):
        dtype = _DTYPES[dt]
        g = torch.Generator().manual_seed(seed + i)
        prefix, _, leaf = key.rpartition(".")
        pre = prefix + "." if prefix else ""
        if leaf == "num_batches_tracked":
            t = torch.zeros(shape, dtype=torch.int64)
        elif leaf == "running_var":
            t = torch.rand(shape, generator=g) * 0.5 + 0.75
        elif leaf == "running_mean":
            t = torch.randn(shape, generator=g) * 0.1
        elif leaf == "weight" and pre + "running_mean" in keys:
            t = 1.0 + torch.randn(shape, generator=g) * 0.05
        elif leaf.endswith("_orig") and pre + leaf[:-5] + "_u" in keys:
            t = torch.randn(shape, generator=g) * 0.05
            pairs.append((key, pre + leaf[:-5] + "_u", pre + leaf[:-5] + "_v"))
        elif leaf[-2:] in ("_u", "_v") and pre + leaf[:-2] + "_orig" in keys:
            t = _normalize(torch.randn(shape, generator=g))  # u0; v is replaced below
        elif dtype.is_floating_point and len(shape) >= 2:
            t = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif dtype.is_floating_point:
            t = torch.randn(shape, generator=g) * 0.05
        else:
            t = torch.zeros(shape, dtype=dtype)
        out[key] = t
    for orig, u_key, v_key in pairs:
        w = out[orig].double()
        w = w.reshape(w.shape[0], -1)
        v = _normalize(w.t() @ out[u_key].double())
        out[u_key] = _normalize(w @ v).float()
        out[v_key] = v.float()
    for key, _, dt in parsed:
        out[key] = out[key].to(_DTYPES[dt]).contiguous()
    return out


def gray_picture(h: int, w: int) -> torch.Tensor:
    """The kit's grey test picture: ``(h, w)`` uint8, a gradient with a disc, a box and a ring."""
    yy = torch.arange(h, dtype=torch.float64)[:, None] / h
    xx = torch.arange(w, dtype=torch.float64)[None, :] / w
    img = (
        0.15
        + 0.55 * yy
        + 0.2 * xx
        + 0.08 * torch.sin(2 * math.pi * 3 * xx) * torch.cos(2 * math.pi * 2 * yy)
    )
    m = min(h, w)
    r2 = (yy * h - 0.30 * h) ** 2 + (xx * w - 0.35 * w) ** 2
    img = torch.where(r2 <= (0.15 * m) ** 2, torch.full_like(img, 0.9), img)
    box = (yy >= 0.60) & (yy < 0.85) & (xx >= 0.55) & (xx < 0.90)
    img = torch.where(box, torch.full_like(img, 0.1), img)
    r2 = (yy * h - 0.70 * h) ** 2 + (xx * w - 0.25 * w) ** 2
    ring = (r2 >= (0.08 * m) ** 2) & (r2 <= (0.12 * m) ** 2)
    img = torch.where(ring, torch.full_like(img, 0.6), img)
    return torch.round(img.clamp(0, 1) * 255).to(torch.uint8)


def network_input(h: int, w: int) -> torch.Tensor:
    """DeOldify's network input for :func:`gray_picture`: ``(1, 3, h, w)`` float32, the grey
    replicated to RGB, divided by 255 and ImageNet-normalised."""
    x = gray_picture(h, w).to(torch.float32)[None].repeat(3, 1, 1) / 255
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    return ((x - mean) / std)[None]


def sepia_picture() -> np.ndarray:
    """The end-to-end case's original: ``(157, 203, 3)`` uint8, :func:`gray_picture` tinted
    sepia (R = .95 g + 12, G = .85 g + 8, B = .70 g, rounded half to even)."""
    g = gray_picture(157, 203).numpy().astype(np.float64)
    tinted = [np.round(0.95 * g + 12), np.round(0.85 * g + 8), np.round(0.70 * g)]
    return np.stack(tinted, axis=-1).astype(np.uint8)
