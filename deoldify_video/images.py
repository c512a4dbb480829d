"""Colorize still images: the photo's own luminance at full resolution, the model's chroma."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from . import color, deoldify_policy
from .errors import ProbeError, UsageError
from .inference import Colorizer

# Pillow formats whose files can hold an alpha channel.
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}


def read_image(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """An image file upright (its EXIF orientation applied) as RGB ``(H, W, 3)`` uint8
    (greyscale expanded) and its alpha ``(H, W)`` uint8, or None when it has none.

    Raises:
        ProbeError: missing file, a directory, or not an image.
    """
    path = Path(path)
    if not path.exists():
        raise ProbeError(f"{path}: no such file")
    if path.is_dir():
        raise ProbeError(f"{path}: is a directory, not an image")
    try:
        with Image.open(path) as img:
            upright = ImageOps.exif_transpose(img)
            has_alpha = "A" in upright.getbands() or "transparency" in upright.info
            if not has_alpha:
                return np.asarray(upright.convert("RGB")), None
            rgba = np.asarray(upright.convert("RGBA"))
            return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    except (UnidentifiedImageError, OSError) as exc:
        raise ProbeError(f"{path}: not an image that can be read ({exc})") from exc


def colorize_rgb(rgb: np.ndarray, colorizer: Colorizer) -> np.ndarray:
    """Colorize an image; its colour, if any, is discarded first.

    DeOldify's generators get DeOldify's own pre- and post-processing, so their results
    match DeOldify's (see :mod:`deoldify_video.deoldify_policy`).

    Args:
        rgb: ``(H, W, 3)`` uint8.

    Returns:
        ``(H, W, 3)`` uint8 whose BT.601 luminance equals the input's (up to rounding and
        clipping) and whose chroma is the model's, upsampled bilinearly.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if colorizer.policy.kind == "deoldify-rgb":
        x = deoldify_policy.preprocess(rgb, colorizer.render_factor)
        return deoldify_policy.postprocess(colorizer.run_network(x), rgb)[0]
    out = colorize_float(rgb.astype(np.float32) / 255.0, colorizer)
    return (out * 255.0).round().astype(np.uint8)


def colorize_float(rgb: np.ndarray, colorizer: Colorizer) -> np.ndarray:
    """Colorize the luminance of an image, keeping that luminance at full resolution.

    Args:
        rgb: ``(H, W, 3)`` float32 sRGB in ``[0, 1]``; only its BT.601 luminance is used.

    Returns:
        ``(H, W, 3)`` float32 sRGB in ``[0, 1]`` with the input's luminance and the model's
        chroma (upsampled bilinearly from the render size).
    """
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))
    luma = color.rgb_to_ycbcr(x)[None, :1]
    _, chroma = colorizer.colorize(luma)
    chroma = torch.nn.functional.interpolate(
        chroma, size=rgb.shape[:2], mode="bilinear", align_corners=False
    )
    out = color.ycbcr_to_rgb(torch.cat([luma, chroma], dim=1))[0]
    return out.permute(1, 2, 0).numpy()


def colorize_image(
    input_path: str | Path, output_path: str | Path, colorizer: Colorizer, overwrite: bool = False
) -> Path:
    """Colorize one image file into ``output_path`` (format from its extension).

    The result is upright (EXIF orientation applied) and keeps the source's transparency
    where the output format can hold it (PNG, WebP, TIFF). Written to a temporary name and
    renamed when complete.
    """
    source, output = Path(input_path), Path(output_path)
    if output.exists() and not overwrite:
        raise UsageError(f"{output}: already exists (pass --overwrite to replace it)")
    if output.resolve() == source.resolve():
        raise UsageError(f"{output}: the output would overwrite the input")
    rgb, alpha = read_image(source)
    result = colorize_rgb(rgb, colorizer)
    fmt = _writer_format(output.suffix.lower()) or "PNG"
    if alpha is not None and fmt in _ALPHA_FORMATS:
        result = np.dstack([result, alpha])
    part = output.with_name(f".{output.name}.part")
    try:
        Image.fromarray(result).save(part, format=fmt)
        os.replace(part, output)
    finally:
        part.unlink(missing_ok=True)
    return output


def default_image_output(input_path: str | Path, output_dir: str | Path | None) -> Path:
    """``<stem>_colorized<ext>`` in ``output_dir`` (default: beside the input); PNG for inputs
    in a format Pillow cannot write."""
    source = Path(input_path)
    ext = source.suffix.lower()
    if _writer_format(ext) is None:
        ext = ".png"
    folder = Path(output_dir) if output_dir is not None else source.parent
    return folder / f"{source.stem}_colorized{ext}"


def _writer_format(ext: str) -> str | None:
    """Pillow's format name for writing files with extension ``ext``, None if it cannot."""
    fmt = Image.registered_extensions().get(ext)
    return fmt if fmt in Image.SAVE else None
