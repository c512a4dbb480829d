"""Colorize still images: the photo's own luminance at full resolution, the model's chroma."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from . import atomic, color, colour_input, deoldify_policy
from .errors import ProbeError, UsageError
from .folders import OUTPUT_STEM_SUFFIX, find_files
from .inference import Colorizer, oversize_note

log = logging.getLogger(__name__)

# Pillow formats whose files can hold an alpha channel.
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
# Quality of lossy outputs (JPEG, WebP) whose source says none (Pillow's own default is 75).
DEFAULT_QUALITY = 95
# The luminance quantisation table of the JPEG standard (ITU T.81 Annex K), row by row: the
# table libjpeg scales for its quality settings.
_JPEG_LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


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
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
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
    input_path: str | Path,
    output_path: str | Path,
    colorizer: Colorizer,
    overwrite: bool = False,
    recolor: bool = False,
    quality: int | None = None,
) -> Path:
    """Colorize one image file into ``output_path`` (format from its extension; its folder is
    created when missing).

    The result is upright (EXIF orientation applied) and keeps the source's transparency
    where the output format can hold it (PNG, WebP, TIFF). A JPEG keeps the quality of a
    JPEG source (see :func:`save_options`). Written to a temporary name and renamed when
    complete.

    Args:
        recolor: colorize a colour photo too (replacing its colours) instead of refusing it.
        quality: JPEG or WebP quality, 1-100; None keeps a JPEG source's, else 95.

    Raises:
        UsageError: the output exists (without ``overwrite``) or is the input, a colour photo
            (without ``recolor``), a bad quality.
        ProbeError: the input is missing or not an image.
    """
    source, output = Path(input_path), Path(output_path)
    if output.exists() and not overwrite:
        raise UsageError(f"{output}: already exists (pass --overwrite to replace it)")
    if output.resolve() == source.resolve():
        raise UsageError(f"{output}: the output would overwrite the input")
    check_quality(quality)
    rgb, alpha = read_image(source)
    if not recolor:
        colour_input.check_photo(source, rgb)
    note = oversize_note(colorizer, *rgb.shape[:2])
    if note:
        log.warning("%s: %s", source, note)
    result = colorize_rgb(rgb, colorizer)
    fmt = _writer_format(output.suffix.lower()) or "PNG"
    if alpha is not None and fmt in _ALPHA_FORMATS:
        result = np.dstack([result, alpha])
    options = save_options(fmt, source, quality)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{output}: cannot create its folder ({exc.strerror or exc})") from exc
    with atomic.writing(output) as part:
        Image.fromarray(result).save(part, format=fmt, **options)
    return output


def check_quality(quality: int | None) -> None:
    """Refuse a JPEG or WebP quality outside 1-100 (None: the default).

    Raises:
        UsageError: naming ``--quality``.
    """
    if quality is not None and not 1 <= quality <= 100:
        raise UsageError(f"--quality must be from 1 to 100, got {quality}")


def save_options(fmt: str, source: Path, quality: int | None) -> dict[str, Any]:
    """Pillow's save options for an output in format ``fmt`` colorized from ``source``.

    JPEG: ``quality`` when given; else a JPEG source's own quantisation tables (a colour
    source's two tables as they are; a greyscale source's one luminance table, through the
    libjpeg quality that gives it); else :data:`DEFAULT_QUALITY`. WebP: ``quality`` or
    :data:`DEFAULT_QUALITY`. Other formats: none.
    """
    if fmt == "WEBP":
        return {"quality": quality or DEFAULT_QUALITY}
    if fmt != "JPEG":
        return {}
    if quality is not None:
        return {"quality": quality}
    try:
        with Image.open(source) as img:
            tables = dict(getattr(img, "quantization", None) or {}) if img.format == "JPEG" else {}
    except (UnidentifiedImageError, OSError):
        tables = {}
    if len(tables) >= 2:
        return {"qtables": [list(tables[0]), list(tables[1])]}
    if tables:
        return {"quality": jpeg_quality(list(tables[0]))}
    return {"quality": DEFAULT_QUALITY}


def jpeg_quality(luma_table: list[int]) -> int:
    """The libjpeg quality (1-100) whose luminance table is closest to ``luma_table`` (64
    values, row by row): exact for files written by libjpeg and most software."""

    def table(quality: int) -> np.ndarray:
        scale = 5000 / quality if quality < 50 else 200 - 2 * quality
        base = np.array(_JPEG_LUMA_TABLE, dtype=np.int64)
        return np.clip((base * scale + 50) // 100, 1, 255)

    target = np.array(luma_table, dtype=np.int64)
    return min(range(1, 101), key=lambda q: (int(np.abs(table(q) - target).sum()), -q))


def find_images(folder: Path, recursive: bool = False) -> list[Path]:
    """The photos in ``folder`` (sub-folders too when ``recursive``), sorted: files with an
    extension Pillow reads, except hidden files and this tool's own outputs
    (``*_colorized.*``)."""
    return find_files(folder, set(Image.registered_extensions()), recursive, OUTPUT_STEM_SUFFIX)


def default_image_output(
    input_path: str | Path, output_dir: str | Path | None, base: str | Path | None = None
) -> Path:
    """``<stem>_colorized<ext>`` in ``output_dir`` (default: beside the input); PNG for inputs
    in a format Pillow cannot write.

    Args:
        base: a folder the input was found in: its path below ``base`` is kept under
            ``output_dir``, so that photos of the same name in two sub-folders stay apart.
    """
    source = Path(input_path)
    ext = source.suffix.lower()
    if _writer_format(ext) is None:
        ext = ".png"
    if output_dir is None:
        folder = source.parent
    elif base is not None:
        folder = Path(output_dir) / source.parent.relative_to(base)
    else:
        folder = Path(output_dir)
    return folder / f"{source.stem}{OUTPUT_STEM_SUFFIX}{ext}"


def _writer_format(ext: str) -> str | None:
    """Pillow's format name for writing files with extension ``ext``, None if it cannot."""
    fmt = Image.registered_extensions().get(ext)
    return fmt if fmt in Image.SAVE else None
