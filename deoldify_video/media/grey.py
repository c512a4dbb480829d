"""The grey version of a colour video: its own luminance, every chroma sample neutral.

It is what a black-and-white print of the clip would be to the colorizer, and so the input of
the film check (see :mod:`deoldify_video.film_check`): the luminance samples are kept bit for
bit (FFV1 is lossless), at the source's depth, size, range, frame count and timestamps; only
the chroma planes are set to their middle value. An RGB source is first converted to BT.601
"tv"-range YUV, as the reader converts it (see :mod:`deoldify_video.media.reader`); a full-range
``yuvj`` source stays full range.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import EncodeError
from ..types import VideoInfo
from .ffmpeg import path_arg, run
from .writer import yuv_pix_fmt

# The middle of the chroma range: 128 at 8 bits, 512 at 10 (tv and pc range alike).
_NEUTRAL = "(minval+maxval+1)/2"


def grey_command(info: VideoInfo, out_path: str | Path, count: int | None = None) -> list[str]:
    """ffmpeg call writing the grey version of ``info``'s video stream (no other stream) to
    ``out_path``, a Matroska file of FFV1, with the first ``count`` frames (None: all)."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y"]
    cmd += [*info.input_options, "-i", path_arg(info.path)]
    cmd += ["-map", f"0:{info.video_index}", "-an", "-sn", "-dn", "-map_chapters", "-1"]
    to_yuv = ""
    if info.is_rgb_source:
        layout = yuv_pix_fmt("444", info.plane_depth)
        to_yuv = f"scale=out_color_matrix=bt601:out_range=tv,format={layout},"
    elif info.pix_fmt.startswith("yuvj"):  # lutyuv takes the same planes under their yuv name
        to_yuv = f"scale=in_range=pc:out_range=pc,format={info.pix_fmt.replace('yuvj', 'yuv')},"
    cmd += ["-vf", f"{to_yuv}lutyuv=y=val:u={_NEUTRAL}:v={_NEUTRAL}"]
    cmd += ["-fps_mode", "passthrough", "-enc_time_base", "-1"]
    if count is not None:
        cmd += ["-frames:v", str(count)]
    return [*cmd, "-c:v", "ffv1", "-f", "matroska", path_arg(out_path)]


def write_grey(info: VideoInfo, out_path: str | Path, count: int | None = None) -> None:
    """Run :func:`grey_command`.

    Raises:
        EncodeError: ffmpeg failed (its stderr is kept in the error).
    """
    run(grey_command(info, out_path, count), EncodeError, "the grey version", writes=out_path)
