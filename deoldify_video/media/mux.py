"""Put the colour video together with every other stream of the source.

Audio is always stream-copied. A subtitle stream the output container cannot hold in its
own format is converted to the container's text format with a warning; a stream that cannot
be kept at all is refused up front with a message naming a container that can hold it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import EncodeError, UsageError
from ..types import StreamInfo, VideoInfo
from .ffmpeg import path_arg, run

log = logging.getLogger(__name__)

# Output extension -> ffmpeg muxer name.
MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}

# Video codecs each muxer takes (our encoder names).
_NVENC = {"h264_nvenc", "hevc_nvenc"}
_VIDEO = {
    "mp4": {"libx264", "libx265"} | _NVENC,
    "mov": {"libx264", "libx265", "prores"} | _NVENC,
    "matroska": {"libx264", "libx265", "ffv1", "prores"} | _NVENC,
    "avi": {"libx264", "ffv1"},
}
_MP4_AUDIO = {"aac", "mp3", "mp2", "ac3", "eac3", "opus", "flac", "alac", "dts"}
_AUDIO = {
    "mp4": _MP4_AUDIO,
    "mov": (_MP4_AUDIO - {"opus", "flac"}) | {"pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_f32le"},
    "avi": {"mp3", "mp2", "ac3", "aac", "pcm_s16le", "pcm_u8", "pcm_s24le"},
}
_TEXT_SUBS = {"subrip", "ass", "ssa", "webvtt", "mov_text", "text"}
_SUBS = {"mp4": {"mov_text", "dvd_subtitle"}, "mov": {"mov_text"}, "avi": set()}
_SUB_CONVERSION = {"mp4": "mov_text", "mov": "mov_text", "matroska": "subrip"}
# Muxers that store only decoding times: frames must be in presentation order (no B-frames),
# and H.264 must be in Annex B form.
_DECODING_TIMES_ONLY = {"avi"}


def holds_b_frames(muxer: str) -> bool:
    """Whether ``muxer`` keeps the timing of a video coded with B-frames."""
    return muxer not in _DECODING_TIMES_ONLY


@dataclass(frozen=True)
class StreamPlan:
    """What happens to one source stream in the output.

    Attributes:
        stream: the source stream.
        codec: ``"copy"`` or the subtitle encoder it is converted with.
        note: why it is converted (for the warning), "" when copied.
    """

    stream: StreamInfo
    codec: str = "copy"
    note: str = ""


def muxer_for(path: str | Path) -> str:
    """ffmpeg muxer for an output path, from its extension."""
    ext = Path(path).suffix.lower()
    try:
        return MUXERS[ext]
    except KeyError:
        known = ", ".join(MUXERS)
        raise UsageError(
            f"{path}: unsupported output extension {ext or '(none)'!r} (use {known})"
        ) from None


def plan_streams(info: VideoInfo, out_path: str | Path, codec: str) -> list[StreamPlan]:
    """Decide, before any work, how each source stream is carried into ``out_path``.

    Raises:
        UsageError: the container cannot hold the video codec or a source stream; the message
            names the stream and a container that can (Matroska holds every kind).
    """
    muxer = muxer_for(out_path)
    if codec not in _VIDEO[muxer]:
        raise UsageError(f"{out_path}: the {muxer} container cannot hold {codec} video; use .mkv")
    plans = []
    for stream in info.streams:
        plan = _plan_stream(stream, muxer, out_path)
        if plan is not None:
            plans.append(plan)
    if info.has_chapters and muxer == "avi":
        log.warning("%s: the avi container cannot hold chapters; they are left out", out_path)
    return plans


def _plan_stream(stream: StreamInfo, muxer: str, out_path: str | Path) -> StreamPlan | None:
    what = f"{stream.kind} stream #{stream.index} ({stream.codec})"
    if stream.kind == "data":
        log.info("%s: data %s is not carried over", out_path, what)
        return None
    if muxer == "matroska":
        if stream.kind == "subtitle" and stream.codec == "mov_text":
            return StreamPlan(stream, "subrip", f"{what} converted to SubRip for Matroska")
        return StreamPlan(stream)
    if stream.kind == "audio" and stream.codec in _AUDIO[muxer]:
        return StreamPlan(stream)
    if stream.kind == "subtitle" and stream.codec in _SUBS[muxer]:
        return StreamPlan(stream)
    if stream.kind == "subtitle" and stream.codec in _TEXT_SUBS and muxer in _SUB_CONVERSION:
        target = _SUB_CONVERSION[muxer]
        return StreamPlan(stream, target, f"{what} converted to {target} for {muxer}")
    raise UsageError(
        f"{out_path}: the {muxer} container cannot hold the source's {what} without re-encoding; "
        "write a .mkv file instead"
    )


def mux_command(
    video_path: str | Path,
    info: VideoInfo,
    plans: list[StreamPlan],
    out_path: str | Path,
    muxer: str,
    codec: str,
    window: tuple[float, float] | None = None,
) -> list[str]:
    """ffmpeg call that joins the colour video (encoded with ``codec``) with the source's other
    streams, metadata and chapters, stream-copying everything but the listed subtitle
    conversions.

    The colour video is shifted to the source video's start time so that audio stays in sync.

    Args:
        window: for a colour video of an excerpt, ``(start, duration)`` in seconds from the
            start of the source file: the excerpt's first frame's time and its length. The
            other streams are cut to it, stream-copied, so each cut falls on a packet
            boundary: the first packet kept is the first that starts at or after ``start``
            (an audio stream starts up to one packet late, in sync), the last one the last
            that starts before ``start + duration``; subtitles and chapters are shifted
            with them.
    """
    offset = max(0.0, info.start_time - info.format_start_time) if window is None else 0.0
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y"]
    cmd += ["-itsoffset", f"{offset:.6f}", "-i", path_arg(video_path)]
    # The other streams come from the source file, or from the sound given beside an image
    # sequence; a sequence without sound has nothing else to copy.
    other = info.streams_path or ("" if info.is_sequence else info.path)
    if other:
        if window is not None:
            cmd += ["-ss", f"{window[0]:.6f}", "-t", f"{window[1]:.6f}"]
        cmd += ["-i", path_arg(other)]
    cmd += ["-map", "0:v:0"]
    for plan in plans:
        cmd += ["-map", f"1:{plan.stream.index}"]
    if other:
        cmd += ["-map_metadata", "1", "-map_chapters", "1" if info.has_chapters else "-1"]
    cmd += ["-c", "copy"]
    if window is not None:  # no packet from before the cut, whose time would be negative
        cmd += ["-copypriorss", "0"]
    if not holds_b_frames(muxer) and codec == "libx264":
        cmd += ["-bsf:v:0", "h264_mp4toannexb"]
    for out_index, plan in enumerate(plans, start=1):
        if plan.codec != "copy":
            cmd += [f"-c:{out_index}", plan.codec]
    if muxer in ("mp4", "mov"):
        cmd += ["-movflags", "+faststart"]
    return [*cmd, "-f", muxer, path_arg(out_path)]


def mux(
    video_path: str | Path,
    info: VideoInfo,
    plans: list[StreamPlan],
    out_path: str | Path,
    muxer: str,
    codec: str,
    window: tuple[float, float] | None = None,
) -> None:
    """Run :func:`mux_command`, logging each conversion as a warning."""
    for plan in plans:
        if plan.note:
            log.warning("%s", plan.note)
    command = mux_command(video_path, info, plans, out_path, muxer, codec, window)
    run(command, EncodeError, what="muxing", writes=out_path)


def retime_command(
    video_path: str | Path, timestamps_path: str | Path, out_path: str | Path
) -> list[str]:
    """mkvmerge call that gives each frame of a Matroska video its timestamp from a v2 file."""
    return ["mkvmerge", "--quiet", "-o", path_arg(out_path),
            "--timestamps", f"0:{path_arg(timestamps_path)}", path_arg(video_path)]  # fmt: skip


def timestamps_file_text(seconds: Sequence[float]) -> str:
    """A Matroska v2 timestamps file: one presentation time per frame, in milliseconds, from 0."""
    first = seconds[0]
    lines = ["# timestamp format v2", *(f"{(t - first) * 1000:.6f}" for t in seconds)]
    return "\n".join(lines) + "\n"


def retime(video_path: Path, seconds: Sequence[float], out_path: Path) -> None:
    """Give the frames of ``video_path`` the source's own (variable) timestamps."""
    stamps = out_path.with_suffix(".timestamps.txt")
    stamps.write_text(timestamps_file_text(seconds))
    try:
        command = retime_command(video_path, stamps, out_path)
        run(command, EncodeError, "mkvmerge", ok_codes=(0, 1), writes=out_path)
    finally:
        stamps.unlink(missing_ok=True)
