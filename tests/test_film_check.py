"""The film check (``evaluate --films``): colour clips turned grey, colorized, scored."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deoldify_video.errors import UsageError
from deoldify_video.film_check import STRIP_HEIGHT, film_check, film_strip, strip_indices
from deoldify_video.inference import Colorizer
from deoldify_video.media.grey import grey_command, write_grey
from deoldify_video.media.probe import probe
from deoldify_video.media.reader import FrameReader, read_all
from deoldify_video.metrics import clip_ciede2000

from .conftest import ffmpeg
from .test_cli import assert_one_line_error, run_cli

# 24 and 48 frames of lavfi's colour test pattern, at two sizes
COLOUR_CLIPS = {
    "bars.mp4": ("128x96", "1", ["-c:v", "libx264", "-pix_fmt", "yuv420p"]),
    "wide.mkv": ("160x90", "2", ["-c:v", "libx264", "-pix_fmt", "yuv420p"]),
    "deep.mkv": ("96x64", "1", ["-c:v", "libx264", "-pix_fmt", "yuv420p10le"]),
    "rgb.mkv": ("96x64", "1", ["-c:v", "ffv1", "-pix_fmt", "bgr0"]),
    "full.avi": ("96x64", "1", ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"]),
}


@pytest.fixture(scope="module")
def colour_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("colour")
    clips = {}
    for name, (size, seconds, codec) in COLOUR_CLIPS.items():
        clips[name] = folder / name
        source = f"testsrc2=size={size}:rate=24"
        ffmpeg("-f", "lavfi", "-i", source, "-t", seconds, *codec, str(clips[name]))
    return clips


def _planes(path: Path) -> np.ndarray:
    """Every frame's Y, U and V planes at full size, ``(N, 3, H, W)``."""
    with FrameReader(probe(path), yuv444=True) as reader:
        return np.concatenate(list(reader.batches(16)))


@pytest.mark.parametrize(
    ("name", "neutral"), [("bars.mp4", 128), ("deep.mkv", 512), ("full.avi", 128)]
)
def test_the_grey_version_keeps_the_luminance_and_neutralises_the_chroma(
    colour_clips, tmp_path, name, neutral
):
    info = probe(colour_clips[name])
    grey = tmp_path / "grey.mkv"
    write_grey(info, grey, count=10)
    grey_info = probe(grey)
    assert (grey_info.frame_count, grey_info.full_range) == (10, info.full_range)
    np.testing.assert_array_equal(read_all(grey_info), read_all(info, count=10))
    assert set(np.unique(_planes(grey)[:, 1:])) == {neutral}


def test_grey_command(colour_clips, tmp_path):
    info = probe(colour_clips["bars.mp4"])
    cmd = grey_command(info, tmp_path / "-grey.mkv", 12)
    assert cmd[:2] == ["ffmpeg", "-nostdin"] and cmd[-1] == str(tmp_path / "-grey.mkv")
    assert cmd[cmd.index("-i") + 1] == str(colour_clips["bars.mp4"])
    assert {"-an", "-sn", "-dn"} <= set(cmd) and cmd[cmd.index("-frames:v") + 1] == "12"
    assert cmd[cmd.index("-c:v") + 1] == "ffv1" and "-frames:v" not in grey_command(info, "g.mkv")
    rgb = grey_command(probe(colour_clips["rgb.mkv"]), tmp_path / "g.mkv")
    assert rgb[rgb.index("-vf") + 1].startswith("scale=out_color_matrix=bt601:out_range=tv,")


def test_the_grey_version_of_an_rgb_clip_has_its_bt601_luminance(colour_clips, tmp_path):
    info = probe(colour_clips["rgb.mkv"])
    assert info.is_rgb_source
    grey = tmp_path / "grey.mkv"
    write_grey(info, grey)
    planes = _planes(grey)
    np.testing.assert_array_equal(planes[:, 0], read_all(info))  # the reader's own conversion
    assert set(np.unique(planes[:, 1:])) == {128}


def test_strip_indices_spread_over_the_clip():
    assert strip_indices(24, 3) == [4, 12, 20]
    assert strip_indices(100, 1) == [50]
    assert strip_indices(2, 4) == [0, 1]


def test_film_check_scores_against_the_truth(colour_clips, tiny_colorizer: Colorizer, monkeypatch):
    temporary = Path(tempfile.mkdtemp())
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    clips = [colour_clips["bars.mp4"], colour_clips["wide.mkv"]]
    events = []
    report = film_check(clips, tiny_colorizer, max_frames=40, progress=events.append)
    assert list(temporary.iterdir()) == []  # the grey and colorized clips are gone
    bars, wide = report.films
    assert (bars.name, bars.frames, wide.name, wide.frames) == ("bars.mp4", 24, "wide.mkv", 40)
    for film in report.films:
        assert film.grey_colorfulness < 0.5  # grey is grey
        assert film.truth_colorfulness > 30.0  # the test pattern is colourful
        assert film.colorfulness > 0.0 and film.grey_ciede2000 > 5.0 and film.ciede2000 > 0.0
        assert film.cdc >= 0.0 and film.warp_error >= 0.0
    # the grey baseline is the truth's own luminance without its colour
    truth = read_all(probe(clips[0]), rgb=True, count=24).astype(np.float32) / 255.0
    luma = truth @ np.array([0.299, 0.587, 0.114], np.float32)
    expected = clip_ciede2000(np.repeat(luma[..., None], 3, axis=3), truth)
    assert bars.grey_ciede2000 == pytest.approx(expected, abs=1.0)
    mean = report.mean()
    assert mean["ciede2000"] == pytest.approx((bars.ciede2000 + wide.ciede2000) / 2)
    summary = report.to_dict()
    assert summary["colorfulness_ratio"] == pytest.approx(
        mean["colorfulness"] / mean["truth_colorfulness"]
    )
    stages = {e.stage for e in events}
    assert {"colorize", "score"} <= stages
    scored = [e for e in events if e.stage == "score" and e.message == "bars.mp4"]
    assert scored[-1].done == scored[-1].total == 7 * 24 - 1
    # three frames of each clip, grey | ours | truth; the grey thumbnail is grey
    assert [len(s) for s in report.strips] == [3, 3]
    grey, ours, truth_thumb = report.strips[0][0]
    assert grey.shape == ours.shape == truth_thumb.shape == (STRIP_HEIGHT, 160, 3)
    assert np.ptp(grey.astype(int), axis=2).max() <= 2
    assert film_strip(report).shape == (2 * STRIP_HEIGHT + 8, 3 * (3 * 213 + 8) + 2 * 16, 3)


