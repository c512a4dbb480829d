"""Colour inputs are refused (or recoloured with --recolor); tinted and toned black-and-white
goes through; a still image given to ``colorize`` is sent to ``image``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deoldify_video import colour_input
from deoldify_video.errors import UsageError
from deoldify_video.media.probe import probe
from deoldify_video.media.reader import read_all
from deoldify_video.monochrome import COLOUR_SPREAD, chroma_spread, is_colour

from .conftest import DATA, ffmpeg
from .test_cli import assert_one_line_error, run_cli

PHOTO = DATA / "photos" / "gcompris-qt-data" / "categorization" / "scissors3.jpg"
# ffmpeg's sepia matrix, and a blue night tint, applied to a grey picture
SEPIA = (
    "format=gray,format=rgb24,colorchannelmixer=.393:.769:.189:0:.349:.686:.168:0:.272:.534:.131"
)
BLUE = "format=gray,format=rgb24,colorchannelmixer=.25:.5:.1:0:.3:.6:.1:0:.4:.8:.2"
GREY = "format=gray"


def _clip(path: Path, look: str | None) -> Path:
    """2 s of testsrc2 at 25 fps, 240x180, H.264 4:2:0; ``look`` is a filter applied to it."""
    chain = "testsrc2=size=240x180:rate=25" + (f",{look}" if look else "")
    ffmpeg("-f", "lavfi", "-i", chain, "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(path))  # fmt: skip
    return path


def _toned(
    rgb: np.ndarray, shadows: tuple[float, ...], highlights: tuple[float, ...]
) -> np.ndarray:
    """The luminance of ``rgb`` printed from ``shadows`` to ``highlights`` colour (0-1 RGB)."""
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
    low, high = np.array(shadows, np.float32), np.array(highlights, np.float32)
    return (np.clip(low + (high - low) * luma[..., None], 0, 1) * 255).round().astype(np.uint8)


def _jpeg(rgb: np.ndarray, path: Path) -> np.ndarray:
    Image.fromarray(rgb).save(path, quality=75)
    return np.asarray(Image.open(path).convert("RGB"))


# --------------------------------------------------------------------------- the measure


def test_a_real_colour_photo_is_colour_and_its_toned_prints_are_not(tmp_path):
    """Steel scissors on green cloth: one hue, so counting hues alone would call it toned."""
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    assert is_colour(photo)
    grey = _toned(photo, (0, 0, 0), (1, 1, 1))
    assert chroma_spread(grey) < 1e-3
    prints = {
        "sepia": _toned(photo, (0.25, 0.15, 0.08), (1.0, 0.96, 0.86)),
        "blue night": _toned(photo, (0.0, 0.02, 0.1), (0.55, 0.75, 1.0)),
        # cool shadows and warm highlights: hues half a colour wheel apart
        "split-toned": _toned(photo, (0.1, 0.12, 0.22), (1.0, 0.93, 0.8)),
    }
    for name, toned in prints.items():
        spread = chroma_spread(_jpeg(toned, tmp_path / f"{name}.jpg"))
        assert spread < COLOUR_SPREAD, (name, spread)
    # a scan with a colour cast and chroma noise from the grain
    rng = np.random.default_rng(0)
    cast = grey.astype(np.float32) + np.array([6.0, 0.0, -6.0]) + rng.normal(0, 4, grey.shape)
    assert not is_colour(np.clip(cast, 0, 255).astype(np.uint8))


def test_bad_pictures_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        chroma_spread(np.zeros((8, 8, 3), np.float32))


# --------------------------------------------------------------------------- videos


@pytest.mark.parametrize(
    ("look", "colour"), [(None, True), (SEPIA, False), (BLUE, False), (GREY, False)]
)
def test_video_check_on_sampled_frames(tmp_path, look, colour):
    info = probe(_clip(tmp_path / "clip.mp4", look))
    frames = colour_input.sample_frames(info)
    assert len(frames) == colour_input.SAMPLED_FRAMES
    assert all(frame.shape == (180, 240, 3) for frame in frames)
    if colour:
        with pytest.raises(UsageError, match="a colour video .*--recolor"):
            colour_input.check_video(info)
    else:
        colour_input.check_video(info)


def test_frames_are_sampled_by_seeking_across_the_film(make_clip):
    info = probe(make_clip("basic.mp4"))  # 30 frames, 1.2 s
    assert info.key_times == (0.0,)  # one key frame, the first: the parts after it hold none
    times = colour_input.sample_times(info)
    assert len(times) == 5
    assert times == pytest.approx([0.0] + [info.duration * f for f in (0.3, 0.5, 0.7, 0.9)])
    short = probe(make_clip("silent.mp4"))  # 15 frames: too short to seek in
    assert colour_input.sample_times(short, count=10) == []
    assert len(colour_input.sample_frames(short, count=10)) == 10


def test_colorize_refuses_a_colour_video_and_recolors_it_when_asked(tmp_path, tiny_weights):
    source = _clip(tmp_path / "colour.mp4", None)
    output = tmp_path / "out.mp4"
    args = ("colorize", str(source), "-o", str(output), "--model", str(tiny_weights),
            "--render-factor", "4", "-q")  # fmt: skip
    refused = run_cli(*args)
    assert_one_line_error(refused, str(source), "a colour video", "--recolor")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["colour.mp4"]
    recolored = run_cli(*args, "--recolor")
    assert recolored.returncode == 0, recolored.stderr
    assert probe(output).frame_count == 50


def test_colorize_takes_a_sepia_film(tmp_path, tiny_weights):
    source = _clip(tmp_path / "sepia.mp4", SEPIA)
    proc = run_cli("colorize", str(source), "--model", str(tiny_weights), "--render-factor",
                   "4", "-q")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "sepia_colorized.mp4").is_file()


def test_a_still_image_given_to_colorize_points_to_image(tmp_path, tiny_weights):
    photo = tmp_path / "photo.jpg"
    Image.open(DATA / "photos-bw" / "camera.jpg").convert("RGB").save(photo)
    proc = run_cli("colorize", str(photo), "--model", str(tiny_weights))
    assert_one_line_error(proc, str(photo), "a still image", "deoldify-video image")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]


# --------------------------------------------------------------------------- photos


def test_image_refuses_a_colour_photo_and_takes_toned_ones(tmp_path, tiny_weights):
    colour = tmp_path / "scissors.jpg"
    colour.write_bytes(PHOTO.read_bytes())
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    sepia = tmp_path / "sepia.jpg"
    _jpeg(_toned(photo, (0.25, 0.15, 0.08), (1.0, 0.96, 0.86)), sepia)
    blue = tmp_path / "blue.png"
    Image.fromarray(_toned(photo, (0.0, 0.02, 0.1), (0.55, 0.75, 1.0))).save(blue)
    model = ("--model", str(tiny_weights), "--render-factor", "4")
    proc = run_cli("image", str(colour), str(sepia), str(blue), *model)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr
    assert str(colour) in lines[0] and "a colour photo" in lines[0] and "--recolor" in lines[0]
    assert "2 of 3 photos colorized, 1 failed" in lines[1]
    assert (tmp_path / "sepia_colorized.jpg").is_file() and (
        tmp_path / "blue_colorized.png"
    ).is_file()
    assert not (tmp_path / "scissors_colorized.jpg").exists()
    again = run_cli("image", str(colour), *model, "--recolor", "-q")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "scissors_colorized.jpg").is_file()


def test_key_frames_near_the_middles_are_the_samples_and_decode_to_those_frames(tmp_path):
    """A film with a key frame every 0.4 s is sampled at key frames (one picture decoded per
    seek): the one nearest each part's middle, the same frames an exact seek there gives."""
    path = tmp_path / "keys.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=240x180:rate=25", "-t", "4", "-c:v", "libx264",
           "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
           str(path))  # fmt: skip
    info = probe(path)
    assert info.key_times == pytest.approx([0.4 * i for i in range(10)])
    times = colour_input.sample_times(info)
    assert times == pytest.approx([0.4, 1.2, 2.0, 2.8, 3.6])  # parts of 0.8 s, middles 0.4 ...
    every = read_all(info, rgb=True)
    sampled = colour_input.sample_frames(info)
    assert len(sampled) == 5
    for frame, index in zip(sampled, [10, 30, 50, 70, 90], strict=True):
        assert np.array_equal(frame, every[index])


def test_colour_check_reads_few_frames(tmp_path, monkeypatch):
    """The check is cheap: a handful of one-frame decodes, each started by a seek."""
    info = probe(_clip(tmp_path / "clip.mp4", None))
    opened: list[tuple[float | None, int | None]] = []
    real = colour_input.FrameReader

    def spy(info, start_time=None, count=None, rgb=False):
        opened.append((start_time, count))
        return real(info, start_time, count, rgb)

    monkeypatch.setattr(colour_input, "FrameReader", spy)
    with pytest.raises(UsageError):
        colour_input.check_video(info)
    assert len(opened) == colour_input.SAMPLED_FRAMES
    assert all(count == 1 and start is not None for start, count in opened)


def test_sampling_survives_an_undecodable_position(tmp_path):
    """A file whose data ends early (its header promises more) still gets judged on the
    frames that decode; the colorization itself reports the damage."""
    full = _clip(tmp_path / "full.mkv", None)
    cut = tmp_path / "cut.mkv"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 5])
    info = probe(cut, allow_truncated=True)  # (colorize itself refuses it without the flag)
    frames = colour_input.sample_frames(info)
    assert 0 < len(frames) <= colour_input.SAMPLED_FRAMES
