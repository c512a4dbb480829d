"""Excerpts (--start/--duration/--end) and before/after videos (--compare)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deoldify_video import cli, jobs
from deoldify_video import pipeline as pipeline_module
from deoldify_video.errors import JobStateError, UsageError
from deoldify_video.excerpt import plan_excerpt
from deoldify_video.media.probe import frame_times, probe, video_frame_times
from deoldify_video.media.reader import FrameReader, read_all
from deoldify_video.pipeline import colorize_video
from deoldify_video.timecode import TimeSpan, format_time, parse_time, span_from_options
from deoldify_video.types import RenderConfig

from .conftest import DATA, ffmpeg

LOSSLESS = RenderConfig(codec="ffv1", smooth=False)


def ffprobe_json(*args: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args], capture_output=True, check=True
    )
    return json.loads(out.stdout)


def decoded_times(path: Path) -> list[float]:
    """Every decoded frame's time in seconds from the start of the file (ffprobe, decoding:
    independent of the packet scan), counted from the video stream's start time (an AVI with
    B-frames has no presentation times: its decoder delays them by its reordering depth)."""
    data = ffprobe_json(
        "-select_streams", "v:0", "-show_entries",
        "frame=best_effort_timestamp_time:stream=start_time:format=start_time", str(path),
    )  # fmt: skip
    times = sorted(float(f["best_effort_timestamp_time"]) for f in data["frames"] if f)
    start = float(data["streams"][0]["start_time"]) - float(data["format"]["start_time"])
    return [t - times[0] + start for t in times]


def packet_spans(path: Path, stream: str) -> list[tuple[float, float]]:
    """(start, duration) in seconds of each packet of ``stream`` (``a:0``)."""
    data = ffprobe_json(
        "-select_streams", stream, "-show_entries", "packet=pts_time,duration_time", str(path)
    )  # fmt: skip
    return sorted((float(p["pts_time"]), float(p["duration_time"])) for p in data["packets"])


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s at 25 fps with a key frame every 2 s, and AAC sound."""
    out = tmp_path_factory.mktemp("long") / "long.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25,hue=s=0",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", "10", "-c:v", "libx264", "-g", "50", "-c:a", "aac", "-shortest", str(out),
    )  # fmt: skip
    return out


# --------------------------------------------------------------------------- times


def test_times_as_seconds_or_clock():
    assert parse_time("90") == 90.0
    assert parse_time("1:30") == 90.0
    assert parse_time("00:01:30.250") == 90.25
    assert parse_time(".5") == 0.5
    assert format_time(5025.5) == "01:23:45.500"
    assert parse_time(format_time(3723.004)) == pytest.approx(3723.004)


@pytest.mark.parametrize(
    ("start", "duration", "end", "needle"),
    [
        ("-1", None, None, "negative"),
        (None, "-2", None, "negative"),
        ("abc", None, None, "not a time"),
        ("1:75", None, None, "below 60"),
        ("5", None, "4", "not after"),
        ("5", None, "5", "not after"),
        ("5", "0", None, "more than 0"),
        ("1", "2", "4", "not both"),
    ],
)
def test_bad_time_options(start, duration, end, needle):
    with pytest.raises(UsageError, match=needle):
        span_from_options(start, duration, end)


def test_span_from_options():
    assert span_from_options(None, None, None) is None
    assert span_from_options("1:00", "10", None) == TimeSpan(60.0, 70.0)
    assert span_from_options(None, None, "00:00:02.5") == TimeSpan(0.0, 2.5)


# --------------------------------------------------------------------------- frames


CLIPS = [
    ("basic.mp4", 0.3, 0.5),  # 25 fps, B-frames
    ("vfr.mkv", 0.45, 0.9),  # variable frame rate
    ("bframes.avi", 0.21, 0.6),  # AVI with B-frames (no presentation times)
    ("dropped.avi", 0.1, 0.4),  # a frame missing in the span
]
REAL = [("carphone.mp4", 1.0, 1.5), ("tree.avi", 2.0, 1.2)]