def test_film_check_refuses_a_grey_clip_before_any_work(colour_clips, make_clip, tiny_colorizer):
    grey = make_clip("silent.mp4")  # testsrc2 with its saturation at 0
    with pytest.raises(UsageError, match="not a colour clip"):
        film_check([colour_clips["bars.mp4"], grey], tiny_colorizer)
    with pytest.raises(UsageError, match="--max-frames must be at least 2"):
        film_check([colour_clips["bars.mp4"]], tiny_colorizer, max_frames=1)


def test_evaluate_films_prints_json_and_writes_a_strip(colour_clips, tiny_weights, tmp_path):
    strip = tmp_path / "strip.png"
    clips = [str(colour_clips["bars.mp4"]), str(colour_clips["wide.mkv"])]
    model = ["--model", str(tiny_weights), "--render-factor", "4", "--device", "cpu"]
    proc = run_cli(
        "evaluate", "--films", *clips, *model, "--max-frames", "30", "--json", "-q",
        "--strip", str(strip), "--strip-frames", "2", "--strip-height", "60",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert set(summary) == {"count", "mean", "colorfulness_ratio", "films"}
    assert summary["count"] == 2
    keys = {
        "ciede2000", "grey_ciede2000", "psnr", "grey_psnr", "colorfulness",
        "grey_colorfulness", "truth_colorfulness", "cdc", "warp_error",
    }  # fmt: skip
    assert set(summary["mean"]) == keys
    assert [f["name"] for f in summary["films"]] == ["bars.mp4", "wide.mkv"]
    assert [f["frames"] for f in summary["films"]] == [24, 30]
    for film in summary["films"]:
        assert set(film) == keys | {"name", "frames"}
        assert film["grey_colorfulness"] < 0.5 < film["truth_colorfulness"]
        assert film["grey_ciede2000"] > 0.0
    # two frames per clip, 60 px high: the 4:3 clip's thumbnails are 80 wide, the 16:9 one's 107
    widest = 3 * 107 + 2 * 4
    with Image.open(strip) as image:
        assert image.size == (2 * widest + 16, 2 * 60 + 8)
    assert [p.name for p in tmp_path.iterdir()] == ["strip.png"]

    table = run_cli("evaluate", "--films", clips[0], *model, "--max-frames", "12", "-q")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("1 clip turned grey and colorized")
    assert [line.split()[0] for line in lines[3:]] == ["bars.mp4", "mean"]
    values = [float(v) for v in lines[3].split()[2:]]
    assert values[:5] == [float(v) for v in lines[4].split()[1:6]]  # one clip: its own mean
    assert values[3] == 0.0 and values[4] > 0.0  # colorfulness of grey and of the truth


def test_evaluate_films_bad_input(colour_clips, make_clip, tiny_weights, tmp_path):
    model = ["--model", str(tiny_weights), "--render-factor", "4", "--device", "cpu"]
    strip = tmp_path / "strip.png"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    proc = run_cli("evaluate", "--films", str(text), *model, "--strip", str(strip))
    assert_one_line_error(proc, str(text), "not a video")
    grey = make_clip("silent.mp4")
    proc = run_cli(
        "evaluate", "--films", str(colour_clips["bars.mp4"]), str(grey), *model,
        "--strip", str(strip),
    )  # fmt: skip
    assert_one_line_error(proc, str(grey), "not a colour clip")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(photo)
    proc = run_cli("evaluate", "--films", str(photo), *model)
    assert_one_line_error(proc, str(photo), "at least two frames")
    assert not strip.exists()
    clip = str(colour_clips["bars.mp4"])
    proc = run_cli("evaluate", "--films", clip, *model, "--strip", str(tmp_path / "s.jpg"))
    assert_one_line_error(proc, "s.jpg", ".png")
    proc = run_cli("evaluate", "--films", clip, *model, "--strip-frames", "0")
    assert_one_line_error(proc, "at least 1 frame per clip")
    proc = run_cli("evaluate", "--video", clip, "--strip", str(strip))
    assert_one_line_error(proc, "--strip is for --films")
    proc = run_cli("evaluate", "--films", clip, "--images", str(tmp_path))
    assert proc.returncode == 2 and "not allowed with" in proc.stderr
    assert sorted(tmp_path.iterdir()) == sorted([text, photo])
