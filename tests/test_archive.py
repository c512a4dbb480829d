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
from deoldify_video.media.reader import read_all
from deoldify_video.media.writer import FrameWriter
from deoldify_video.pipeline import colorize_video
from deoldify_video.types import RenderConfig

from .conftest import CLIP_FACTS, check_facts, ffmpeg


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
    check_facts(probe(source), CLIP_FACTS["basic.mp4"])  # 30 frames
    assert result.frames == probe(output).frame_count == 30


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


# --------------------------------------------------------------------------- image sequences


def read_frames(path: Path, pix_fmt: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Every frame of ``path`` (a file or an image) as raw ``pix_fmt`` samples."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(out, dtype).reshape(-1, *shape)


def grey16_scan(folder: Path, frames: int = 30, start: int = 86400) -> Path:
    """A 16-bit grey TIFF scan ``folder/reel1_%06d.tif`` numbered from ``start``, with
    samples that use all 16 bits (not 8-bit values scaled up)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    wave = 14000 * np.sin(xx / 9) + 9000 * np.cos(yy / 7)
    planes = np.stack(
        [(30000 + np.roll(wave, i, axis=1) + rng.integers(0, 997, yy.shape)) for i in range(frames)]
    ).astype("<u2")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "gray16le", "-s", "128x96",
         "-i", "-", "-start_number", str(start), str(folder / "reel1_%06d.tif")],
        input=planes.tobytes(), check=True,
    )  # fmt: skip
    return folder


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deoldify_video", *args], capture_output=True, text=True, check=False
    )


def test_a_16_bit_scan_keeps_its_luminance_bit_for_bit_in_ffv1(tmp_path, tiny_weights):
    scans = grey16_scan(tmp_path / "scans")
    output = tmp_path / "reel1.mkv"
    proc = run_cli("colorize", str(scans), "-o", str(output), "--codec", "ffv1",
                   "--model", str(tiny_weights), "--segment-seconds", "0.5")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "30 frames colorized at 24 frames/s" in proc.stdout
    out = probe(output)
    assert (out.frame_count, out.fps, out.bit_depth) == (30, 24, 16)
    source = np.concatenate([
        read_frames(scans / f"reel1_{n:06d}.tif", "gray16le", (96, 128), "<u2")
        for n in range(86400, 86430)
    ])  # fmt: skip
    assert np.array_equal(read_all(out), source)
    rgb = read_all(out, rgb=True).astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 4  # it has colour


def test_a_scan_to_numbered_tiffs_and_dpx_keeps_numbers_depth_and_luminance(tmp_path, tiny_weights):
    from deoldify_video.color import rgb_luma

    scans = grey16_scan(tmp_path / "scans", frames=12)
    pattern = tmp_path / "out" / "colour_%06d.tif"  # the folder is made
    proc = run_cli("colorize", str(scans / "reel1_%06d.tif"), "-o", str(pattern),
                   "--model", str(tiny_weights))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in pattern.parent.iterdir())
    assert names == [f"colour_{n:06d}.tif" for n in range(86400, 86412)]
    for n in range(86400, 86412):
        grey = read_frames(scans / f"reel1_{n:06d}.tif", "gray16le", (96, 128), "<u2")
        rgb = read_frames(pattern.parent / f"colour_{n:06d}.tif", "rgb48le", (96, 128, 3), "<u2")
        assert probe(pattern.parent / f"colour_{n:06d}.tif").pix_fmt == "rgb48le"
        assert np.array_equal(rgb_luma(rgb[0]), grey[0].astype(np.int64))
        assert np.abs(rgb[0, ..., 0].astype(int) - rgb[0, ..., 2]).mean() > 16
    dpx = tmp_path / "dpx" / "c%04d.dpx"
    proc = run_cli("colorize", str(scans), "-o", str(dpx), "--model", str(tiny_weights))
    assert proc.returncode == 0, proc.stderr
    assert probe(dpx.parent / "c86411.dpx").bit_depth == 16
    assert len(list(dpx.parent.iterdir())) == 12


def test_a_10_bit_dpx_scan_with_sound_gives_a_video_with_that_sound(tmp_path, tiny_weights):
    from .test_pipeline import audio_md5

    scans = tmp_path / "scans"
    scans.mkdir()
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x96:rate=25", "-frames:v", "20",
           "-vf", "format=gray,format=gbrp10le", str(scans / "f%04d.dpx"))  # fmt: skip
    sound = tmp_path / "sound.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440", "-t", "0.8", "-c:a", "pcm_s24le",
           str(sound))  # fmt: skip
    output = tmp_path / "reel.mkv"
    proc = run_cli("colorize", str(scans), "-o", str(output), "--fps", "25", "--audio",
                   str(sound), "--model", str(tiny_weights))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = probe(output)
    assert (out.frame_count, out.fps, out.bit_depth) == (20, 25, 10)
    assert [s.codec for s in out.audio_streams] == ["pcm_s24le"]
    assert audio_md5(output, 0) == audio_md5(sound, 0)


def test_an_interrupted_frames_output_resumes_to_the_same_files(
    tmp_path, tiny_colorizer, monkeypatch
):
    from deoldify_video.media import image_writer

    scans = grey16_scan(tmp_path / "scans", frames=30)
    whole = tmp_path / "whole" / "f_%05d.png"
    colorize_video(scans, whole, tiny_colorizer)
    writes = []
    real_write = image_writer.ImageSequenceWriter.write

    def write_then_die(self, rgb, first_number):
        if len(writes) == 2:
            raise KeyboardInterrupt
        writes.append(first_number)
        real_write(self, rgb, first_number)

    resumed = tmp_path / "resumed" / "f_%05d.png"
    monkeypatch.setattr(image_writer.ImageSequenceWriter, "write", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        colorize_video(scans, resumed, tiny_colorizer)
    assert len(list(resumed.parent.glob("f_*.png"))) == 2 * pipeline.FRAMES_PER_WRITE
    monkeypatch.setattr(image_writer.ImageSequenceWriter, "write", real_write)
    colorize_video(scans, resumed, tiny_colorizer)
    names = sorted(p.name for p in resumed.parent.iterdir())
    assert names == [f"f_{n:05d}.png" for n in range(86400, 86430)]
    for name in names:
        assert (resumed.parent / name).read_bytes() == (whole.parent / name).read_bytes()


def test_sequence_mistakes_are_one_line_errors(tmp_path, tiny_weights):
    scans = grey16_scan(tmp_path / "scans", frames=10)
    for gone in (86403, 86404, 86407):
        (scans / f"reel1_{gone:06d}.tif").unlink()
    proc = run_cli("colorize", str(scans), "--model", str(tiny_weights))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"deoldify-video: error: {scans}/reel1_%06d.tif: frames 86400 to 86409 have gaps: "
        "86403-86404, 86407 missing (3 frames)"
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("colorize", str(empty), "--model", str(tiny_weights))
    assert proc.returncode == 2 and "is a directory without numbered frames" in proc.stderr
    whole = grey16_scan(tmp_path / "whole", frames=2)
    proc = run_cli("colorize", str(whole / "reel1_%06d.tif"), "-o", str(tmp_path / "o_%04d.jpg"))
    assert proc.returncode == 2 and "cannot write .jpg frames" in proc.stderr


def test_find_sequence_numbering(tmp_path):
    from deoldify_video.errors import ProbeError
    from deoldify_video.media.sequence import find_sequence

    for name in ("f9.png", "f10.png", "f11.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    sequence = find_sequence(tmp_path)
    assert (sequence.pattern, sequence.start, sequence.count) == (f"{tmp_path}/f%d.png", 9, 3)
    (tmp_path / "g_0001.dpx").write_bytes(b"x")
    with pytest.raises(ProbeError, match="several numbered sequences"):
        find_sequence(tmp_path)
    sequence = find_sequence(tmp_path / "g_%04d.dpx")
    assert (sequence.start, sequence.count, sequence.path(1).name) == (1, 1, "g_0001.dpx")
    with pytest.raises(ProbeError, match="no file matches"):
        find_sequence(tmp_path / "h_%04d.dpx")


def test_x264_lookahead_is_shorter_above_1080p():
    """x264's lookahead holds whole frames: at 4K its default costs 1.7 GB."""
    from fractions import Fraction

    from deoldify_video.media.writer import EncodeSettings, writer_command

    def command(width: int, height: int) -> list[str]:
        settings = EncodeSettings(width, height, Fraction(24), Fraction(1), 8, False, "", "", "")
        return writer_command(settings)

    uhd = command(3840, 2160)
    assert uhd[uhd.index("-rc-lookahead") + 1] == "20"
    assert "-rc-lookahead" not in command(1920, 1080)