def expected_frames(source: Path, span: TimeSpan) -> tuple[int, list[float]]:
    """The index of the first frame of ``span`` and the times of its frames."""
    times = decoded_times(source)
    assert span.end is not None
    inside = [i for i, t in enumerate(times) if span.start - 1e-6 <= t < span.end - 1e-6]
    return inside[0], [times[i] for i in inside]


@pytest.mark.parametrize(("name", "start", "length"), CLIPS + REAL)
def test_excerpt_frames_match_ffprobe(tmp_path, make_clip, tiny_colorizer, name, start, length):
    source = DATA / "video" / name if (name, start, length) in REAL else make_clip(name)
    span = TimeSpan(start, start + length)
    first, wanted = expected_frames(source, span)
    assert 0 < len(wanted) < probe(source).frame_count
    output = tmp_path / "out.mkv"
    config = RenderConfig(codec="ffv1", smooth=False, excerpt=span, recolor=True)
    result = colorize_video(source, output, tiny_colorizer, config)
    assert result.frames == len(wanted)
    out_times = decoded_times(output)
    assert len(out_times) == len(wanted)
    assert out_times[0] == pytest.approx(0.0, abs=1e-3)  # timestamps start at zero
    shifted = [t - wanted[0] for t in wanted]
    assert max(abs(a - b) for a, b in zip(out_times, shifted, strict=True)) <= 0.0011
    # the very frames of the span: a lossless output keeps their luminance bit for bit
    info = probe(source)
    source_frames = read_all(info, count=first + len(wanted))[first:]
    assert np.array_equal(read_all(probe(output)), source_frames)


def test_segments_of_an_avi_with_b_frames_start_at_their_frames(
    tmp_path, make_clip, tiny_colorizer
):
    """Its decoder delays the frame times by its reordering depth; a seek allows for it."""
    source = make_clip("bframes.avi")
    assert probe(source).decode_delay == pytest.approx(0.08)  # two frames at 25 fps
    output = tmp_path / "out.mkv"
    options = jobs.JobOptions(segment_seconds=0.4)  # 3 segments, each from a seek
    colorize_video(source, output, tiny_colorizer, LOSSLESS, options=options)
    assert np.array_equal(read_all(probe(output)), read_all(probe(source)))


def test_plan_excerpt_counts(make_clip):
    info = probe(make_clip("basic.mp4"))  # 30 frames at 25 fps
    times = video_frame_times(info)
    whole = plan_excerpt(info, times, TimeSpan(0.0, None))
    assert (whole.first, whole.count, whole.seek) == (0, 30, None)
    part = plan_excerpt(info, times, TimeSpan(0.5, 0.7))
    assert (part.first, part.count) == (12, 5) or part.start >= 0.5
    assert part.seek is not None and times[part.first - 1] < part.seek < times[part.first]
    assert part.duration == pytest.approx(part.count / 25, abs=1e-3)


@pytest.mark.parametrize(
    ("span", "needle"),
    [
        (TimeSpan(1.3, None), "past the end"),
        (TimeSpan(0.5, 1.5), "past the end"),
        (TimeSpan(0.41, 0.43), "no frame starts"),
    ],
)
def test_plan_excerpt_refuses_spans_outside_the_video(make_clip, span, needle):
    info = probe(make_clip("basic.mp4"))  # 1.2 s
    with pytest.raises(UsageError, match=needle):
        plan_excerpt(info, video_frame_times(info), span)


def test_decoding_starts_near_the_excerpt(tmp_path, long_clip, tiny_colorizer, monkeypatch):
    seeks: list[float | None] = []

    class Recording(FrameReader):
        def __init__(self, info, start_time=None, *args, **kwargs):
            seeks.append(start_time)
            super().__init__(info, start_time, *args, **kwargs)

    monkeypatch.setattr(pipeline_module, "FrameReader", Recording)
    config = RenderConfig(excerpt=TimeSpan(8.0, 9.0))  # smoothing on: 13 warm-up frames
    colorize_video(long_clip, tmp_path / "out.mkv", tiny_colorizer, config)
    assert seeks and all(s is not None and 8.0 - 14 / 25 < s < 8.0 for s in seeks)


