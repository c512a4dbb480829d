"""Damaged films: truncated files, video that stops before its audio, damaged stretches.

Every clip is a real file made with ffmpeg and then damaged the way files get damaged: its
bytes cut short (a download or a copy that stopped), its frames' bytes overwritten (bad
sectors, a scratched tape), a stretch of the container zeroed. Without ``--allow-truncated``
the run stops with exit code 2 and one line giving the figures, writing nothing; with it the
frames that are there are colorized, none dropped or repeated, with a warning.
"""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import pytest

from deoldify_video.errors import DamagedError, DecodeError
from deoldify_video.media import integrity
from deoldify_video.media.probe import frame_times, probe
from deoldify_video.media.reader import FrameReader

from .conftest import ffmpeg
from .test_pipeline import audio_md5

FPS = 25


def make_film(path: Path, seconds: float, codec: list[str], audio_seconds: float = 0.0) -> Path:
    """A 160x120 test pattern at 25 fps in Matroska, with ``audio_seconds`` of AAC (none if 0)."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={FPS}:duration={seconds}"]
    if audio_seconds:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:d={audio_seconds}"]
        args += ["-c:a", "aac"]
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg(*args, "-c:v", *codec, str(path))
    return path


def write(dest: Path, data: bytes) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return dest


def cut(source: Path, dest: Path, fraction: float) -> Path:
    """The first ``fraction`` of the bytes of ``source``, as a download that stopped."""
    data = source.read_bytes()
    return write(dest, data[: int(len(data) * fraction)])


def damage_frames(source: Path, dest: Path, first: float, last: float, flips: int) -> Path:
    """``source`` with ``flips`` bytes inverted inside each video frame's data from ``first``
    to ``last`` seconds: the container stays intact, the decoder meets damaged frames."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "packet=pts_time,pos,size", "-of", "csv=p=0", str(source)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    data = bytearray(source.read_bytes())
    rng = random.Random(0)
    for line in out.split():
        time, size, pos = (float(v) for v in line.split(",")[:3])
        if first <= time < last:
            for _ in range(flips):  # in the middle third of the frame: never a block header
                data[int(pos) + rng.randrange(int(size) // 3, 2 * int(size) // 3)] ^= 0xFF
    return write(dest, bytes(data))


def zero_stretch(source: Path, dest: Path, start: float, end: float) -> Path:
    """``source`` with its bytes from the fraction ``start`` to ``end`` zeroed: the demuxer
    loses the frames stored there."""
    data = bytearray(source.read_bytes())
    a, b = int(len(data) * start), int(len(data) * end)
    data[a:b] = bytes(b - a)
    return write(dest, bytes(data))


def decode_count(path: Path) -> int:
    """Frames ffmpeg itself decodes from ``path``."""
    out = subprocess.run(
        ["ffmpeg", "-v", "quiet", "-i", str(path), "-map", "0:v", "-fps_mode", "passthrough",
         "-f", "framemd5", "-"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return sum(not line.startswith("#") for line in out.splitlines())


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def colorize(source: Path, output: Path, weights: Path, *extra: str):
    return subprocess.run(
        [sys.executable, "-m", "deoldify_video", "colorize", str(source), "-o", str(output),
         "--model", str(weights), "--render-factor", "2", "--threads", "1", "--quiet",
         "--segment-seconds", "2", *extra],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def relative(times: list[float]) -> list[float]:
    return [round(t - times[0], 3) for t in times]


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The damaged films, each alone in its own folder (as ``film.mkv``)."""
    root = tmp_path_factory.mktemp("damaged")
    x264 = ["libx264", "-pix_fmt", "yuv420p"]
    intra = make_film(root / "intra.mkv", 8, ["mpeg2video", "-g", "1", "-q:v", "4"])
    whole = make_film(root / "whole.mkv", 10, x264, audio_seconds=10)
    return {
        "truncated": cut(whole, root / "truncated" / "film.mkv", 0.31),
        "early": make_film(root / "early" / "film.mkv", 3, x264, audio_seconds=10),
        "concealed": damage_frames(intra, root / "concealed" / "film.mkv", 3, 5, flips=4),
        "lost": zero_stretch(intra, root / "lost" / "film.mkv", 0.45, 0.55),
    }


# --------------------------------------------------------------------------- the figures


def test_integrity_figures():
    times = [i / FPS for i in range(76)]
    whole = integrity.Extent(times, Fraction(FPS), declared=3.04)
    assert integrity.problem("f.mkv", whole) == ""
    cut_short = integrity.Extent(times, Fraction(FPS), declared=10.0, demuxer_errors="x")
    assert integrity.problem("f.mkv", cut_short) == (
        "f.mkv: truncated: the data ends at 3.0 s of 10.0 s (76 of about 250 frames)"
    )
    # the header alone is not believed: without the demuxer's word, a short file is whole
    assert integrity.problem("f.mkv", integrity.Extent(times, Fraction(FPS), declared=10.0)) == ""
    # audio a little longer than the video is normal; seconds longer is not
    assert integrity.problem("f.mkv", integrity.Extent(times, Fraction(FPS), audio_end=3.5)) == ""
    assert integrity.problem("f.mkv", integrity.Extent(times, Fraction(FPS), audio_end=10.0)) == (
        "f.mkv: the video ends at 3.0 s but the audio goes on to 10.0 s (76 of about 250 frames)"
    )
    gap = [t for t in times if not 1.0 <= t < 2.0]
    lost = integrity.Extent(gap, Fraction(FPS), demuxer_errors="[mkv @ 0x1f] bad block")
    assert integrity.problem("f.mkv", lost) == (
        "f.mkv: damaged: the demuxer reports errors (mkv: bad block); about 25 frames are "
        "missing between 1.0 s and 2.0 s"
    )
    listed = integrity.Extent(times, Fraction(FPS), declared=10.0, listed=250)
    assert "(76 of 250 frames)" in integrity.problem("f.mp4", listed)


@pytest.mark.parametrize("fraction", [0.2, 0.31, 0.5, 0.73, 0.95])
@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_truncated_files_are_measured_by_the_frames_that_decode(tmp_path, container, fraction):
    whole = make_film(
        tmp_path / f"whole.{container}", 10, ["libx264", "-movflags", "+faststart"], 10
    )
    path = cut(whole, tmp_path / f"cut.{container}", fraction)
    with pytest.raises(DamagedError, match="truncated: the data ends at") as excinfo:
        probe(path)
    found = re.search(
        r"at ([\d.]+) s of 10\.0 s \((\d+) of (about )?25[01] frames\)", str(excinfo.value)
    )
    assert found, excinfo.value
    info = probe(path, allow_truncated=True)
    assert int(found[2]) == info.frame_count == decode_count(path)
    assert len(frame_times(path, info.video_index)) == info.frame_count
    assert abs(float(found[1]) - info.frame_count / FPS) < 0.6  # (B-frames: decoding order)
    with FrameReader(info, allow_damage=True) as reader:
        assert sum(len(batch) for batch in reader.batches(32)) == info.frame_count


# --------------------------------------------------------------------------- the command line


def test_truncated_film_stops_with_the_figures_or_colorizes_what_is_there(
    tmp_path, films, tiny_weights
):
    source = films["truncated"]
    before = md5(source)
    output = tmp_path / "out.mkv"
    proc = colorize(source, output, tiny_weights)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    found = re.search(
        r"film\.mkv: truncated: the data ends at (\d\.\d) s of 10\.0 s \((\d+) of about 25[01] "
        r"frames\); --allow-truncated colorizes",
        line,
    )
    assert found, line
    frames = int(found[2])
    assert frames == decode_count(source) and 60 < frames < 90
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a job folder

    proc = colorize(source, output, tiny_weights, "--allow-truncated")
    assert proc.returncode == 0, proc.stderr
    warning = one_line(proc.stderr)
    assert "WARNING" in warning and f"({frames} of about 25" in warning
    assert f"the data ends at {found[1]} s of 10.0 s" in warning
    info = probe(output)
    assert info.frame_count == frames
    assert relative(frame_times(output, info.video_index)) == [
        round(i / FPS, 3) for i in range(frames)
    ]
    assert md5(source) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]


def test_video_that_ends_before_its_audio(tmp_path, films, tiny_weights):
    source = films["early"]
    output = tmp_path / "out.mkv"
    proc = colorize(source, output, tiny_weights)
    assert proc.returncode == 2
    assert re.search(
        r"film\.mkv: the video ends at 3\.0 s but the audio goes on to 10\.0 s \(75 of about "
        r"25[01] frames\); --allow-truncated colorizes the 75 frames that are there$",
        one_line(proc.stderr),
    )
    assert not output.exists()
    proc = colorize(source, output, tiny_weights, "--allow-truncated")
    assert proc.returncode == 0, proc.stderr
    assert "the video ends at 3.0 s but the audio goes on to 10.0 s" in one_line(proc.stderr)
    assert probe(output, allow_truncated=True).frame_count == 75  # (its audio goes on too)
    assert audio_md5(output, 0) == audio_md5(source, 0)  # all ten seconds, untouched


def test_damaged_stretch_stops_or_is_colorized_frame_for_frame(tmp_path, films, tiny_weights):
    """Damage inside the frames: the decoder conceals it, and says so at ``-v error``."""
    source = films["concealed"]
    output = tmp_path / "out.mkv"
    proc = colorize(source, output, tiny_weights)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    found = re.search(r"film\.mkv: damaged: (\d+) decode errors between about ([\d.]+) s and", line)
    assert found, line
    assert int(found[1]) > 10 and 2.0 <= float(found[2]) <= 5.0
    assert "--allow-truncated" in line
    assert not output.exists()

    proc = colorize(source, output, tiny_weights, "--allow-truncated")
    assert proc.returncode == 0, proc.stderr
    assert "damaged:" in proc.stderr and "concealed" in proc.stderr
    src, out = probe(source), probe(output)
    assert out.frame_count == src.frame_count == 200  # none dropped, none repeated
    assert relative(frame_times(output, 0)) == relative(frame_times(source, 0))


def test_lost_stretch_keeps_the_source_timing(tmp_path, films, tiny_weights):
    """Damage in the container: the demuxer loses the frames stored there."""
    source = films["lost"]
    output = tmp_path / "out.mkv"
    proc = colorize(source, output, tiny_weights)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    found = re.search(r"damaged: the demuxer reports errors \(.+\); about (\d+) frames are "
                      r"missing between ([\d.]+) s and ([\d.]+) s", line)  # fmt: skip
    assert found, line
    present = probe(source, allow_truncated=True)
    assert present.frame_count + int(found[1]) == 200
    assert list(tmp_path.iterdir()) == []

    proc = colorize(source, output, tiny_weights, "--allow-truncated")
    assert proc.returncode == 0, proc.stderr
    out = probe(output)
    assert out.frame_count == present.frame_count
    times = relative(frame_times(source, present.video_index))
    assert relative(frame_times(output, out.video_index)) == times  # the gap is kept


# --------------------------------------------------------------------------- a long damaged film


def test_a_long_run_of_decode_errors_does_not_hang_the_reader(tmp_path):
    """Far more than a pipe holds (64 KiB) on ffmpeg's stderr, while the frames still flow."""
    intra = make_film(tmp_path / "long.mkv", 30, ["mpeg2video", "-g", "1", "-q:v", "4"])
    source = damage_frames(intra, tmp_path / "damaged.mkv", 1, 29, flips=12)
    errors = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(source), "-f", "null", "-"],
        capture_output=True, check=False,
    ).stderr  # fmt: skip
    assert len(errors) > 2 * 65536  # the premise: ffmpeg would fill the pipe twice over
    info = probe(source)
    results: list[object] = []

    def read(allow: bool) -> None:
        try:
            with FrameReader(info, allow_damage=allow) as reader:
                results.append(sum(len(batch) for batch in reader.batches(16)))
        except DecodeError as exc:
            results.append(exc)

    for allow in (True, False):
        thread = threading.Thread(target=read, args=(allow,), daemon=True)
        thread.start()
        thread.join(timeout=300)  # a guard against a hang, not a speed limit
        assert not thread.is_alive(), "the reader hung"
    counted, refused = results
    assert counted == info.frame_count == 750
    assert isinstance(refused, DecodeError)
    found = re.search(
        r"damaged: (\d+) decode errors between about ([\d.]+) s and ([\d.]+) s", str(refused)
    )
    assert found, refused
    # where the damage is: frames 25 to 724, told as far as the decoder's lead allows
    assert int(found[1]) > 1000 and float(found[2]) <= 1.5 and float(found[3]) >= 28.0
    assert len(refused.stderr) <= 4100  # the tail is kept, not every line
