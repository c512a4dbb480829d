"""Quality metrics for colorized images and clips. Pure numpy / OpenCV / torch, no I/O.

Images are float arrays ``(H, W, 3)`` (or ``(..., 3)``) of sRGB in ``[0, 1]``; Lab arrays are
CIE L*a*b* (D65) with L in ``[0, 100]`` and a, b roughly in ``[-128, 127]``. Clips are stacks
of frames ``(N, H, W, 3)``, their source luminance ``(N, H, W)`` in ``[0, 1]``; :func:`cdc`,
:func:`warp_error` and :func:`score_clip` measure how steady their colour is,
:func:`clip_ciede2000` and :func:`clip_colorfulness` how close to the truth and how colourful.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .color import rgb_to_ycbcr
from .temporal import dis_flow, flow_mismatch, standardize, to_flow_image, warp


def _check_last3(image: np.ndarray, name: str) -> None:
    if image.ndim < 1 or image.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3), got {image.shape}")


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB ``(H, W, 3)`` in ``[0, 1]`` -> CIE Lab ``(H, W, 3)`` (D65), float32.

    >>> rgb_to_lab(np.ones((1, 1, 3), np.float32)).round(1).tolist()
    [[[100.0, 0.0, 0.0]]]
    """
    _check_last3(rgb, "rgb")
    if rgb.ndim != 3:
        raise ValueError(f"rgb must have shape (H, W, 3), got {rgb.shape}")
    return cv2.cvtColor(np.clip(rgb, 0.0, 1.0).astype(np.float32), cv2.COLOR_RGB2Lab)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1) between two Lab arrays.

    Args:
        lab1, lab2: ``(..., 3)`` CIE Lab arrays of the same shape.

    Returns:
        ``(...)`` float64 array of differences (0 = identical; about 2.3 is a just noticeable
        difference).
    """
    _check_last3(lab1, "lab1")
    if lab1.shape != lab2.shape:
        raise ValueError(f"shapes differ: {lab1.shape} vs {lab2.shape}")
    l1, a1, b1 = np.moveaxis(lab1.astype(np.float64), -1, 0)
    l2, a2, b2 = np.moveaxis(lab2.astype(np.float64), -1, 0)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0
    c7 = c_mean**7
    g = 0.5 * (1.0 - np.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = a1 * (1.0 + g), a2 * (1.0 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    chroma_zero = (c1p * c2p) == 0

    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(chroma_zero, 0.0, dh)
    dhh = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)

    l_mean = (l1 + l2) / 2.0
    cp_mean = (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    h_mean = np.where(
        np.abs(h1p - h2p) <= 180.0,
        h_sum / 2.0,
        np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0),
    )
    h_mean = np.where(chroma_zero, h_sum, h_mean)
    t = (
        1.0
        - 0.17 * np.cos(np.radians(h_mean - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * h_mean))
        + 0.32 * np.cos(np.radians(3.0 * h_mean + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * h_mean - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((h_mean - 275.0) / 25.0) ** 2))
    cp7 = cp_mean**7
    r_c = 2.0 * np.sqrt(cp7 / (cp7 + 25.0**7))
    l50 = (l_mean - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / np.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * cp_mean
    s_h = 1.0 + 0.015 * cp_mean * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c
    tl, tc, th = dl / s_l, dc / s_c, dhh / s_h
    return np.sqrt(tl**2 + tc**2 + th**2 + r_t * tc * th)


def mean_ciede2000_rgb(rgb1: np.ndarray, rgb2: np.ndarray) -> float:
    """Mean CIEDE2000 between two sRGB images ``(H, W, 3)`` in ``[0, 1]`` of the same size."""
    return float(ciede2000(rgb_to_lab(rgb1), rgb_to_lab(rgb2)).mean())


def psnr(image: np.ndarray, reference: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all samples (``inf`` when identical).

    Args:
        image, reference: arrays of the same shape with values in ``[0, peak]``.
        peak: the largest possible value (1.0 for float images, 255 for uint8).
    """
    if image.shape != reference.shape:
        raise ValueError(f"shapes differ: {image.shape} vs {reference.shape}")
    mse = float(np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(peak**2 / mse))


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk (2003) colorfulness of an sRGB image.

    Computed on the 0-255 scale: 0 for a grey image, about 15 "slightly", 33 "moderately",
    59 "quite" and 82+ "highly" colourful.

    Args:
        rgb: ``(..., 3)`` sRGB in ``[0, 1]``.
    """
    _check_last3(rgb, "rgb")
    pixels = rgb.reshape(-1, 3).astype(np.float64) * 255.0
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    std = np.hypot(rg.std(), yb.std())
    mean = np.hypot(rg.mean(), yb.mean())
    return float(std + 0.3 * mean)


def cdc(
    frames_rgb: np.ndarray,
    gaps: tuple[int, ...] = (1, 2, 4),
    on_frame: Callable[[], None] | None = None,
) -> float:
    """Colour-distribution consistency (CDC, Liu et al., TCVC): lower is steadier.

    For each gap ``g``, the Jensen-Shannon divergence (natural log, so in ``[0, ln 2]``)
    between the 256-bin histograms of each RGB channel of frames ``t`` and ``t + g`` is
    averaged over channels and frames; CDC is the mean over the gaps. Shot cuts count like
    any other change, so compare runs on the same clip, or score each shot on its own.

    Args:
        frames_rgb: ``(N, H, W, 3)`` sRGB in ``[0, 1]``, ``N >= 2``.
        gaps: frame distances; those not shorter than the clip are skipped.
        on_frame: called after each frame's histograms (for a progress bar).

    Returns:
        The CDC; 0 for a clip whose frames all share the same colour histograms.
    """
    _check_last3(frames_rgb, "frames_rgb")
    if frames_rgb.ndim != 4 or frames_rgb.shape[0] < 2:
        raise ValueError(f"frames_rgb must have shape (N >= 2, H, W, 3), got {frames_rgb.shape}")
    codes = np.rint(np.clip(frames_rgb, 0.0, 1.0) * 255.0).astype(np.int64)
    offsets = np.arange(3) * 256
    hists = np.stack([_histograms(f, offsets, on_frame) for f in codes]).reshape(len(codes), 3, 256)
    probs = hists / hists.sum(axis=-1, keepdims=True)
    per_gap = [_js_divergence(probs[:-g], probs[g:]).mean() for g in gaps if 0 < g < len(probs)]
    if not per_gap:
        raise ValueError(f"no gap in {gaps} is shorter than the clip ({len(probs)} frames)")
    return float(np.mean(per_gap))


def warp_error(
    source_luma_frames: np.ndarray,
    colorized_rgb_frames: np.ndarray,
    max_mismatch: float = 1.0,
    on_frame: Callable[[], None] | None = None,
) -> float:
    """Flow warp error of the colour: how much chroma changes along the source's motion.

    The flow between consecutive frames is DIS optical flow on the source luminance (the
    same flow the smoother uses); pixels whose forward/backward flows disagree by more than
    ``max_mismatch`` pixels, or that come from outside the previous frame, are occluded and
    ignored. Each frame pair scores the mean squared (Cb, Cr) difference between frame ``t``
    and frame ``t - 1`` warped onto it; the result is the mean over pairs. Shot cuts count like
    any other pair, so compare runs on the same clip, or score each shot on its own.

    Args:
        source_luma_frames: ``(N, H, W)`` source luminance in ``[0, 1]``, ``N >= 2``.
        colorized_rgb_frames: ``(N, H, W, 3)`` sRGB in ``[0, 1]`` of the same size.
        max_mismatch: forward/backward disagreement (pixels) above which a pixel is occluded.
        on_frame: called after each frame pair (for a progress bar).

    Returns:
        Mean squared chroma difference, in (Cb, Cr) units of ``[-0.5, 0.5]``; 0 when the
        colour moves exactly with the source.
    """
    _check_last3(colorized_rgb_frames, "colorized_rgb_frames")
    if source_luma_frames.ndim != 3 or source_luma_frames.shape[0] < 2:
        raise ValueError(
            f"source_luma_frames must have shape (N >= 2, H, W), got {source_luma_frames.shape}"
        )
    if colorized_rgb_frames.shape != (*source_luma_frames.shape, 3):
        raise ValueError(
            f"colorized_rgb_frames {colorized_rgb_frames.shape} does not match "
            f"source_luma_frames {source_luma_frames.shape}"
        )
    rgb = torch.from_numpy(np.ascontiguousarray(colorized_rgb_frames, dtype=np.float32))
    chroma = rgb_to_ycbcr(rgb.permute(0, 3, 1, 2))[:, 1:].permute(0, 2, 3, 1).numpy()
    images = [to_flow_image(standardize(y.astype(np.float32))) for y in source_luma_frames]
    errors = []
    for t in range(1, len(images)):
        backward = dis_flow(images[t], images[t - 1])
        forward = dis_flow(images[t - 1], images[t])
        visible = flow_mismatch(backward, forward) <= max_mismatch
        if visible.any():
            diff = chroma[t] - warp(np.ascontiguousarray(chroma[t - 1]), backward)
            errors.append(float((diff[visible] ** 2).mean()))
        if on_frame is not None:
            on_frame()
    return float(np.mean(errors)) if errors else 0.0


@dataclass(frozen=True)
class ClipScores:
    """The scores of a colorized clip (see :func:`score_clip`).

    Attributes:
        cdc: colour-distribution consistency (:func:`cdc`), lower is steadier.
        warp_error: chroma warp error (:func:`warp_error`), lower is steadier.
        ciede2000: mean CIEDE2000 to the truth over all pixels and frames, None without truth.
        psnr: PSNR in dB of the RGB frames against the truth, None without truth.
    """

    cdc: float
    warp_error: float
    ciede2000: float | None = None
    psnr: float | None = None


def score_clip(
    source_luma_frames: np.ndarray,
    colorized_rgb_frames: np.ndarray,
    truth_rgb_frames: np.ndarray | None = None,
    on_frame: Callable[[], None] | None = None,
) -> ClipScores:
    """Temporal consistency of a colorized clip, and its distance to the truth when known.

    Args:
        source_luma_frames: ``(N, H, W)`` source luminance in ``[0, 1]``, ``N >= 2``.
        colorized_rgb_frames: ``(N, H, W, 3)`` sRGB in ``[0, 1]``.
        truth_rgb_frames: ``(N, H, W, 3)`` sRGB in ``[0, 1]`` of the original colour clip, or
            None.
        on_frame: called after each step of the scoring: ``3N - 1`` times with the truth,
            ``2N - 1`` without (for a progress bar).

    Returns:
        The scores; ``ciede2000`` and ``psnr`` are None without ``truth_rgb_frames``.
    """
    steadiness = (
        cdc(colorized_rgb_frames, on_frame=on_frame),
        warp_error(source_luma_frames, colorized_rgb_frames, on_frame=on_frame),
    )
    if truth_rgb_frames is None:
        return ClipScores(*steadiness)
    if truth_rgb_frames.shape != colorized_rgb_frames.shape:
        raise ValueError(
            f"truth_rgb_frames {truth_rgb_frames.shape} does not match "
            f"colorized_rgb_frames {colorized_rgb_frames.shape}"
        )
    difference = clip_ciede2000(colorized_rgb_frames, truth_rgb_frames, on_frame)
    return ClipScores(*steadiness, difference, psnr(colorized_rgb_frames, truth_rgb_frames))


def clip_ciede2000(
    frames_rgb: np.ndarray,
    truth_rgb_frames: np.ndarray,
    on_frame: Callable[[], None] | None = None,
) -> float:
    """Mean CIEDE2000 of a clip to its truth, over all pixels and frames.

    Args:
        frames_rgb, truth_rgb_frames: ``(N, H, W, 3)`` sRGB in ``[0, 1]`` of the same shape.
        on_frame: called after each frame (for a progress bar).

    >>> grey = np.full((2, 4, 4, 3), 0.5, np.float32)
    >>> clip_ciede2000(grey, grey)
    0.0
    """
    _check_last3(frames_rgb, "frames_rgb")
    if frames_rgb.ndim != 4 or truth_rgb_frames.shape != frames_rgb.shape:
        raise ValueError(
            f"frames_rgb {frames_rgb.shape} and truth_rgb_frames {truth_rgb_frames.shape} "
            "must have one shape (N, H, W, 3)"
        )
    differences = []
    for frame, truth in zip(frames_rgb, truth_rgb_frames, strict=True):
        differences.append(mean_ciede2000_rgb(frame, truth))
        if on_frame is not None:
            on_frame()
    return float(np.mean(differences))


def clip_colorfulness(frames_rgb: np.ndarray) -> float:
    """Mean :func:`colorfulness` of a clip's frames ``(N, H, W, 3)``, sRGB in ``[0, 1]``
    (each frame scored as a picture of its own, as photos are).

    >>> clip_colorfulness(np.full((3, 2, 2, 3), 0.5))
    0.0
    """
    _check_last3(frames_rgb, "frames_rgb")
    if frames_rgb.ndim != 4 or not len(frames_rgb):
        raise ValueError(f"frames_rgb must have shape (N >= 1, H, W, 3), got {frames_rgb.shape}")
    return float(np.mean([colorfulness(frame) for frame in frames_rgb]))


def _histograms(
    codes: np.ndarray, offsets: np.ndarray, on_frame: Callable[[], None] | None
) -> np.ndarray:
    """The three 256-bin channel histograms of one frame's ``(H, W, 3)`` codes, as ``(768,)``."""
    hist = np.bincount((codes.reshape(-1, 3) + offsets).ravel(), minlength=768)
    if on_frame is not None:
        on_frame()
    return hist


def _js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (nats) of distributions along the last axis."""
    m = (p + q) / 2.0
    return (_kl(p, m) + _kl(q, m)) / 2.0


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    ratio = np.divide(p, q, out=np.ones_like(p), where=p > 0)
    return (p * np.log(ratio)).sum(axis=-1)
