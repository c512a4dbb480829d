"""Tests of deoldify_video.temporal on clips made from real photographs and video.

The clip: three shots of 16 frames at 256x192 (a pan over a photograph, a zoom into another
one with a flash, frames of Big Buck Bunny fading out), turned grey. A flickering per-frame
colorizer is simulated from the true chroma (a random global hue and saturation jitter plus
smooth random blotches, drawn anew for every frame); smoothing must make it steadier without
moving it away from the truth, and must carry no colour across the cuts.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch

from deoldify_video.color import rgb_to_ycbcr, ycbcr_to_rgb
from deoldify_video.errors import UsageError
from deoldify_video.metrics import cdc, mean_ciede2000_rgb, warp_error
from deoldify_video.temporal import (
    SmootherState,
    SmoothingConfig,
    cut_scores,
    detect_cuts,
    smooth_chroma,
    warmup_frames,
)

from .conftest import DATA

SIZE = (256, 192)  # (width, height): the render size of a 640x480 frame
SHOT = 16
CUTS = (SHOT, 2 * SHOT)
FLASH = SHOT + 7
FADE_START = 2 * SHOT + 8


@dataclass(frozen=True)
class Clip:
    """A grey clip with its truth: luma ``(N, 1, h, w)``, chroma ``(N, 2, h, w)``."""

    luma: torch.Tensor
    chroma: torch.Tensor


def _read_photo(relative: str) -> np.ndarray:
    image = cv2.imread(str(DATA / "photos" / relative), cv2.IMREAD_COLOR)
    assert image is not None, relative
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def _camera_move(photo: np.ndarray, frames: int, shift: float, zoom: float) -> list[np.ndarray]:
    """A pan of ``shift`` px/frame and a zoom to ``zoom`` over a photo scaled to 1.5x SIZE."""
    w, h = SIZE
    big = cv2.resize(photo, (w * 3 // 2, h * 3 // 2), interpolation=cv2.INTER_AREA)
    out = []
    for t in range(frames):
        scale = 1.0 + (zoom - 1.0) * t / (frames - 1)
        cx, cy = w * 0.75 - 20 + shift * t, h * 0.75 + 0.3 * shift * t
        matrix = np.array(
            [[scale, 0.0, w / 2 - scale * cx], [0.0, scale, h / 2 - scale * cy]], np.float32
        )
        out.append(cv2.warpAffine(big, matrix, SIZE, flags=cv2.INTER_LINEAR))
    return out


def _video_frames(name: str, frames: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(DATA / "video" / name))
    try:
        out = []
        for _ in range(frames):
            ok, frame = capture.read()
            assert ok, f"{name} ended early"
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
            out.append(cv2.resize(rgb, SIZE, interpolation=cv2.INTER_AREA))
        return out
    finally:
        capture.release()


def make_clip() -> Clip:
    """48 colour frames with cuts at 16 and 32, a flash at 23 and a fade-out from 40."""
    frames = _camera_move(
        _read_photo("plasma-workspace-wallpapers/ColorfulCups.jpg"), SHOT, 2.5, 1.0
    )
    frames += _camera_move(_read_photo("mate-backgrounds/LadyBird.jpg"), SHOT, 0.0, 1.25)
    frames += _video_frames("bigbuckbunny.mp4", SHOT)
    frames[FLASH] = np.clip(frames[FLASH] * 1.5 + 0.15, 0.0, 1.0)
    for t in range(FADE_START, len(frames)):
        frames[t] = frames[t] * (1.0 - 0.08 * (t - FADE_START + 1))
    rgb = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
    ycbcr = rgb_to_ycbcr(rgb)
    return Clip(ycbcr[:, :1].contiguous(), ycbcr[:, 1:].contiguous())


def flicker(chroma: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A simulated per-frame colorizer: truth ``(N, 2, h, w)`` with independent per-frame errors.

    Each frame gets a global hue rotation (sd 0.25 rad), a saturation gain (log-sd 0.2) and
    smooth chroma blotches (a 4x3 grid of sd 0.04, bicubic upsampled).
    """
    rng = np.random.default_rng(seed)
    n, _, h, w = chroma.shape
    out = torch.empty_like(chroma)
    for i in range(n):
        angle = rng.normal(0.0, 0.25)
        gain = float(np.exp(rng.normal(0.0, 0.2)))
        cos, sin = gain * np.cos(angle), gain * np.sin(angle)
        cb, cr = chroma[i]
        blotch = cv2.resize(
            rng.normal(0.0, 0.04, (3, 4, 2)).astype(np.float32),
            (w, h),
            interpolation=cv2.INTER_CUBIC,
        )
        blotch_t = torch.from_numpy(blotch).permute(2, 0, 1)
        out[i] = torch.stack([cos * cb - sin * cr, sin * cb + cos * cr]) + blotch_t
    return out.clamp(-0.5, 0.5)