def test_audio_is_cut_to_the_excerpt_in_sync(tmp_path, long_clip, tiny_colorizer):
    output = tmp_path / "out.mkv"
    span = TimeSpan(3.3, 5.3)
    colorize_video(long_clip, output, tiny_colorizer, RenderConfig(excerpt=span, smooth=False))
    video = frame_times(output, 0)
    audio = packet_spans(output, "a:0")
    packet = max(d for _, d in audio)
    source_audio = packet_spans(long_clip, "a:0")
    # the first audio packet is the source's first at or after the first frame, at its time
    info = probe(long_clip)
    excerpt = plan_excerpt(info, video_frame_times(info), span)
    first_kept = next(t for t, _ in source_audio if t >= excerpt.start - 1e-6)
    offset = audio[0][0] - video[0]
    assert offset == pytest.approx(first_kept - excerpt.start, abs=1.5e-3)
    assert 0 <= offset < packet
    audio_length = audio[-1][0] + audio[-1][1] - audio[0][0]
    assert abs(audio_length - excerpt.duration) <= packet
    assert len(video) == 50


def test_subtitles_and_chapters_follow_the_excerpt(tmp_path, make_clip, tiny_colorizer):
    source = make_clip("multi.mkv")  # subtitles 0-0.8 "Hello", 0.8-1.1 "World"; chapters
    output = tmp_path / "out.mkv"
    colorize_video(source, output, tiny_colorizer, RenderConfig(excerpt=TimeSpan(0.8, 1.2)))
    data = ffprobe_json(
        "-show_chapters", "-show_entries", "packet=pts_time,stream_index", str(output)
    )  # fmt: skip
    kinds = [s.kind for s in probe(output).streams]
    assert kinds == ["audio", "audio", "subtitle"]
    subtitle_times = [float(p["pts_time"]) for p in data["packets"] if p["stream_index"] == 3]
    assert subtitle_times == [pytest.approx(0.0, abs=0.002)]  # "World", moved to the start
    assert [c["tags"]["title"] for c in data["chapters"]] == ["Two"]


# --------------------------------------------------------------------------- jobs


def test_an_excerpt_is_a_job_of_its_own(tmp_path, long_clip, tiny_colorizer):
    output = tmp_path / "out.mkv"
    job_dir = tmp_path / "job"
    options = jobs.JobOptions(job_dir=job_dir, keep_job=True)
    first = RenderConfig(excerpt=TimeSpan(2.0, 3.0))
    colorize_video(long_clip, output, tiny_colorizer, first, options=options)
    manifest = jobs.read_manifest(job_dir)
    assert manifest is not None and manifest.frame_count == 25
    assert manifest.settings["excerpt"].startswith("frames 50-74")
    # the same excerpt again resumes the finished job (nothing is colorized again)
    again = colorize_video(
        long_clip, output, tiny_colorizer, first, overwrite=True, options=options
    )
    assert again.frames == 25
    other = RenderConfig(excerpt=TimeSpan(4.0, 5.0))
    with pytest.raises(JobStateError, match="--start/--end"):
        colorize_video(long_clip, output, tiny_colorizer, other, overwrite=True, options=options)


# --------------------------------------------------------------------------- command line


def run_main(capsys, *args: str) -> tuple[int, list[str]]:
    code = cli.main(list(args))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


