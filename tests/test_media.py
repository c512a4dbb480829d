"""media/: probing, reading, command builders and stream plans, with real ffmpeg."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from deoldify_video.errors import DecodeError, ProbeError, UsageError
from deoldify_video.media import mux
from deoldify_video.media.probe import is_variable_rate, probe
from deoldify_video.media.reader import FrameReader, read_all, reader_command
from deoldify_video.media.writer import encode_settings, writer_command
from deoldify_video.types import VideoInfo

from .conftest import _CLIPS, CLIP_FACTS, DATA, check_facts


def test_probe_basic(make_clip):
    info = probe(make_clip("basic.mp4"))
    assert (info.width, info.height) == (320, 240)
    assert info.fps == Fraction(25)
    assert info.frame_count == 30
    assert not info.vfr
    assert info.bit_depth == 8
    assert [s.kind for s in info.streams] == ["audio"]
    assert info.audio_streams[0].codec == "aac"


@pytest.mark.parametrize("name", sorted(CLIP_FACTS))
def test_probe_finds_each_clips_facts(make_clip, rotated_clip, name):
    check_facts(probe(rotated_clip if name == "rotated.mp4" else make_clip(name)), CLIP_FACTS[name])


def test_every_synthetic_video_clip_carries_its_facts():
    assert set(CLIP_FACTS) == {*_CLIPS, "rotated.mp4"} - {"audio-only.m4a"}


def test_probe_ntsc_rate_is_exact_fraction_and_sar(make_clip):
    info = probe(make_clip("anamorphic.mp4"))
    assert info.fps == Fraction(30000, 1001)
    assert info.sar == Fraction(4, 3)
    assert info.color_space == "bt709"


def test_probe_ten_bit_vfr_rotation_streams(make_clip, rotated_clip):
    assert probe(make_clip("tenbit.mkv")).bit_depth == 10
    vfr = probe(make_clip("vfr.mkv"))
    assert vfr.vfr
    assert vfr.frame_count == 22
    rotated = probe(rotated_clip)
    assert rotated.rotation == 270
    assert rotated.display_size == (144, 176)
    multi = probe(make_clip("multi.mkv"))
    assert [(s.kind, s.codec, s.language) for s in multi.streams] == [
        ("audio", "aac", "eng"),
        ("audio", "opus", "fra"),
        ("subtitle", "subrip", ""),
    ]
    assert multi.has_chapters


def test_probe_counts_frames_of_real_clips():
    assert probe(DATA / "video" / "carphone.mp4").frame_count == 120
    tree = probe(DATA / "video" / "tree.avi")  # an AVI whose empty packets repeat frames
    assert tree.frame_count == 12 and tree.vfr
    assert tree.pix_fmt == "rgb24"


def test_variable_rate_detection_ignores_rounding():
    assert not is_variable_rate([0, 33, 67, 100, 133, 167, 200])  # 29.97 fps in milliseconds
    assert is_variable_rate([0, 40, 80, 200, 240, 400])
    assert not is_variable_rate([0, 8, 17, 25, 33, 42])  # 120 fps in milliseconds
    assert not is_variable_rate([0, 1, 2, 3, 4, 5])  # AVI: one tick per frame
    assert is_variable_rate([0, 2, 3, 4, 5, 6])  # ... and a frame missing


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", "empty"),
        ("text", "not a video"),
        ("audio", "no video stream"),
        ("truncated", "not a video"),
    ],
)
def test_probe_errors(tmp_path, make_clip, setup, message):
    path = tmp_path / "input.mp4"
    if setup == "directory":
        path.mkdir()
    elif setup == "empty":
        path.touch()
    elif setup == "text":
        path.write_text("this is not a video\n" * 50)
    elif setup == "audio":
        path = tmp_path / "audio.m4a"
        path.write_bytes(make_clip("audio-only.m4a").read_bytes())
    elif setup == "truncated":
        data = make_clip("basic.mp4").read_bytes()
        path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ProbeError, match=message) as excinfo:
        probe(path)
    assert str(path) in str(excinfo.value)


def test_reader_returns_exact_y_plane(make_clip):
    info = probe(make_clip("basic.mp4"))
    planes = read_all(info)
    assert planes.shape == (30, 240, 320) and planes.dtype == np.uint8
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", info.path, "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        capture_output=True,
        check=True,
    ).stdout
    frame = 320 * 240 * 3 // 2
    first_y = np.frombuffer(raw[: 320 * 240], np.uint8).reshape(240, 320)
    assert len(raw) == 30 * frame
    assert np.array_equal(planes[0], first_y)


def test_reader_ten_bit_and_rotation(make_clip, rotated_clip):
    ten = read_all(probe(make_clip("tenbit.mkv")))
    assert ten.dtype == np.uint16 and ten.max() > 255 and ten.max() <= 1023
    assert read_all(probe(rotated_clip)).shape[1:] == (176, 144)


def test_reader_reads_rgb_sources():
    planes = read_all(probe(DATA / "video" / "tree.avi"))
    assert planes.shape == (12, 240, 320)
    assert planes.min() >= 16 and planes.max() <= 235  # BT.601 tv range


def test_reader_detects_truncated_stream(tmp_path, make_clip):
    source = make_clip("basic.mp4")
    info = probe(source)
    # Same header and frame count, but the decoder stops early: cut the mkv copy in half.
    mkv = tmp_path / "cut.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(source), "-c", "copy", str(mkv)], check=True)
    data = mkv.read_bytes()
    mkv.write_bytes(data[: len(data) // 2])
    cut = probe(mkv, allow_truncated=True)
    assert cut.frame_count < info.frame_count  # packets are counted, so the count is honest
    with (
        FrameReader(cut, count=info.frame_count) as reader,
        pytest.raises(DecodeError, match="truncated"),
    ):
        list(reader.batches(8))


def test_reader_command_is_an_argument_list(make_clip):
    info = probe(make_clip("basic.mp4"))
    cmd = reader_command(info, start_time=0.5, count=10)
    assert cmd[:1] == ["ffmpeg"]
    assert cmd[cmd.index("-ss") + 1] == "0.500000"
    assert cmd[cmd.index("-frames:v") + 1] == "10"
    assert cmd[cmd.index("-fps_mode") + 1] == "passthrough"
    assert cmd[-1] == "pipe:1"


def test_writer_command_keeps_geometry_and_tags(make_clip, rotated_clip):
    settings = encode_settings(probe(make_clip("anamorphic.mp4")), "libx264", 20, "veryfast")
    cmd = writer_command(settings)
    assert cmd[cmd.index("-framerate") + 1] == "30000/1001"
    assert "setsar=sar=4/3:max=65535" in cmd
    assert cmd[cmd.index("-crf") + 1] == "20"
    assert cmd[cmd.index("-preset") + 1] == "veryfast"
    assert cmd[cmd.index("-colorspace") + 1] == "bt709"
    assert cmd[cmd.index("-pix_fmt") + 1] == "yuv420p"  # fed as 4:2:0: no conversion
    assert cmd[cmd.index("-pix_fmt", cmd.index("pipe:0")) + 1] == "yuv420p"
    assert settings.chroma_size == (settings.height // 2, settings.width // 2)
    odd = encode_settings(probe(make_clip("odd.mkv")))
    assert odd.output_pix_fmt == odd.input_pix_fmt == "yuv444p"  # 4:2:0 cannot hold 321x241
    assert odd.chroma_size == (241, 321)
    tenbit = encode_settings(probe(make_clip("tenbit.mkv")))
    assert tenbit.output_pix_fmt == tenbit.input_pix_fmt == "yuv420p10le"
    prores = encode_settings(probe(make_clip("basic.mp4")), "prores")
    assert (prores.input_pix_fmt, prores.output_pix_fmt) == ("yuv444p", "yuv422p10le")
    rotated = encode_settings(probe(rotated_clip))
    assert (rotated.width, rotated.height) == (144, 176)


def test_writer_rejects_bad_codec_crf_and_preset(make_clip):
    info = probe(make_clip("basic.mp4"))
    with pytest.raises(UsageError, match="codec"):
        encode_settings(info, "mpeg2")
    with pytest.raises(UsageError, match="crf"):
        encode_settings(info, "libx264", 60)
    with pytest.raises(UsageError, match="unknown preset 'quick'"):
        encode_settings(info, "libx264", 17, "quick")


def test_stream_plans_per_container(make_clip):
    info = probe(make_clip("multi.mkv"))
    assert [p.codec for p in mux.plan_streams(info, Path("o.mkv"), "libx264")] == ["copy"] * 3
    mp4 = mux.plan_streams(info, Path("o.mp4"), "libx264")
    assert [p.codec for p in mp4] == ["copy", "copy", "mov_text"]
    assert "converted" in mp4[2].note
    with pytest.raises(UsageError, match="avi container cannot hold"):
        mux.plan_streams(info, Path("o.avi"), "libx264")
    with pytest.raises(UsageError, match="unsupported output extension"):
        mux.plan_streams(info, Path("o.webm"), "libx264")
    with pytest.raises(UsageError, match="cannot hold ffv1"):
        mux.plan_streams(info, Path("o.mp4"), "ffv1")


def test_mux_command_copies_every_stream(make_clip):
    info = probe(make_clip("multi.mkv"))
    plans = mux.plan_streams(info, Path("o.mkv"), "libx264")
    cmd = mux.mux_command("video.mkv", info, plans, "o.mkv.part", "matroska", "libx264")
    assert cmd[cmd.index("-c") + 1] == "copy"
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "-map"] == ["0:v:0", "1:1", "1:2", "1:3"]
    assert cmd[cmd.index("-map_chapters") + 1] == "1"
    assert cmd[cmd.index("-f") + 1] == "matroska"


def test_timestamps_file():
    text = mux.timestamps_file_text([1.0, 1.04, 1.2])
    assert text.splitlines() == ["# timestamp format v2", "0.000000", "40.000000", "200.000000"]


def _info(pix_fmt: str, bit_depth: int = 8, color_range: str = "") -> VideoInfo:
    return VideoInfo(
        "x.mkv", 64, 48, Fraction(25), 10, 0.4, False, 0, Fraction(1), pix_fmt, bit_depth,
        color_range, "", "", "", "h264", 0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("pix_fmt", "bit_depth", "color_range", "depth", "rgb", "full"),
    [
        ("yuv420p", 8, "tv", 8, False, False),
        ("yuv420p", 8, "pc", 8, False, True),
        ("yuvj420p", 8, "", 8, False, True),
        ("yuv420p10le", 10, "", 10, False, False),
        ("gray12le", 12, "pc", 12, False, True),
        ("yuv444p14le", 14, "", 16, False, False),  # read as 16 bits, losslessly
        ("gbrp9le", 9, "", 10, True, False),
        ("rgb24", 8, "pc", 8, True, False),  # RGB becomes tv-range YUV whatever its tag
        ("pal8", 8, "", 8, True, False),
        ("rgb48le", 16, "", 16, True, False),
    ],
)
def test_video_facts_are_properties_of_the_video(pix_fmt, bit_depth, color_range, depth, rgb, full):
    info = _info(pix_fmt, bit_depth, color_range)
    assert (info.plane_depth, info.is_rgb_source, info.full_range) == (depth, rgb, full)
