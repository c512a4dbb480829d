"""Archive masters: large frames, slow encoders."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deoldify_video import pipeline
from deoldify_video.media.probe import probe
from deoldify_video.media.writer import FrameWriter
from deoldify_video.pipeline import colorize_video
from deoldify_video.types import RenderConfig

from .conftest import ffmpeg


def grey_clip(path: Path, size: str, seconds: float, rate: int = 24) -> Path:
    """A grey testsrc2 clip, losslessly coded (FFV1) as a scanner's master would be."""
    if not path.exists():
        ffmpeg(
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}", "-t", str(seconds),
            "-vf", "format=gray", "-c:v", "ffv1", str(path),
        )  # fmt: skip
    return path


class SlowEncoder(FrameWriter):
    """An encoder that takes its frames slowly and needs seconds to flush, as x264 does at 4K
    on a busy machine, or any encoder behind a GPU."""

    def write(self, luma: np.ndarray, chroma: np.ndarray) -> None:
        time.sleep(0.4)
        super().write(luma, chroma)

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            time.sleep(2.0)
        super().__exit__(*exc)  # type: ignore[arg-type]


def test_a_slow_encoder_gets_every_frame(tmp_path, make_clip, tiny_colorizer, monkeypatch):
    monkeypatch.setattr(pipeline, "FrameWriter", SlowEncoder)
    source = make_clip("basic.mp4")  # 30 frames: 15 batches of 2, the model far ahead
    output = tmp_path / "out.mkv"
    result = colorize_video(source, output, tiny_colorizer, RenderConfig(batch_size=2))
    assert result.frames == probe(output).frame_count == probe(source).frame_count == 30


def test_a_2k_scan_through_the_api(tmp_path, tiny_colorizer):
    source = grey_clip(tmp_path / "scan2k.mkv", "2048x1556", 2)
    output = tmp_path / "out.mkv"
    colorize_video(source, output, tiny_colorizer)
    out = probe(output)
    assert (out.frame_count, out.display_size) == (48, (2048, 1556))


def test_a_4k_scan_through_the_command_line(tmp_path, tiny_weights):
    source = grey_clip(tmp_path / "scan4k.mkv", "3840x2160", 1)
    output = tmp_path / "out.mkv"
    proc = subprocess.run(
        [sys.executable, "-m", "deoldify_video", "colorize", str(source), "-o", str(output),
         "--model", str(tiny_weights), "--render-factor", "4", "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = probe(output)
    assert (out.frame_count, out.display_size) == (24, (3840, 2160))


@pytest.fixture(autouse=True)
def _no_leftover_threads():
    yield
    import threading

    assert [t.name for t in threading.enumerate() if t.name in ("decode", "encode")] == []