def to_rgb(luma: torch.Tensor, chroma: torch.Tensor) -> np.ndarray:
    """``(N, 1, h, w)`` luma and ``(N, 2, h, w)`` chroma -> ``(N, h, w, 3)`` sRGB numpy."""
    return ycbcr_to_rgb(torch.cat([luma, chroma], dim=1)).permute(0, 2, 3, 1).numpy()


def run(
    luma: torch.Tensor, chroma: torch.Tensor, config: SmoothingConfig, batch: int
) -> torch.Tensor:
    """Smooth a whole clip in batches of ``batch`` frames."""
    state: SmootherState | None = None
    parts = []
    for start in range(0, len(luma), batch):
        out, state = smooth_chroma(
            luma[start : start + batch], chroma[start : start + batch], state, config
        )
        parts.append(out)
    return torch.cat(parts)


@pytest.fixture(scope="module")
def clip() -> Clip:
    return make_clip()


@pytest.fixture(scope="module")
def flickered(clip: Clip) -> torch.Tensor:
    return flicker(clip.chroma)


# Windows of steady material in each shot (the flash frame and the fade are left out of the
# CDC windows: their histograms change for real, in the truth as much as in any colorization).
STEADY = ((0, SHOT), (SHOT, FLASH), (FLASH + 1, 2 * SHOT), (2 * SHOT, FADE_START))
ALL_SHOTS = ((0, SHOT), (SHOT, 2 * SHOT), (2 * SHOT, 3 * SHOT))


def _mean_ciede2000(luma: torch.Tensor, chroma: torch.Tensor, truth: torch.Tensor) -> float:
    rgb, ref = to_rgb(luma, chroma), to_rgb(luma, truth)
    return float(np.mean([mean_ciede2000_rgb(a, b) for a, b in zip(rgb, ref, strict=True)]))


def test_smoothing_steadies_a_flickering_colorizer(clip: Clip, flickered: torch.Tensor) -> None:
    smoothed = run(clip.luma, flickered, SmoothingConfig(), batch=8)
    raw_rgb, smooth_rgb = to_rgb(clip.luma, flickered), to_rgb(clip.luma, smoothed)
    source = clip.luma[:, 0].numpy()
    for a, b in ALL_SHOTS:
        before = warp_error(source[a:b], raw_rgb[a:b])
        after = warp_error(source[a:b], smooth_rgb[a:b])
        assert after <= 0.6 * before, f"warp error of frames {a}-{b}: {before:.2e} -> {after:.2e}"
    for a, b in STEADY:
        before, after = cdc(raw_rgb[a:b]), cdc(smooth_rgb[a:b])
        assert after <= 0.6 * before, f"CDC of frames {a}-{b}: {before:.4f} -> {after:.4f}"
    before = _mean_ciede2000(clip.luma, flickered, clip.chroma)
    after = _mean_ciede2000(clip.luma, smoothed, clip.chroma)
    assert after <= before + 0.3


def test_no_colour_crosses_a_cut(clip: Clip, flickered: torch.Tensor) -> None:
    smoothed = run(clip.luma, flickered, SmoothingConfig(strength=0.9), batch=8)
    for cut in CUTS:
        frame = slice(cut, cut + 1)
        assert _mean_ciede2000(clip.luma[frame], smoothed[frame], flickered[frame]) < 1.0
        # Stronger still: the filter restarts, so the first frame of a shot is left as it is.
        assert torch.equal(smoothed[cut], flickered[cut])


def test_cuts_are_found_and_flash_and_fade_are_not_cuts(clip: Clip) -> None:
    cuts = detect_cuts(None, clip.luma)
    assert cuts.nonzero().flatten().tolist() == [0, *CUTS]
    scores = cut_scores(clip.luma[:1], clip.luma[1:])
    assert scores[FLASH - 1] > 0.8 and scores[FLASH] > 0.8  # into and out of the flash
    assert scores[FADE_START - 1 :].min() > 0.8


def test_fade_through_black_resets() -> None:
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.random((48, 64)).astype(np.float32), (0, 0), 2.0)
    gains = [1.0, 0.5, 0.1, 0.0, 0.1, 0.5, 1.0]
    luma = torch.from_numpy(np.stack([g * texture for g in gains]))[:, None]
    cuts = detect_cuts(None, luma).tolist()
    assert cuts[3] and cuts[4]  # the black frame and the first frame after it
    assert not cuts[1] and not cuts[6]
    chroma = torch.full((len(gains), 2, 48, 64), 0.1)
    out, _ = smooth_chroma(luma, chroma, None, SmoothingConfig())
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("batch", [1, 3])
def test_batch_size_does_not_change_the_result(
    clip: Clip, flickered: torch.Tensor, batch: int
) -> None:
    frames = slice(8, 28)  # across a cut and the flash
    reference = run(clip.luma[frames], flickered[frames], SmoothingConfig(), batch=8)
    result = run(clip.luma[frames], flickered[frames], SmoothingConfig(), batch=batch)
    assert torch.equal(result, reference)


