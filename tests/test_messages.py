"""One line means one line: option conflicts, model files, downloads, evaluation and progress."""

from __future__ import annotations

import io
import logging
import os
import socket

import pytest
import yt_dlp
from yt_dlp.utils import RetryManager

from deoldify_video.cli import _ProgressBars
from deoldify_video.inference import oversize_note
from deoldify_video.media import source
from deoldify_video.types import STAGES, ProgressEvent

from .conftest import DATA
from .test_cli import assert_one_line_error, run_cli

# --------------------------------------------------------------------------- colorize options


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--smooth-strength", "0.99"], "--smooth-strength must be from 0 to 0.95, got 0.99"),
        (["--smooth-strength", "-0.1"], "--smooth-strength must be from 0 to 0.95"),
        (["--no-smooth", "--smooth-strength", "0.6"], "--smooth-strength and --no-smooth"),
        (
            ["--codec", "prores", "--crf", "20"],
            "--crf applies to libx264 and libx265, not to prores",
        ),
        (["--codec", "ffv1", "--preset", "fast"], "--preset applies to libx264 and libx265"),
        (["-o", "{tmp}/f_%06d.png", "--crf", "20"], "--crf is for encoded video, not numbered"),
    ],
)
def test_contradicting_or_excessive_options_are_refused(tmp_path, make_clip, tiny_weights, extra,
                                                        message):  # fmt: skip
    output = tmp_path / "out.mkv"
    extra = [arg.format(tmp=tmp_path) for arg in extra]
    proc = run_cli("colorize", str(make_clip("silent.mp4")), "-o", str(output),
                   "--model", str(tiny_weights), *extra)  # fmt: skip
    assert_one_line_error(proc, message)
    assert list(tmp_path.iterdir()) == []


def test_a_model_input_far_larger_than_the_picture_is_warned_about(
    tmp_path, make_clip, tiny_weights, tiny_colorizer
):
    """176x144 at render factor 24: a 384x320 model input, 2.2 times the picture."""
    output = tmp_path / "out.mkv"
    proc = run_cli("colorize", str(make_clip("silent.mp4")), "-o", str(output),
                   "--model", str(tiny_weights), "--render-factor", "24", "-q")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert "WARNING" in line and "silent.mp4" in line
    assert "render factor 24 makes the model input 384x320, 2.2 times the 176x144 picture" in line
    assert "--render-factor 11 matches the picture" in line
    assert oversize_note(tiny_colorizer, 144, 176) == ""  # its own 64 px: no warning


def test_output_folders_are_created_and_a_folder_takes_the_default_name(
    tmp_path, make_clip, tiny_weights
):
    source = make_clip("silent.mp4")
    model = ("--model", str(tiny_weights), "--render-factor", "4", "-q")
    nested = tmp_path / "a" / "b" / "out.mp4"
    assert run_cli("colorize", str(source), "-o", str(nested), *model).returncode == 0
    assert nested.is_file()
    folder = tmp_path / "new folder"
    assert run_cli("colorize", str(source), "-o", f"{folder}/", *model).returncode == 0
    assert (folder / "silent_colorized.mp4").is_file()
    existing = tmp_path / "a"
    assert run_cli("colorize", str(source), "-o", str(existing), *model).returncode == 0
    assert (existing / "silent_colorized.mp4").is_file()


# --------------------------------------------------------------------------- models


def test_a_missing_model_file_is_no_such_file(tmp_path, make_clip):
    proc = run_cli("colorize", str(make_clip("silent.mp4")), "-o", str(tmp_path / "o.mp4"),
                   "--model", "./nofile.pth")  # fmt: skip
    assert_one_line_error(proc, "nofile.pth: no such file")


def test_models_download_of_the_shipped_model_is_no_error():
    proc = run_cli("models", "download", "lite")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("lite ships with the package, nothing to download: ")
    assert proc.stdout.strip().endswith("lite.pt") and proc.stderr == ""


