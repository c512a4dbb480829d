"""ffprobe -> :class:`~deoldify_video.types.VideoInfo`."""

from __future__ import annotations

import dataclasses
import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import FFmpegError, ProbeError
from ..types import StreamInfo, VideoInfo
from .ffmpeg import last_line, run
from .sequence import ImageSequence, input_options


def probe_command(path: str | Path) -> list[str]:
    """ffprobe call that prints streams, format and chapters as JSON."""
    return [
        "ffprobe", "-v", "error", "-print_format", "json",
        "-show_format", "-show_streams", "-show_chapters", str(path),
    ]  # fmt: skip


def timestamps_command(path: str | Path, video_index: int, unit: str = "") -> list[str]:
    """ffprobe call that lists the presentation and decoding timestamps of every packet of one
    video stream, in ticks of the stream's time base (``unit=""``) or in seconds
    (``unit="_time"``), one ``pts,dts`` line each."""
    return [
        "ffprobe", "-v", "error", "-select_streams", str(video_index),
        "-show_entries", f"packet=pts{unit},dts{unit}", "-of", "csv=p=0", str(path),
    ]  # fmt: skip


def check_input_file(path: Path) -> None:
    """Raise ProbeError for a path that cannot be a video before asking ffprobe."""
    if not path.exists():
        raise ProbeError(f"{path}: no such file")
    if path.is_dir():
        raise ProbeError(f"{path}: is a directory, not a video file")
    if path.stat().st_size == 0:
        raise ProbeError(f"{path}: the file is empty")


def probe(path: str | Path) -> VideoInfo:
    """Describe the first video stream of ``path`` and list its other streams.

    The frame count and the variable-frame-rate flag come from the video packets' timestamps
    (one demuxing pass, no decoding), so they are exact even where the container has no count.

    Raises:
        ProbeError: missing, empty, a directory, not media, no video stream.
        ToolMissingError: ffprobe is not installed.
    """
    path = Path(path)
    check_input_file(path)
    try:
        out = run(probe_command(path), what="ffprobe").stdout
    except FFmpegError as exc:
        raise ProbeError(f"{path}: not a video ffmpeg can read ({last_line(exc.stderr)})") from exc
    data = json.loads(out or b"{}")
    streams = data.get("streams", [])
    video = next((s for s in streams if _is_picture_stream(s)), None)
    if video is None:
        kinds = sorted({s.get("codec_type", "?") for s in streams}) or ["nothing"]
        raise ProbeError(f"{path}: no video stream (the file holds {', '.join(kinds)})")
    pts = frame_timestamps(path, int(video["index"]))
    if not pts:
        raise ProbeError(f"{path}: the video stream holds no frames")
    fmt = data.get("format", {})
    listed = _listed_frames(fmt, video)
    if listed is not None and len(pts) < listed:
        raise ProbeError(
            f"{path}: truncated or corrupt: the container lists {listed} frames but only "
            f"{len(pts)} are present"
        )
    return VideoInfo(
        path=str(path),
        width=int(video["width"]),
        height=int(video["height"]),
        fps=_frame_rate(video),
        frame_count=len(pts),
        duration=float(fmt.get("duration") or video.get("duration") or 0.0),
        vfr=is_variable_rate(pts),
        rotation=_rotation(video),
        sar=_ratio(video.get("sample_aspect_ratio")),
        pix_fmt=str(video.get("pix_fmt", "")),
        field_order=_field_order(video),
        bit_depth=_bit_depth(video),
        color_range=str(video.get("color_range", "")).replace("unknown", ""),
        color_space=str(video.get("color_space", "")).replace("unknown", ""),
        color_primaries=str(video.get("color_primaries", "")).replace("unknown", ""),
        color_transfer=str(video.get("color_transfer", "")).replace("unknown", ""),
        codec=str(video.get("codec_name", "")),
        video_index=int(video["index"]),
        start_time=float(video.get("start_time") or 0.0),
        format_start_time=float(fmt.get("start_time") or 0.0),
        streams=tuple(_stream_info(s) for s in streams if s is not video),
        has_chapters=bool(data.get("chapters")),
    )


def frame_timestamps(path: str | Path, video_index: int) -> list[int]:
    """Sorted presentation timestamps (in stream time-base ticks) of every video packet."""
    return sorted(int(v) for v in _packet_times(path, video_index, ""))


def frame_times(path: str | Path, video_index: int) -> list[float]:
    """Sorted presentation times in seconds of every video packet (= every decoded frame)."""
    return sorted(float(v) for v in _packet_times(path, video_index, "_time"))


def _packet_times(path: str | Path, video_index: int, unit: str) -> list[str]:
    """Each packet's presentation timestamp, or its decoding timestamp where it has none
    (AVI stores no presentation times for streams with B-frames; its frames are evenly
    spaced, so the decoding times give the same sorted timeline)."""
    out = run(timestamps_command(path, video_index, unit), what="ffprobe").stdout.decode()
    times = []
    for line in out.splitlines():
        known = [v for v in line.strip().split(",") if re.fullmatch(r"-?\d+(\.\d+)?", v)]
        if known:
            times.append(known[0])
    return times


