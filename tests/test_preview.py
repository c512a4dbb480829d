"""The preview sheet: frames chosen by seeking, a column per setting, the full run's colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deoldify_video import cli, color
from deoldify_video import preview as preview_module
from deoldify_video.errors import UsageError
from deoldify_video.excerpt import seek_time
from deoldify_video.inference import load_colorizer
from deoldify_video.media.probe import probe, video_frame_times
from deoldify_video.media.reader import FrameReader
from deoldify_video.pipeline import colorize_video
from deoldify_video.preview import (
    GAP,
    colorize_plane,
    default_sheet_path,
    read_plane,
    settings_for,
    write_sheet,
)
from deoldify_video.timecode import TimeSpan
from deoldify_video.types import RenderConfig

from .conftest import DATA, ffmpeg

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "bigbuckbunny_bw.mp4"
WIDTH = 64


@pytest.fixture(scope="module")
def scenes_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 2-second scenes at 10 fps, the second all black: frames 0-19 a test pattern,
    20-39 black, 40-59 colour bars, 60-79 a fractal (all in grey)."""
    out = tmp_path_factory.mktemp("scenes") / "scenes.mkv"
    sources = [
        "testsrc2=size=160x120:rate=10:duration=2",
        "color=black:size=160x120:rate=10:duration=2",
        "smptebars=size=160x120:rate=10:duration=2",
        "mandelbrot=size=160x120:rate=10,trim=duration=2",
    ]
    args = [arg for source in sources for arg in ("-f", "lavfi", "-i", source)]
    ffmpeg(
        *args, "-filter_complex", "concat=n=4:v=1:a=0,hue=s=0,format=yuv420p",
        "-c:v", "libx264", "-g", "15", str(out),
    )  # fmt: skip
    return out


def grid(sheet: np.ndarray, columns: int) -> list[tuple[int, int]]:
    """The (top, bottom) of each row of pictures of a sheet whose ``columns`` pictures are
    ``WIDTH`` pixels wide: the runs of picture down the first pictures' right edge, the
    header's labels (shorter) left out."""
    assert sheet.shape[1] == GAP + columns * (WIDTH + GAP)
    column = sheet[:, GAP + WIDTH - 1].astype(int).sum(axis=1)
    inside = column != sum(preview_module.BACKGROUND)
    starts = [y for y in range(1, len(inside)) if inside[y] and not inside[y - 1]]
    ends = [y for y in range(1, len(inside)) if not inside[y] and inside[y - 1]]
    return [(a, b) for a, b in zip(starts, ends, strict=True) if b - a > 30]


def cells(sheet: np.ndarray, top: int, bottom: int) -> list[np.ndarray]:
    """The pictures of the row between ``top`` and ``bottom``, as int arrays."""
    count = (sheet.shape[1] - GAP) // (WIDTH + GAP)
    lefts = [GAP + c * (WIDTH + GAP) for c in range(count)]
    return [sheet[top:bottom, x : x + WIDTH].astype(int) for x in lefts]


def chroma(picture: np.ndarray) -> float:
    return float(np.abs(picture - picture.mean(axis=2, keepdims=True)).mean())