def test_models_download_offline_says_what_to_do(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, DEOLDIFY_VIDEO_HOME=str(tmp_path))
    proc = run_cli("models", "download", "video", "--url", f"http://127.0.0.1:{port}/v.pth",
                   env=env)  # fmt: skip
    assert_one_line_error(proc, "cannot reach 127.0.0.1: no network? (Connection refused)")
    line = proc.stderr.strip()
    assert f"put it at {tmp_path / 'ColorizeVideo_gen.pth'}" in line
    assert "--model video --weights FILE" in line and "urlopen" not in line


def test_models_list_shows_every_size():
    proc = run_cli("models", "list")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert "?" not in proc.stdout
    assert "~873.9 MB" in rows["video"] and "~873.9 MB" in rows["stable"]
    assert "~255.1 MB" in rows["artistic"]
    assert "8.1 MB" in rows["lite"]


# --------------------------------------------------------------------------- evaluate


def test_evaluate_one_photo_and_a_file_that_is_no_list(tmp_path, tiny_weights):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes((DATA / "photos/gcompris-qt-data/categorization/scissors3.jpg").read_bytes())
    proc = run_cli("evaluate", "--images", str(photo), "--model", str(tiny_weights),
                   "--render-factor", "4", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert '"count": 1' in proc.stdout
    binary = tmp_path / "frames.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    bad = run_cli("evaluate", "--images", str(binary), "--model", str(tiny_weights))
    assert_one_line_error(bad, str(binary), "neither a photo", "nor a text list of photos")


def test_evaluate_video_shows_a_bar(make_clip):
    clip = str(make_clip("silent.mp4"))  # 15 frames
    proc = run_cli("evaluate", "--video", clip, clip, "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"frames": 15' in proc.stdout
    # 15 frames decoded twice, CDC 15, warp error 14, CIEDE2000 15
    assert "score: 100%" in proc.stderr and "74/74" in proc.stderr
    quiet = run_cli("evaluate", "--video", clip, "--json", "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""


# --------------------------------------------------------------------------- online clips


def test_ytdlp_retries_are_not_warnings(caplog):
    """yt-dlp reports each retry of a failing request as a warning; one line is the error."""
    with (
        caplog.at_level(logging.DEBUG, logger=source.__name__),
        yt_dlp.YoutubeDL({"logger": source._YtdlpLogger(), "quiet": True}) as ydl,
    ):
        for count in (1, 2, 3):
            RetryManager.report_retry(OSError("Connection timed out"), count, 3,
                                      sleep_func=None, info=ydl.to_screen,
                                      warn=ydl.report_warning)  # fmt: skip
        ydl.report_warning("the site changed its layout")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["the site changed its layout"]
    assert sum("Retrying (" in r.getMessage() for r in caplog.records) == 3


# --------------------------------------------------------------------------- progress


def _bars(events: list[ProgressEvent]) -> tuple[_ProgressBars, str]:
    out = io.StringIO()
    bars = _ProgressBars(disabled=False)
    original = _ProgressBars.__call__

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("deoldify_video.cli.sys.stderr", out)
        for event in events:
            original(bars, event)
        text = out.getvalue()
    return bars, text


def test_a_resumed_bar_counts_only_this_runs_frames():
    """400 frames were done before: the bar starts there, so they count in no rate."""
    bars, _ = _bars([ProgressEvent("colorize", 400, 1000), ProgressEvent("colorize", 410, 1000)])
    meter = bars.bars["colorize"].format_dict  # what tqdm's rate and ETA are computed from
    assert meter["n"] - meter["initial"] == 10 and meter["total"] == 1000
    bars.__exit__(None, None, None)


def test_a_new_stage_closes_the_bar_above_it():
    bars, text = _bars([ProgressEvent("colorize", 0, 10), ProgressEvent("colorize", 10, 10),
                        ProgressEvent("mux", 0, 1)])  # fmt: skip
    assert bars.bars["colorize"].disable  # closed, its last state left on its own line
    assert not bars.bars["mux"].disable
    assert "colorize: 100%" in text and "10/10" in text
    bars.__exit__(None, None, None)


def test_progress_stages_are_the_listed_ones():
    with pytest.raises(ValueError, match="unknown progress stage 'train'"):
        ProgressEvent("train", 0, 1)  # type: ignore[arg-type]
    assert set(_ProgressBars.UNITS) <= set(STAGES)
    assert {"download", "colorize", "mux", "evaluate", "train-gan"} <= set(STAGES)