@pytest.mark.parametrize(
    ("times", "needle"),
    [
        (["--start", "-1"], "negative"),
        (["--start", "00:00:30"], "past the end"),
        (["--start", "0.2", "--duration", "5"], "past the end"),
        (["--start", "0.8", "--end", "0.4"], "not after"),
        (["--start", "0.2", "--duration", "0.2", "--end", "0.6"], "not both"),
        (["--start", "x"], "not a time"),
    ],
)
def test_bad_times_are_one_line_errors(tmp_path, make_clip, tiny_weights, capsys, times, needle):
    output = tmp_path / "out.mp4"
    args = ["colorize", str(make_clip("basic.mp4")), "-o", str(output), "--model"]
    code, err = run_main(capsys, *args, str(tiny_weights), *times, "-q")
    assert code == 2
    assert len(err) == 1 and needle in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_excerpt_from_the_command_line(tmp_path, long_clip, tiny_weights, capsys):
    output = tmp_path / "out.mp4"
    code, err = run_main(
        capsys, "colorize", str(long_clip), "-o", str(output), "--model", str(tiny_weights),
        "--start", "00:00:06.000", "--end", "7.5", "-q",
    )  # fmt: skip
    assert code == 0, err
    assert probe(output).frame_count == len(expected_frames(long_clip, TimeSpan(6.0, 7.5))[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


# --------------------------------------------------------------------------- before/after


@pytest.mark.parametrize(("mode", "widths"), [("side", 2), ("split", 1)])
def test_compare_video(tmp_path, long_clip, tiny_colorizer, mode, widths):
    output = tmp_path / "out.mp4"
    config = RenderConfig(excerpt=TimeSpan(4.0, 5.0), compare=mode)
    colorize_video(long_clip, output, tiny_colorizer, config)
    compare = tmp_path / "out_compare.mp4"
    out, both = probe(output), probe(compare)
    assert both.display_size == (widths * out.width, out.height)
    assert both.frame_count == out.frame_count == 25
    assert frame_times(compare, 0) == pytest.approx(frame_times(output, 0), abs=1e-3)
    assert [s.kind for s in both.streams] == ["audio"]
    # the same sound: the same packets at the same times
    assert [t for t, _ in packet_spans(compare, "a:0")] == [
        t for t, _ in packet_spans(output, "a:0")
    ]
    # the left half is the original (grey), the right half is the colour video
    with FrameReader(both, None, 1, rgb=True) as reader:
        picture = next(reader.batches(1))[0].astype(int)
    with FrameReader(out, None, 1, rgb=True) as reader:
        colour = next(reader.batches(1))[0].astype(int)
    h, w = out.height, out.width
    below_labels = slice(h // 2, h)
    left = picture[below_labels, : w // 2 - 2]
    right = picture[below_labels, -(w // 2 - 2) :]
    assert np.abs(left - left.mean(axis=2, keepdims=True)).mean() < 1.5  # grey
    chroma = np.abs(right - right.mean(axis=2, keepdims=True)).mean()
    assert chroma > 2.0 * np.abs(left - left.mean(axis=2, keepdims=True)).mean() + 0.5
    assert np.abs(right - colour[below_labels, -(w // 2 - 2) :]).mean() < 4.0


def test_compare_of_a_variable_rate_video(tmp_path, make_clip, tiny_colorizer):
    source = make_clip("vfr.mkv")
    output = tmp_path / "out.mkv"
    colorize_video(source, output, tiny_colorizer, RenderConfig(compare="side"))
    assert frame_times(tmp_path / "out_compare.mkv", 0) == pytest.approx(
        frame_times(output, 0), abs=1e-3
    )


def test_compare_refusals(tmp_path, make_clip, tiny_colorizer):
    source = make_clip("basic.mp4")
    (tmp_path / "out_compare.mp4").write_bytes(b"x")
    with pytest.raises(UsageError, match="already exists"):
        colorize_video(source, tmp_path / "out.mp4", tiny_colorizer, RenderConfig(compare="side"))
    with pytest.raises(UsageError, match="numbered frames"):
        colorize_video(
            source, tmp_path / "f_%04d.png", tiny_colorizer, RenderConfig(compare="split")
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_compare.mp4"]


@pytest.mark.parametrize(
    ("name", "mode", "factor"), [("odd.mkv", "split", 1), ("tenbit.mkv", "side", 2)]
)
def test_compare_of_odd_sizes_and_deep_video(
    tmp_path, make_clip, tiny_colorizer, name, mode, factor
):
    output = tmp_path / "out.mkv"
    colorize_video(make_clip(name), output, tiny_colorizer, RenderConfig(compare=mode))
    out, both = probe(output), probe(tmp_path / "out_compare.mkv")
    assert (both.width, both.height, both.frame_count) == (
        factor * out.width,
        out.height,
        out.frame_count,
    )
    assert both.bit_depth == out.bit_depth
