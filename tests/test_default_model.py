"""The README's main job: the shipped default model, no --model, through the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from deoldify_video.media.probe import probe

from .test_pipeline import audio_md5, check_same_video

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bigbuckbunny_bw.mp4"


def test_example_clip_is_black_and_white_with_audio():
    info = probe(EXAMPLE)
    assert (info.width, info.height, info.frame_count) == (640, 360, 132)
    assert [s.kind for s in info.streams] == ["audio"]


def test_default_model_colorizes_the_example(tmp_path):
    source = tmp_path / "reel.mp4"  # the first 30 frames of the example, audio kept
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(EXAMPLE),
            "-frames:v",
            "30",
            "-t",
            "1.2",
            "-c:v",
            "copy",
            "-c:a",
            "copy",
            str(source),
        ],
        check=True,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "deoldify_video", "colorize", str(source), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    output = tmp_path / "reel_colorized.mp4"
    check_same_video(source, output)
    assert audio_md5(output, 0) == audio_md5(source, 0)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(output), "-f", "rawvideo", "-pix_fmt", "yuv444p", "-"],
        capture_output=True,
        check=True,
    ).stdout
    planes = np.frombuffer(raw, np.uint8).reshape(-1, 3, 360, 640)
    chroma = planes[:, 1:].astype(np.int16) - 128
    assert np.abs(chroma).mean() > 3.0  # real colour, not the grey of the source
