"""Write colour frames as numbered image files (TIFF, DPX, PNG), each whole or not at all.

ffmpeg encodes a run of frames into a staging folder; only when it has finished is each file
synced and renamed to its final name, so the output folder never holds a half-written frame,
whenever the process is killed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import atomic
from ..errors import EncodeError, UsageError
from .ffmpeg import run

# Output file extension -> ffmpeg image encoder.
IMAGE_FORMATS = {".tif": "tiff", ".tiff": "tiff", ".dpx": "dpx", ".png": "png"}


def image_format(suffix: str) -> str:
    """The ffmpeg encoder for an output frame's extension.

    Raises:
        UsageError: not one of :data:`IMAGE_FORMATS`.
    """
    codec = IMAGE_FORMATS.get(suffix.lower())
    if codec is None:
        kinds = ", ".join(sorted(IMAGE_FORMATS))
        raise UsageError(f"cannot write {suffix or 'extension-less'} frames (choose {kinds})")
    return codec


def stored_depth(suffix: str, depth: int) -> int:
    """Bits per RGB sample in the written files for ``depth``-bit frames: 8 stays 8; DPX stores
    10 and 12 bits as they are; every format stores 16 bits, and TIFF and PNG hold 10 and
    12-bit frames in 16 (the samples scaled up, nothing lost)."""
    if depth == 8:
        return 8
    if image_format(suffix) == "dpx" and depth in (10, 12):
        return depth
    return 16


def image_command(
    width: int, height: int, depth: int, suffix: str, pattern: str | Path, start: int
) -> list[str]:
    """ffmpeg call that reads RGB frames (see :func:`pack_frames`) from stdin and writes
    them as numbered images ``pattern`` (a ``%d`` pattern) from number ``start``."""
    stored = stored_depth(suffix, depth)
    pix_fmt = _input_pix_fmt(stored)
    out_fmt = {8: "rgb24", 10: "gbrp10le", 12: "gbrp12le"}.get(stored, "rgb48le")
    if image_format(suffix) == "png" and stored == 16:
        out_fmt = "rgb48be"  # the same samples in PNG's byte order
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{width}x{height}", "-i", "pipe:0",
        "-c:v", image_format(suffix), "-pix_fmt", out_fmt,
        "-start_number", str(start), "-f", "image2", str(pattern),
    ]  # fmt: skip


def pack_frames(rgb: np.ndarray, depth: int, suffix: str) -> bytes:
    """The bytes :func:`image_command` reads for RGB frames ``(n, H, W, 3)`` of ``depth`` bits
    (uint8, or uint16 holding ``depth``-bit values)."""
    stored = stored_depth(suffix, depth)
    if stored == 8:
        return rgb.astype(np.uint8, copy=False).tobytes()
    if stored in (10, 12):  # planar G, B, R
        return (
            np.ascontiguousarray(rgb[..., [1, 2, 0]].transpose(0, 3, 1, 2)).astype("<u2").tobytes()
        )
    scaled = rgb.astype(np.uint16, copy=False) << np.uint16(16 - depth)
    return scaled.astype("<u2", copy=False).tobytes()


def _input_pix_fmt(stored: int) -> str:
    return {8: "rgb24", 10: "gbrp10le", 12: "gbrp12le"}.get(stored, "rgb48le")


class ImageSequenceWriter:
    """Writes numbered frames ``folder/<prefix><number><suffix>`` through ``staging``.

    Args:
        folder: the output folder (must exist).
        prefix, suffix, digits: the file names (``reel1_``, ``.tif``, 6 for ``%06d``).
        depth: bits per sample of the RGB frames given to :meth:`write`.
        staging: where ffmpeg writes before the rename: a path whose name is a prefix, in a
            folder of the job's on the same file system as ``folder`` (``job/video.frame``
            stages ``job/video.frame000086400.tif``...).
    """

    def __init__(
        self, folder: Path, prefix: str, suffix: str, digits: int, depth: int, staging: Path
    ) -> None:
        self.folder = folder
        self.prefix = prefix
        self.suffix = suffix
        self.digits = digits
        self.depth = depth
        self.staging = staging

    def path(self, number: int) -> Path:
        """The final file of frame ``number``."""
        return self.folder / f"{self.prefix}{number:0{self.digits}d}{self.suffix}"

    def write(self, rgb: np.ndarray, first_number: int) -> None:
        """Write frames ``(n, H, W, 3)`` numbered from ``first_number``.

        Raises:
            EncodeError: ffmpeg failed (nothing of this run of frames is renamed into place).
        """
        n, height, width, _ = rgb.shape
        for stale in self.staging.parent.glob(f"{self.staging.name}*{self.suffix}"):
            stale.unlink()
        staged = f"{self.staging}%09d{self.suffix}"
        command = image_command(width, height, self.depth, self.suffix, staged, first_number)
        run(
            command,
            EncodeError,
            what="writing frames",
            writes=staged,
            stdin=pack_frames(rgb, self.depth, self.suffix),
        )
        for number in range(first_number, first_number + n):
            part = Path(f"{self.staging}{number:09d}{self.suffix}")
            if not part.is_file():
                raise EncodeError(f"{self.path(number)}: the image encoder wrote no frame {number}")
            atomic.commit(part, self.path(number), sync_dir=False)