def is_variable_rate(pts: list[int]) -> bool:
    """True when the gaps between sorted timestamps differ by more than rounding.

    A rounded time base (1/1000 s for 29.97 fps gives 33 and 34 ms) is not variable, but where
    one tick is a whole frame (AVI's time base) nothing is rounded and a gap of two ticks is a
    missing frame.
    """
    gaps = sorted(b - a for a, b in zip(pts, pts[1:], strict=False))
    if len(gaps) < 2:
        return False
    median = gaps[len(gaps) // 2]
    tolerance = max(1, median // 10) if median > 1 else 0
    return any(abs(g - median) > tolerance for g in gaps)


def _field_order(stream: dict[str, Any]) -> str:
    order = str(stream.get("field_order", ""))
    return order if order in ("tt", "bb", "tb", "bt") else ""


def _listed_frames(fmt: dict[str, Any], stream: dict[str, Any]) -> int | None:
    """The frame count in an MP4/MOV sample table (written before the data, so it survives a
    truncation); None for containers whose count is absent or not a count of frames (AVI
    lists empty "repeat" packets too)."""
    if not str(fmt.get("format_name", "")).startswith("mov,mp4"):
        return None
    listed = str(stream.get("nb_frames", ""))
    return int(listed) if _int(listed) else None


def _int(text: str) -> bool:
    return bool(re.fullmatch(r"-?\d+", text))


def _is_picture_stream(stream: dict[str, Any]) -> bool:
    """A real video stream: not cover art attached as a still picture."""
    disposition = stream.get("disposition", {})
    return stream.get("codec_type") == "video" and not disposition.get("attached_pic")


def _ratio(text: Any) -> Fraction:
    match = re.fullmatch(r"(\d+)[:/](\d+)", str(text or ""))
    if not match or int(match[1]) == 0 or int(match[2]) == 0:
        return Fraction(1)
    return Fraction(int(match[1]), int(match[2]))


def _frame_rate(stream: dict[str, Any]) -> Fraction:
    """avg_frame_rate when known, else r_frame_rate, as an exact fraction."""
    for key in ("avg_frame_rate", "r_frame_rate"):
        match = re.fullmatch(r"(\d+)/(\d+)", str(stream.get(key, "")))
        if match and int(match[1]) > 0 and int(match[2]) > 0:
            return Fraction(int(match[1]), int(match[2]))
    raise ProbeError("the video stream has no frame rate")


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise display rotation in degrees (0, 90, 180, 270)."""
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return int(-float(side["rotation"])) % 360
    rotate = stream.get("tags", {}).get("rotate")
    return int(rotate) % 360 if rotate and _int(str(rotate)) else 0


def _bit_depth(stream: dict[str, Any]) -> int:
    raw = stream.get("bits_per_raw_sample")
    if raw and _int(str(raw)):
        return int(raw)
    match = re.search(r"(\d+)(le|be)$", str(stream.get("pix_fmt", "")))
    return int(match[1]) if match else 8


def _stream_info(stream: dict[str, Any]) -> StreamInfo:
    kind = str(stream.get("codec_type", "data"))
    if kind == "video":  # cover art and other still pictures travel as attachments
        kind = "attachment"
    return StreamInfo(
        index=int(stream["index"]),
        kind=kind,
        codec=str(stream.get("codec_name", "")),
        language=str(stream.get("tags", {}).get("language", "")),
        channels=int(stream.get("channels", 0) or 0),
    )


def probe_sequence(sequence: ImageSequence, fps: Fraction) -> VideoInfo:
    """Describe an image sequence read at ``fps``: its first frame's picture (size, pixel
    format, depth, tags; images without a range tag are full range) and its frame count.

    Raises:
        ProbeError: the first frame is not an image ffmpeg can read.
    """
    first = probe(sequence.path(sequence.start))
    return dataclasses.replace(
        first,
        path=sequence.pattern,
        fps=fps,
        frame_count=sequence.count,
        duration=float(sequence.count / fps),
        vfr=False,
        start_time=0.0,
        format_start_time=0.0,
        streams=(),
        has_chapters=False,
        color_range=first.color_range or "pc",
        input_options=input_options(sequence, fps),
    )


def with_sound(info: VideoInfo, sound: Path) -> VideoInfo:
    """``info`` with the audio streams of the file ``sound`` (a WAV or BWF beside a scan) as
    its other streams, to be muxed unchanged.

    Raises:
        ProbeError: ``sound`` is missing, unreadable or holds no audio.
    """
    check_input_file(sound)
    try:
        out = run(probe_command(sound), what="ffprobe").stdout
    except FFmpegError as exc:
        raise ProbeError(
            f"{sound}: not a sound file ffmpeg can read ({last_line(exc.stderr)})"
        ) from exc
    audio = [
        s for s in json.loads(out or b"{}").get("streams", []) if s.get("codec_type") == "audio"
    ]
    if not audio:
        raise ProbeError(f"{sound}: holds no audio stream")
    streams = tuple(_stream_info(s) for s in audio)
    return dataclasses.replace(info, streams=streams, streams_path=str(sound))


def video_frame_times(info: VideoInfo) -> list[float]:
    """Presentation time in seconds of every frame: read from the packets of a video file,
    ``i / fps`` for an image sequence."""
    if info.is_sequence:
        return [float(i / info.fps) for i in range(info.frame_count)]
    return frame_times(info.path, info.video_index)