def test_sheet_grid_and_columns_that_differ(tmp_path, scenes_clip, tiny_colorizer):
    settings = settings_for([("tiny", tiny_colorizer)], [2, 4])
    out = write_sheet(scenes_clip, tmp_path / "s.png", settings, frames=3, cell_width=WIDTH)
    sheet = np.asarray(Image.open(out).convert("RGB"))
    rows = grid(sheet, 3)
    assert len(rows) == 3
    height = round(WIDTH * 120 / 160)
    for top, bottom in rows:
        assert bottom - top == height
        grey, low, high = cells(sheet, top, bottom)
        assert chroma(grey[height // 3 :]) < 1.0  # the original, grey (its label at the top)
        assert chroma(low) > 2.0 and chroma(high) > 2.0
        assert np.abs(low - high).mean() > 1.0  # another render factor, other colours


def test_one_frame_per_scene_never_a_black_one(scenes_clip, tiny_colorizer, monkeypatch):
    reads: list[tuple[float | None, int | None]] = []

    class Recording(FrameReader):
        def __init__(self, info, start_time=None, count=None, *args, **kwargs):
            reads.append((start_time, count))
            super().__init__(info, start_time, count, *args, **kwargs)

    monkeypatch.setattr(preview_module, "FrameReader", Recording)
    info = probe(scenes_clip)
    settings = settings_for([("tiny", tiny_colorizer)], None)
    rows = preview_module.video_rows(info, settings, frames=4)
    frames = [round(float(row.label[-6:]) * 10) for row in rows]  # the timecodes' seconds
    scenes = sorted({frame // 20 for frame in frames})
    assert 1 not in scenes  # never the black scene
    assert scenes == [0, 2, 3] and len(rows) == 3  # the black part gives none
    # only single frames are decoded, from seeks: 3 candidates per part, nothing else
    assert all(count == 1 for _, count in reads)
    assert len(reads) == 4 * preview_module.CANDIDATES_PER_PART


def test_frames_at_given_times(tmp_path, scenes_clip, tiny_colorizer):
    info = probe(scenes_clip)
    settings = settings_for([("tiny", tiny_colorizer)], None)
    rows = preview_module.video_rows(info, settings, at=[0.45, 6.0])
    assert [row.label for row in rows] == ["00:00:00.500", "00:00:06.000"]
    with pytest.raises(UsageError, match="past the last frame"):
        preview_module.video_rows(info, settings, at=[9.0])


def test_a_photo_is_one_row(tmp_path, tiny_colorizer):
    photo = tmp_path / "camera.jpg"
    photo.write_bytes((DATA / "photos-bw" / "camera.jpg").read_bytes())
    settings = settings_for([("tiny", tiny_colorizer)], [2, 4])
    out = write_sheet(photo, None, settings, cell_width=WIDTH)
    assert out == default_sheet_path(photo) == tmp_path / "camera_preview.png"
    assert len(grid(np.asarray(Image.open(out).convert("RGB")), 3)) == 1


def test_preview_colour_is_the_full_runs(tmp_path):
    """The shipped model on the real example: a frame of the sheet has the colour a run with
    the smoothing off gives it (lossless output, so only the chroma upsampling differs)."""
    colorizer = load_colorizer("lite", "cpu")
    output = tmp_path / "run.mkv"
    config = RenderConfig(codec="ffv1", smooth=False, excerpt=TimeSpan(2.0, 2.4))
    colorize_video(EXAMPLE, output, colorizer, config)
    info, out = probe(EXAMPLE), probe(output)
    times, out_times = video_frame_times(info), video_frame_times(out)
    index = 50 + 5  # the excerpt starts with frame 50 (2.0 s at 25 fps)
    assert times[50] == pytest.approx(2.0)
    depth, pc_range = info.plane_depth, info.full_range
    matrix = color.matrix_for(info.color_space)
    single = load_colorizer("lite", "cpu", batch_size=1)
    sheet = colorize_plane(read_plane(info, times, index), single, depth, pc_range, matrix)
    with FrameReader(out, seek_time(out, out_times, 5), 1, yuv444=True) as reader:
        planes = next(reader.batches(1))
    run = color.planes_to_rgb(planes, depth, pc_range, matrix)[0]
    difference = np.abs(sheet.astype(int) - run.astype(int)).mean()
    assert difference < 1.0
    assert chroma(sheet.astype(int)) > 3.0  # there is colour to compare


def run_main(capsys, *args: str) -> tuple[int, list[str], str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.strip()], captured.out


def test_preview_command(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    code, err, out = run_main(
        capsys, "preview", str(EXAMPLE), "-o", str(sheet), "--at", "0:01,3.5",
        "--render-factors", "8,16", "--width", str(WIDTH), "-q",
    )  # fmt: skip
    assert code == 0, err
    assert len(grid(np.asarray(Image.open(sheet).convert("RGB")), 3)) == 2  # 3 columns


def test_a_model_not_downloaded_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DEOLDIFY_VIDEO_HOME", str(tmp_path / "empty-cache"))
    code, err, _ = run_main(capsys, "preview", str(EXAMPLE), "--models", "lite,video", "-q")
    assert code == 2
    assert len(err) == 1 and "deoldify-video models download video" in err[0], err
    assert not default_sheet_path(EXAMPLE).exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--frames", "0"], "at least 1"),
        (["--frames", "2", "--at", "1"], "not both"),
        (["--at", "1,-2"], "negative"),
        (["--at", "30"], "past the last frame"),
        (["--render-factors", "8,x"], "whole numbers"),
        (["--render-factors", "0"], "render factor"),
        (["-o", "sheet.jpg"], ".png"),
    ],
)
def test_bad_preview_options(tmp_path, capsys, args, needle):
    sheet_args = [] if "-o" in args else ["-o", str(tmp_path / "s.png")]
    code, err, _ = run_main(capsys, "preview", str(EXAMPLE), *sheet_args, *args, "-q")
    assert code == 2
    assert len(err) == 1 and needle in err[0], err
    assert list(tmp_path.iterdir()) == []