def test_strength_zero_returns_the_input(clip: Clip, flickered: torch.Tensor) -> None:
    out, state = smooth_chroma(clip.luma[:6], flickered[:6], None, SmoothingConfig(strength=0))
    assert torch.equal(out, flickered[:6])
    out, _ = smooth_chroma(clip.luma[6:9], flickered[6:9], state, SmoothingConfig(strength=0))
    assert torch.equal(out, flickered[6:9])


def test_warm_up_reproduces_an_uninterrupted_run(clip: Clip, flickered: torch.Tensor) -> None:
    config = SmoothingConfig()
    tolerance = 1.0 / 512
    warmup = warmup_frames(config, tolerance)
    start = SHOT - 1  # the warm-up lies inside the first shot: no cut helps it converge
    assert start - warmup >= 1
    reference = run(clip.luma, flickered, config, batch=8)[start:]
    frames = slice(start - warmup, None)
    resumed = run(clip.luma[frames], flickered[frames], config, batch=5)[warmup:]
    assert (resumed - reference).abs().max() <= tolerance
    # Without the warm-up the segment's start differs visibly.
    cold = run(clip.luma[start:], flickered[start:], config, batch=5)
    assert (cold - reference).abs().max() > 10 * tolerance


def test_warmup_frames_follows_the_strength() -> None:
    assert warmup_frames(SmoothingConfig(strength=0.0)) == 1
    assert warmup_frames(SmoothingConfig(strength=0.5), tolerance=1 / 1024) == 10
    assert warmup_frames(SmoothingConfig(strength=0.9)) > warmup_frames(SmoothingConfig())


def test_steady_colour_is_kept(clip: Clip) -> None:
    """Smoothing a colorization that does not flicker (the truth) barely changes it."""
    smoothed = run(clip.luma, clip.chroma, SmoothingConfig(), batch=8)
    assert _mean_ciede2000(clip.luma, smoothed, clip.chroma) < 0.5


def test_state_is_explicit_and_copyable() -> None:
    rng = np.random.default_rng(2)
    texture = cv2.GaussianBlur(rng.random((48, 64)).astype(np.float32), (0, 0), 2.0)
    luma = torch.from_numpy(np.stack([np.roll(texture, t, axis=1) for t in range(4)]))[:, None]
    chroma = torch.from_numpy(rng.uniform(-0.2, 0.2, (4, 2, 48, 64)).astype(np.float32))
    _, state = smooth_chroma(luma[:2], chroma[:2], None)
    saved = state.copy()
    first, _ = smooth_chroma(luma[2:], chroma[2:], state)
    again, _ = smooth_chroma(luma[2:], chroma[2:], saved)
    assert torch.equal(first, again)
    assert not np.shares_memory(saved.chroma, state.chroma)


def test_output_keeps_dtype_and_range() -> None:
    luma = torch.rand(3, 1, 24, 32, dtype=torch.float64)
    chroma = torch.full((3, 2, 24, 32), 0.45, dtype=torch.float64)
    out, _ = smooth_chroma(luma, chroma, None)
    assert out.dtype == torch.float64 and out.shape == chroma.shape
    assert out.abs().max() <= 0.5


def test_bad_inputs_are_refused() -> None:
    luma, chroma = torch.rand(2, 1, 24, 32), torch.zeros(2, 2, 24, 32)
    with pytest.raises(ValueError, match="chroma"):
        smooth_chroma(luma, torch.zeros(2, 3, 24, 32), None)
    with pytest.raises(ValueError, match="differ"):
        smooth_chroma(luma, torch.zeros(2, 2, 24, 30), None)
    _, state = smooth_chroma(luma, chroma, None)
    with pytest.raises(ValueError, match="state"):
        smooth_chroma(torch.rand(1, 1, 12, 16), torch.zeros(1, 2, 12, 16), state)
    for strength in (-0.1, 1.0):
        with pytest.raises(UsageError):
            SmoothingConfig(strength=strength)


@pytest.mark.parametrize("size", [(6, 10), (191, 257), (480, 17)])
def test_odd_and_tiny_frames(size: tuple[int, int]) -> None:
    luma = torch.rand(3, 1, *size)
    chroma = torch.rand(3, 2, *size) - 0.5
    out, state = smooth_chroma(luma, chroma, None)
    assert out.shape == chroma.shape and torch.isfinite(out).all()
    assert state.chroma.shape == (2, *size)


def test_detect_cuts_continues_from_the_previous_batch(clip: Clip) -> None:
    before = clip.luma[SHOT - 1 : SHOT]
    assert detect_cuts(before, clip.luma[SHOT : SHOT + 3]).tolist() == [True, False, False]
    assert not detect_cuts(clip.luma[SHOT - 2 : SHOT - 1], clip.luma[SHOT - 1 : SHOT]).any()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_come_back_on_the_gpu() -> None:
    luma = torch.rand(2, 1, 24, 32, device="cuda")
    chroma = torch.zeros(2, 2, 24, 32, device="cuda", dtype=torch.float16)
    out, _ = smooth_chroma(luma, chroma, None)
    assert out.device == chroma.device and out.dtype == torch.float16
