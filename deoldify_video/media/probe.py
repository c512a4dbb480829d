"""ffprobe -> :class:`~deoldify_video.types.VideoInfo`."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import DamagedError, FFmpegError, ProbeError
from ..types import StreamInfo, VideoInfo
from . import integrity
from .ffmpeg import last_line, path_arg, run
from .sequence import ImageSequence, input_options

log = logging.getLogger(__name__)


def probe_command(path: str | Path) -> list[str]:
    """ffprobe call that prints streams, format and chapters as JSON."""
    return [
        "ffprobe", "-v", "error", "-print_format", "json",
        "-show_format", "-show_streams", "-show_chapters", path_arg(path),
    ]  # fmt: skip


def packets_command(path: str | Path, stream: int | None = None) -> list[str]:
    """ffprobe call that lists every packet of every stream, or of one ``stream`` (one
    demuxing pass, no decoding), one CSV line each: stream index, presentation timestamp (in
    ticks of the stream's time base, then in seconds), decoding timestamp (the same), duration
    in seconds, size, byte position and flags (``K`` first for a key frame)."""
    select = [] if stream is None else ["-select_streams", str(stream)]
    return [
        "ffprobe", "-v", "error", *select, "-show_entries",
        "packet=stream_index,pts,pts_time,dts,dts_time,duration_time,size,pos,flags",
        "-of", "csv=p=0", path_arg(path),
    ]  # fmt: skip


def check_input_file(path: Path) -> None:
    """Raise ProbeError for a path that cannot be a video before asking ffprobe."""
    if not path.exists():
        raise ProbeError(f"{path}: no such file")
    if path.is_dir():
        raise ProbeError(f"{path}: is a directory, not a video file")
    if path.stat().st_size == 0:
        raise ProbeError(f"{path}: the file is empty")


def probe(path: str | Path, allow_truncated: bool = False) -> VideoInfo:
    """Describe the first video stream of ``path`` and list its other streams.

    The frame count and the variable-frame-rate flag come from the video packets' timestamps
    (one demuxing pass, no decoding), so they are exact even where the container has no count.
    The same pass checks that the container is whole (see :mod:`.integrity`).

    Args:
        allow_truncated: describe a truncated or damaged file by the frames that are there
            (with a warning) instead of refusing it.

    Raises:
        ProbeError: missing, empty, a directory, not media, no video stream.
        DamagedError: truncated, a video that ends long before its audio, or a demuxer that
            reports errors; unless ``allow_truncated``.
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
    scan = scan_packets(path, int(video["index"]))
    if not scan.timestamps:
        raise ProbeError(f"{path}: the video stream holds no frames")
    fmt = data.get("format", {})
    fps = _frame_rate(video)
    audio = {int(s["index"]) for s in streams if s.get("codec_type") == "audio"}
    extent = integrity.Extent(
        times=scan.times,
        fps=fps,
        start=float(fmt.get("start_time") or 0.0),
        audio_end=max((scan.ends.get(i, 0.0) for i in audio), default=0.0),
        declared=float(fmt.get("duration") or 0.0),
        listed=_listed_frames(fmt, video),
        demuxer_errors=scan.errors,
    )
    problem = integrity.problem(str(path), extent)
    if problem and not allow_truncated:
        raise DamagedError(integrity.refusal(problem, extent.frames))
    if problem:
        log.warning("%s", integrity.warning(problem, extent.frames))
    return VideoInfo(
        path=str(path),
        width=int(video["width"]),
        height=int(video["height"]),
        fps=fps,
        frame_count=len(scan.timestamps),
        duration=float(fmt.get("duration") or video.get("duration") or 0.0),
        vfr=is_variable_rate(scan.timestamps),
        decode_delay=_decode_delay(video, fps) if scan.decoding_times else 0.0,
        key_times=tuple(scan.key_times),
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
        container=str(fmt.get("format_name", "")),
    )


@dataclass(frozen=True)
class PacketScan:
    """What one demuxing pass over every packet of a file found.

    Attributes:
        timestamps: sorted presentation timestamps (stream time-base ticks) of the video
            stream's frames.
        times: the same in seconds.
        ends: for each stream index, where its last packet ends, in seconds.
        errors: what the demuxer wrote at ``-v error`` ("" for a clean read).
        decoding_times: the video packets carry no presentation times, so their decoding
            times were taken.
        key_times: sorted times in seconds of the video stream's key frames (where a decoder
            can start).
    """

    timestamps: list[int]
    times: list[float]
    ends: dict[int, float]
    errors: str
    decoding_times: bool = False
    key_times: list[float] = field(default_factory=list)


def scan_packets(path: str | Path, video_index: int, every_stream: bool = True) -> PacketScan:
    """List the frames of one video stream and where each stream's data ends (only the video
    stream's unless ``every_stream``).

    Each packet counts by its presentation timestamp, or its decoding timestamp where it has
    none (AVI stores no presentation times for streams with B-frames; its frames are evenly
    spaced, so the decoding times give the same sorted timeline). When the demuxer reports
    errors (a truncated file), a video packet whose bytes run to the very end of the file is
    cut short and is not counted: the decoder cannot rebuild its frame.
    """
    command = packets_command(path, None if every_stream else video_index)
    proc = run(command, what="ffprobe")
    errors = proc.stderr.decode(errors="replace").strip()
    size = os.path.getsize(path)
    ticks: list[int] = []
    times: list[float] = []
    keys: list[float] = []
    ends: dict[int, float] = {}
    decoding_times = False
    for line in proc.stdout.decode().splitlines():
        fields = line.split(",")
        if len(fields) < 8 or not _int(fields[0]):
            continue
        index, pts, pts_time, dts, dts_time, duration, length, pos = fields[:8]
        key = len(fields) > 8 and fields[8].startswith("K")
        stamp, seconds = (pts, pts_time) if _int(pts) else (dts, dts_time)
        if not _int(stamp) or not _number(seconds):
            continue
        start = float(seconds)
        if int(index) == video_index:
            if errors and _int(pos) and _int(length) and int(pos) + int(length) >= size:
                continue
            ticks.append(int(stamp))
            times.append(start)
            if key:
                keys.append(start)
            decoding_times = decoding_times or not _int(pts)
        end = start + (float(duration) if _number(duration) else 0.0)
        ends[int(index)] = max(ends.get(int(index), end), end)
    return PacketScan(sorted(ticks), sorted(times), ends, errors, decoding_times, sorted(keys))


def frame_timestamps(path: str | Path, video_index: int) -> list[int]:
    """Sorted presentation timestamps (in stream time-base ticks) of every video frame."""
    return scan_packets(path, video_index, every_stream=False).timestamps


def frame_times(path: str | Path, video_index: int) -> list[float]:
    """Sorted presentation times in seconds of every video frame (= every decoded frame)."""
    return scan_packets(path, video_index, every_stream=False).times


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


def _decode_delay(stream: dict[str, Any], fps: Fraction) -> float:
    """Seconds that the decoder adds to the decoding times of a stream that stores no
    presentation times (AVI with B-frames): it holds back as many frames as it reorders
    (``has_b_frames``) and gives each the decoding time of the packet it read last."""
    depth = stream.get("has_b_frames")
    return float(int(depth) / fps) if depth and _int(str(depth)) else 0.0


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
    """``text`` is a whole number ("-12"); string methods, as a packet list has many."""
    return text.lstrip("-").isdigit()


def _number(text: str) -> bool:
    """``text`` is a decimal number ("0.040000"), not "N/A" or empty."""
    return text.lstrip("-").replace(".", "", 1).isdigit()


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
