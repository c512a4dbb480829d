"""DeOldify's exact image policy around its generators. Pure compute, no I/O.

This reproduces what DeOldify's ``ModelImageVisualizer.get_transformed_image`` does around the
network (deoldify/filters.py with fastai's vision transforms), so that the plain-PyTorch
generators of :mod:`deoldify_video.nets.unet` give the colours DeOldify gives:

1. :func:`preprocess`: stretch the RGB frame to a square of side ``16 * render_factor`` with
   Pillow's (antialiasing) bilinear filter, turn it grey with Pillow's integer luma
   ``(19595 R + 38470 G + 7471 B + 32768) >> 16``, replicate the grey to three channels, divide by
   255 and normalise with the ImageNet mean and std, all in float32.
2. :func:`output_to_image`: denormalise the network output, clamp to ``[0, 1]``, multiply by 255
   and truncate (not round) to uint8.
3. :func:`postprocess`: resize that square back to the frame size (Pillow bilinear), then keep
   the original frame's luminance and take only U and V from the prediction, in OpenCV's 8-bit
   RGB <-> YUV conversion (:func:`recombine_luminance`).

Checked against the reference arrays of DeOldify's own pipeline in
``shared/deoldify-reference`` (render_factor 11, a 203x157 sepia picture):
``e2e_orig_rgb_u8.npy`` -> ``*_seed1_e2e_rf11_model_in.npy`` (bit-exact),
``*_model_out.npy`` -> ``*_model_image_u8.npy`` (bit-exact),
-> ``*_raw_color_u8.npy`` (bit-exact) and -> ``*_final_u8.npy`` (bit-exact), for the video,
stable and artistic generators.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RENDER_BASE = 16


def render_size(render_factor: int, render_base: int = RENDER_BASE) -> int:
    """Side in pixels of the square the network sees: ``render_base * render_factor``."""
    if render_factor < 1:
        raise ValueError(f"render_factor must be a positive integer, got {render_factor}")
    return render_base * render_factor


def preprocess(
    frames: np.ndarray,
    render_factor: int,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> torch.Tensor:
    """RGB frames -> DeOldify's network input.

    Args:
        frames: ``(H, W, 3)`` or ``(N, H, W, 3)`` uint8 RGB.
        render_factor: the square side is ``16 * render_factor`` pixels.
        mean, std: per-channel normalisation (ImageNet for the released generators).

    Returns:
        ``(N, 3, S, S)`` float32 with ``S = 16 * render_factor``: normalised grey, the same
        value in the three channels (about ``[-2.1, 2.7]``).
    """
    batch = _as_batch(frames, "frames")
    side = render_size(render_factor)
    grey = np.stack(
        [
            np.asarray(
                Image.fromarray(frame).resize((side, side), Image.Resampling.BILINEAR).convert("L")
            )
            for frame in batch
        ]
    )
    x = torch.from_numpy(grey).to(torch.float32).unsqueeze(1).expand(-1, 3, -1, -1)
    x = x / 255
    mean_t = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (x - mean_t) / std_t


def output_to_image(
    output: torch.Tensor,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> np.ndarray:
    """Network output -> RGB at render size.

    Args:
        output: ``(N, 3, S, S)`` normalised RGB (any float dtype, any device).
        mean, std: the normalisation to undo.

    Returns:
        ``(N, S, S, 3)`` uint8: ``trunc(clamp(output * std + mean, 0, 1) * 255)`` in float32.
    """
    if output.ndim != 4 or output.shape[1] != 3:
        raise ValueError(f"output must have shape (N, 3, S, S), got {tuple(output.shape)}")
    out = output.detach().to(device="cpu", dtype=torch.float32)
    mean_t = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.tensor(std, dtype=torch.float32)[:, None, None]
    rgb = (out * std_t + mean_t).clamp(0.0, 1.0) * 255
    return rgb.permute(0, 2, 3, 1).numpy().astype(np.uint8)


def recombine_luminance(color: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Luminance of ``original``, chroma of ``color``, in OpenCV's 8-bit YUV (BT.601).

    Args:
        color: ``(H, W, 3)`` uint8 RGB, the colourised frame.
        original: ``(H, W, 3)`` uint8 RGB, the source frame (used as is, not made grey first).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    if color.shape != original.shape or color.ndim != 3 or color.shape[2] != 3:
        raise ValueError(
            f"color and original must both be (H, W, 3), got {color.shape} and {original.shape}"
        )
    yuv = cv2.cvtColor(np.ascontiguousarray(color), cv2.COLOR_RGB2YUV)
    yuv[..., 0] = cv2.cvtColor(np.ascontiguousarray(original), cv2.COLOR_RGB2YUV)[..., 0]
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB)


def postprocess(
    output: torch.Tensor,
    originals: np.ndarray,
    keep_luminance: bool = True,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> np.ndarray:
    """Network output + source frames -> final colour frames, as DeOldify makes them.

    Args:
        output: ``(N, 3, S, S)`` normalised RGB from the network.
        originals: ``(H, W, 3)`` or ``(N, H, W, 3)`` uint8 RGB source frames.
        keep_luminance: apply DeOldify's post-process (source luminance + predicted chroma);
            False gives DeOldify's ``post_process=False`` result.
        mean, std: the normalisation to undo.

    Returns:
        ``(N, H, W, 3)`` uint8 RGB.
    """
    batch = _as_batch(originals, "originals")
    squares = output_to_image(output, mean, std)
    if len(squares) != len(batch):
        raise ValueError(f"{len(squares)} outputs for {len(batch)} frames")
    height, width = batch.shape[1:3]
    frames = []
    for square, original in zip(squares, batch, strict=True):
        color = np.asarray(
            Image.fromarray(square).resize((width, height), Image.Resampling.BILINEAR)
        )
        frames.append(recombine_luminance(color, original) if keep_luminance else color)
    return np.stack(frames)


def _as_batch(frames: np.ndarray, name: str) -> np.ndarray:
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise ValueError(
            f"{name} must be uint8 of shape (H, W, 3) or (N, H, W, 3), "
            f"got {frames.dtype} {frames.shape}"
        )
    return frames[None] if frames.ndim == 3 else frames
