"""Flow-guided temporal smoothing of chroma, reset at scene cuts. Pure numpy / OpenCV compute.

Per-frame colorizers flicker: the same coat is brown in one frame and blue in the next. This
module carries the colour of the previous (already smoothed) frame along the motion of the
source and blends it with the colour the model produced for the current frame:

1. The source luminance of both frames is reduced (longer side ``flow_side`` pixels) and
   standardised (zero mean, unit deviation per frame), so that flashes and fades do not look
   like motion. OpenCV's DIS optical flow gives the backward flow (current -> previous) and
   the forward flow (previous -> current).
2. A per-pixel confidence in ``[0, 1]`` multiplies two Gaussian terms: the residual of the
   previous luminance warped onto the current one, and the forward/backward consistency of the
   flow (large at occlusions and where tracking failed). Pixels whose source lies outside the
   previous frame get no confidence.
3. ``out = chroma + weight * (gain * warped_previous_out - chroma)`` with
   ``weight = strength * confidence / max(gain, 1)``: a recursive filter whose memory decays
   at least as fast as ``strength ** k``. ``gain`` is the contrast ratio of the current frame
   to the tracked previous one, since chroma scales with the light in a fade or a flash.
4. A shot-cut detector on luminance thumbnails (normalised cross-correlation that tolerates a
   small global shift, hence gain, offset and pan invariant) resets the filter, so no colour
   is carried across a cut; the first frame of a shot is returned unchanged.

All state lives in an explicit :class:`SmootherState`. Because the filter forgets at least as
fast as ``strength ** k``, a segment that starts from ``state=None`` and is fed
:func:`warmup_frames` frames before its first frame reproduces an uninterrupted run to within
``tolerance`` (see :func:`warmup_frames`).

The smoothing works on chroma at render resolution; the caller restores the full-resolution
source luminance afterwards (see :mod:`deoldify_video.color`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch

from .errors import UsageError

# Luminance thumbnails for the cut detector: (width, height) and the search margin in pixels.
_THUMB_SIZE = (36, 28)
_THUMB_MARGIN = 2
# Deviation floor (luma units) when standardising frames for the flow, so flat frames stay flat.
_MIN_STD = 0.02
# Grey levels per standard deviation in the 8-bit images handed to DIS.
_FLOW_GAIN = 40.0


@dataclass(frozen=True)
class SmoothingConfig:
    """Settings of :func:`smooth_chroma`.

    Attributes:
        strength: 0..1 (1 excluded), the largest weight given to the previous frame's colour.
            0 returns the input unchanged; 0.6 cuts the variance of independent frame-to-frame
            chroma noise about tenfold where the motion is tracked.
        flow_side: the optical flow runs on the luminance reduced so that its longer side has
            this many pixels (never enlarged); chroma needs no finer motion.
        residual_sigma: luminance warp residual, in standard deviations of the frame, at which
            the confidence falls to ``exp(-0.5)``.
        consistency_sigma: forward/backward flow mismatch, in render pixels, at which the
            confidence falls to ``exp(-0.5)``.
        cut_threshold: a frame starts a new shot when the best normalised correlation of its
            luminance thumbnail with the previous one is below this (-1..1).
        flat_std: a frame whose thumbnail deviation (luma units) is below this is featureless
            (black, white, the middle of a fade) and resets the filter.
    """

    strength: float = 0.6
    flow_side: int = 128
    residual_sigma: float = 0.3
    consistency_sigma: float = 1.0
    cut_threshold: float = 0.5
    flat_std: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength < 1.0:
            raise UsageError(f"smoothing strength must be in [0, 1), got {self.strength}")
        if self.flow_side < 16:
            raise UsageError(f"flow_side must be at least 16, got {self.flow_side}")
        if self.residual_sigma <= 0.0 or self.consistency_sigma <= 0.0:
            raise UsageError("residual_sigma and consistency_sigma must be positive")
        if not -1.0 <= self.cut_threshold <= 1.0:
            raise UsageError(f"cut_threshold must be in [-1, 1], got {self.cut_threshold}")
        if self.flat_std < 0.0:
            raise UsageError(f"flat_std must be >= 0, got {self.flat_std}")


@dataclass(frozen=True)
class SmootherState:
    """What :func:`smooth_chroma` remembers of the last frame it processed.

    The arrays are never modified in place, so a state may be shared or kept as a checkpoint;
    :meth:`copy` gives an independent deep copy.

    Attributes:
        small_luma: ``(hf, wf)`` float32, the luminance in ``[0, 1]`` at flow resolution.
        thumb: ``(28, 36)`` float32, the cut detector's luminance thumbnail in ``[0, 1]``.
        chroma: ``(2, h, w)`` float32, the smoothed (Cb, Cr) in ``[-0.5, 0.5]`` at render size.
    """

    small_luma: np.ndarray
    thumb: np.ndarray
    chroma: np.ndarray

    def copy(self) -> SmootherState:
        """An independent copy (its arrays share no memory with this state)."""
        return SmootherState(self.small_luma.copy(), self.thumb.copy(), self.chroma.copy())


def warmup_frames(config: SmoothingConfig, tolerance: float = 1.0 / 512) -> int:
    """Frames to feed before a segment so that its output matches an uninterrupted run.

    Starting from ``state=None`` at frame ``s - k`` instead of from the state of a run that
    began earlier changes only the carried chroma; each frame shrinks that difference by a
    factor of at most ``strength`` (the carried weight times the contrast gain never exceeds
    it), and chroma differences are at most 1. So after ``k`` frames the outputs differ by at
    most ``strength ** k <= tolerance``. The default tolerance is half an 8-bit chroma step.

    Args:
        config: the smoothing settings.
        tolerance: largest allowed chroma difference, in ``(0, 1)``.

    Returns:
        ``k >= 1``; 1 when smoothing is off (the cut detector looks one frame back).
    """
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
    if config.strength == 0.0:
        return 1
    return max(1, math.ceil(math.log(tolerance) / math.log(config.strength)))


def smooth_chroma(
    luma: torch.Tensor,
    chroma: torch.Tensor,
    state: SmootherState | None,
    config: SmoothingConfig | None = None,
) -> tuple[torch.Tensor, SmootherState]:
    """Smooth the chroma of consecutive frames along the motion of their luminance.

    Frames are processed in order, one after another, so splitting a sequence into batches
    of any length gives identical results when each call receives the previous call's state.

    Args:
        luma: ``(N, 1, h, w)`` source luminance in ``[0, 1]`` at render size, ``N >= 1``.
        chroma: ``(N, 2, h, w)`` model (Cb, Cr) in ``[-0.5, 0.5]``, same size as ``luma``.
        state: what the previous call returned, or None at the start of a run (the first
            frame is then returned unchanged).
        config: smoothing settings; the defaults when None.

    Returns:
        The smoothed chroma, ``(N, 2, h, w)`` in ``[-0.5, 0.5]`` with the dtype and device of
        ``chroma``, and the state after the last frame.

    Raises:
        ValueError: on shapes that do not match each other or the state.
    """
    config = config or SmoothingConfig()
    _check_inputs(luma, chroma, state)
    if config.strength == 0.0:
        # Nothing is carried over: only the last frame matters for the state.
        _, state = _step(_planes(luma[-1:])[0, 0], _planes(chroma[-1:])[0], None, config)
        return chroma.clone(), state
    lumas, chromas = _planes(luma), _planes(chroma)
    out = np.empty_like(chromas)
    for i in range(len(lumas)):
        out[i], state = _step(lumas[i, 0], chromas[i], state, config)
    assert state is not None
    return torch.from_numpy(out).to(device=chroma.device, dtype=chroma.dtype), state


def detect_cuts(
    luma_prev: torch.Tensor | None,
    luma: torch.Tensor,
    config: SmoothingConfig | None = None,
) -> torch.Tensor:
    """Which frames start a new shot, judged on luminance only.

    Each frame is compared with the one before it (the first with ``luma_prev``): a cut is a
    normalised correlation of their thumbnails below ``config.cut_threshold`` (see
    :func:`cut_scores`), or a featureless frame on either side. Flashes and fades change
    gain and offset, which the correlation ignores, so they are not cuts.

    Args:
        luma_prev: ``(1, 1, h, w)`` luminance in ``[0, 1]`` of the frame before ``luma[0]``,
            or None (the first frame then counts as a cut).
        luma: ``(N, 1, h, w)`` luminance in ``[0, 1]``.
        config: thresholds; the defaults when None.

    Returns:
        ``(N,)`` bool tensor, True where a frame starts a new shot.
    """
    config = config or SmoothingConfig()
    return cut_scores(luma_prev, luma, config) < config.cut_threshold


def cut_scores(
    luma_prev: torch.Tensor | None, luma: torch.Tensor, config: SmoothingConfig | None = None
) -> torch.Tensor:
    """Similarity of each frame to the one before it, for shot-cut detection.

    Args:
        luma_prev: ``(1, 1, h, w)`` luminance in ``[0, 1]`` before ``luma[0]``, or None.
        luma: ``(N, 1, h, w)`` luminance in ``[0, 1]``.
        config: ``flow_side`` (the thumbnails are made from the flow image) and ``flat_std``
            (thumbnails with a deviation below it score -1); the defaults when None.

    Returns:
        ``(N,)`` float tensor in ``[-1, 1]``: the best normalised cross-correlation of the
        ``36x28`` thumbnails over global shifts of up to 2 thumbnail pixels; -1 for the first
        frame when ``luma_prev`` is None.
    """
    config = config or SmoothingConfig()
    if luma.ndim != 4 or luma.shape[1] != 1:
        raise ValueError(f"luma must have shape (N, 1, h, w), got {tuple(luma.shape)}")
    frames = _planes(luma)[:, 0]
    prev = None
    if luma_prev is not None:
        prev = _thumbnail(_reduce(_planes(luma_prev[-1:])[0, 0], config.flow_side))
    scores = []
    for frame in frames:
        thumb = _thumbnail(_reduce(frame, config.flow_side))
        scores.append(-1.0 if prev is None else _similarity(prev, thumb, config.flat_std))
        prev = thumb
    return torch.tensor(scores, dtype=torch.float32)


def dis_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Dense optical flow from ``first`` to ``second`` (OpenCV DIS, "fast" preset).

    Args:
        first, second: ``(h, w)`` uint8 images of the same size.

    Returns:
        ``(h, w, 2)`` float32 flow (dx, dy) in pixels with ``first(p) ~ second(p + flow(p))``.
    """
    dis = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_FAST)
    flow = np.zeros((*first.shape[:2], 2), np.float32)
    return np.asarray(dis.calc(first, second, flow), dtype=np.float32)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` at ``p + flow(p)`` (bilinear, edges replicated).

    Args:
        image: ``(h, w)`` or ``(h, w, c)`` float32.
        flow: ``(h, w, 2)`` float32 displacement in pixels.

    Returns:
        Array shaped like ``image``.
    """
    return _remap(image, _grid(flow.shape[0], flow.shape[1]) + flow)


def flow_mismatch(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Forward/backward consistency error of a flow pair, infinite where tracking leaves the frame.

    Args:
        backward: ``(h, w, 2)`` flow from the current frame to the previous one.
        forward: ``(h, w, 2)`` flow from the previous frame to the current one.

    Returns:
        ``(h, w)`` float32 ``|backward(p) + forward(p + backward(p))|`` in pixels; ``inf``
        where ``p + backward(p)`` falls outside the frame.
    """
    h, w = backward.shape[:2]
    source = _grid(h, w) + backward
    round_trip = backward + _remap(forward, source)
    mismatch = np.hypot(round_trip[..., 0], round_trip[..., 1])
    x, y = source[..., 0], source[..., 1]
    mismatch[(x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)] = np.inf
    return mismatch


def standardize(luma: np.ndarray) -> np.ndarray:
    """Luminance ``(h, w)`` in ``[0, 1]`` -> zero mean, unit deviation (floor 0.02), float32."""
    mean = float(luma.mean())
    std = max(float(luma.std()), _MIN_STD)
    return ((luma - mean) / std).astype(np.float32)


def to_flow_image(standardized: np.ndarray) -> np.ndarray:
    """Standardised luminance ``(h, w)`` -> the uint8 image handed to :func:`dis_flow`."""
    return np.clip(128.0 + _FLOW_GAIN * standardized, 0.0, 255.0).astype(np.uint8)


def _step(
    luma: np.ndarray, chroma: np.ndarray, state: SmootherState | None, config: SmoothingConfig
) -> tuple[np.ndarray, SmootherState]:
    """One frame: ``luma`` ``(h, w)``, ``chroma`` ``(2, h, w)`` -> smoothed chroma and state."""
    h, w = luma.shape
    small = _reduce(luma, config.flow_side)
    thumb = _thumbnail(small)
    if (
        config.strength == 0.0
        or state is None
        or state.small_luma.shape != small.shape
        or _similarity(state.thumb, thumb, config.flat_std) < config.cut_threshold
    ):
        return chroma, SmootherState(small, thumb, chroma.copy())
    scale = np.array([w / small.shape[1], h / small.shape[0]], np.float32)
    confidence, flow, gain = _track(state.small_luma, small, float(scale.mean()), config)
    coordinates = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * scale
    coordinates += _grid(h, w)
    # Dividing by a gain above 1 keeps the memory decaying at least as fast as strength ** k.
    carried = config.strength / max(gain, 1.0)
    weight = carried * cv2.resize(confidence, (w, h), interpolation=cv2.INTER_LINEAR)
    # out = chroma + weight * (gain * warped previous - chroma), in place, plane by plane.
    out = np.empty_like(chroma)
    for plane, previous, current in zip(out, state.chroma, chroma, strict=True):
        _remap(previous, coordinates, plane)
        if gain != 1.0:
            plane *= gain
            np.clip(plane, -0.5, 0.5, out=plane)
        plane -= current
        plane *= weight
        plane += current
    return out, SmootherState(small, thumb, out)


def _track(
    prev: np.ndarray, cur: np.ndarray, upscale: float, config: SmoothingConfig
) -> tuple[np.ndarray, np.ndarray, float]:
    """Follow the motion from ``prev`` to ``cur``, luminance ``(hf, wf)`` in ``[0, 1]``.

    ``upscale`` is the size ratio of render pixels to flow pixels.

    Returns:
        The confidence ``(hf, wf)`` in ``[0, 1]``, the backward flow ``(hf, wf, 2)`` and the
        contrast gain of ``cur`` over the tracked part of ``prev`` (1 unless a fade or flash
        scales the picture; chroma scales with it).
    """
    prev_std, cur_std = standardize(prev), standardize(cur)
    prev_img, cur_img = to_flow_image(prev_std), to_flow_image(cur_std)
    backward = dis_flow(cur_img, prev_img)
    forward = dis_flow(prev_img, cur_img)
    residual = cur_std - warp(prev_std, backward)
    # Mismatch in flow pixels -> render pixels.
    mismatch = flow_mismatch(backward, forward) * upscale
    exponent = (residual / config.residual_sigma) ** 2 + (mismatch / config.consistency_sigma) ** 2
    confidence = np.exp(-0.5 * exponent).astype(np.float32)
    return confidence, backward, _contrast_gain(warp(prev, backward), cur, confidence)


def _contrast_gain(prev: np.ndarray, cur: np.ndarray, weight: np.ndarray) -> float:
    """Ratio of the weighted deviations of ``cur`` and aligned ``prev``, clipped to [0.5, 2]."""
    total = float(weight.sum())
    if total < 1e-3 * weight.size:
        return 1.0
    deviations = []
    for image in (prev, cur):
        # Blurring both first hides the slight blur that bilinear warping gives ``prev``.
        image = cv2.GaussianBlur(image, (0, 0), 1.5)
        mean = float((weight * image).sum()) / total
        deviations.append(float((weight * (image - mean) ** 2).sum()) / total)
    if deviations[0] <= _MIN_STD**2 * 1e-2:
        return 1.0
    return float(np.clip(np.sqrt(deviations[1] / deviations[0]), 0.5, 2.0))


def _reduce(luma: np.ndarray, side: int) -> np.ndarray:
    """Luminance ``(h, w)`` -> area-averaged float32 copy whose longer side is at most ``side``."""
    h, w = luma.shape
    factor = min(1.0, side / max(h, w))
    size = (max(8, round(w * factor)), max(8, round(h * factor)))
    return cv2.resize(luma, size, interpolation=cv2.INTER_AREA).astype(np.float32, copy=False)


def _thumbnail(small: np.ndarray) -> np.ndarray:
    """Reduced luminance ``(hf, wf)`` -> ``(28, 36)`` float32 area-averaged thumbnail."""
    return cv2.resize(small, _THUMB_SIZE, interpolation=cv2.INTER_AREA)


def _planes(frames: torch.Tensor) -> np.ndarray:
    """A ``(N, C, h, w)`` tensor as a C-contiguous float32 numpy array on the CPU."""
    return np.ascontiguousarray(frames.detach().to("cpu", torch.float32).numpy())


def _similarity(prev: np.ndarray, cur: np.ndarray, flat_std: float) -> float:
    """Best normalised correlation of ``cur``'s centre with ``prev`` over small shifts."""
    if float(prev.std()) < flat_std or float(cur.std()) < flat_std:
        return -1.0
    m = _THUMB_MARGIN
    scores = cv2.matchTemplate(prev, cur[m:-m, m:-m], cv2.TM_CCOEFF_NORMED)
    return float(np.nan_to_num(scores, nan=-1.0).max())


def _remap(image: np.ndarray, coordinates: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Sample ``image`` at ``(h, w, 2)`` float32 (x, y) pixel coordinates (bilinear).

    Writes into ``out`` (shaped like the result, contiguous) when given.
    """
    # The stubs miss that map2 may be None when map1 holds (x, y) pairs.
    return cv2.remap(  # type: ignore[call-overload]
        image,
        coordinates,
        None,
        dst=out,
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> np.ndarray:
    """Read-only ``(h, w, 2)`` float32 (x, y) coordinates of every pixel."""
    grid_y, grid_x = np.indices((h, w), dtype=np.float32)
    grid = np.stack([grid_x, grid_y], axis=-1)
    grid.setflags(write=False)
    return grid


def _check_inputs(luma: torch.Tensor, chroma: torch.Tensor, state: SmootherState | None) -> None:
    if luma.ndim != 4 or luma.shape[1] != 1 or luma.shape[0] < 1:
        raise ValueError(f"luma must have shape (N, 1, h, w) with N >= 1, got {tuple(luma.shape)}")
    if chroma.ndim != 4 or chroma.shape[1] != 2:
        raise ValueError(f"chroma must have shape (N, 2, h, w), got {tuple(chroma.shape)}")
    if luma.shape[0] != chroma.shape[0] or luma.shape[2:] != chroma.shape[2:]:
        raise ValueError(
            f"luma {tuple(luma.shape)} and chroma {tuple(chroma.shape)} differ in N, h or w"
        )
    if state is not None and state.chroma.shape[1:] != tuple(chroma.shape[2:]):
        raise ValueError(
            f"state is for frames of {state.chroma.shape[1:]}, got {tuple(chroma.shape[2:])}"
        )
