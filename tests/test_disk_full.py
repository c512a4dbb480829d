"""A disk that fills up: a fault of the run (exit code 1), not bad input, and the job resumes.

ffmpeg's NUT muxer ignores write errors (it exits with 0 after writing part of a segment), so
the encoder's stream is written into the file by this process, which sees ENOSPC. The full
run is tested on a small tmpfs (mounting one needs root; the test is skipped without it);
the writer alone on ``/dev/full``, which fails every write with ENOSPC.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deoldify_video import jobs
from deoldify_video.errors import DiskFullError
from deoldify_video.media.probe import probe
from deoldify_video.media.writer import FrameWriter, encode_settings

from .conftest import ffmpeg

REPO = Path(__file__).resolve().parents[1]


def test_the_writer_sees_a_full_disk(make_clip):
    settings = encode_settings(probe(make_clip("silent.mp4")), preset="ultrafast")
    luma = np.full((25, settings.height, settings.width), 128, np.uint8)
    chroma = np.full((25, 2, *settings.chroma_size), 128, np.uint8)
    with (
        pytest.raises(DiskFullError, match="no space left on the disk of /dev") as excinfo,
        FrameWriter(settings, "/dev/full") as writer,
    ):
        for _ in range(8):
            writer.write(luma, chroma)
    assert excinfo.value.folder == "/dev"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 100 KiB tmpfs: room for the job's manifest and two of its four segments."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(disk)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({mounted.stderr.strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_keeps_the_finished_segments_and_resumes(tmp_path, small_disk, tiny_weights):
    source = tmp_path / "reel.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=4", "-f", "lavfi",
           "-i", "sine=d=4", "-c:v", "libx264", "-c:a", "aac", str(source))  # fmt: skip
    output = small_disk / "out.mkv"
    job_dir = jobs.default_job_dir(output)
    args = [sys.executable, "-m", "deoldify_video", "colorize", str(source), "-o", str(output),
            "--model", str(tiny_weights), "--render-factor", "2", "--threads", "1", "--quiet",
            "--segment-seconds", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    warning, error = [line for line in proc.stderr.splitlines() if line.strip()]
    # warned before any work: the free space against the job's estimate
    assert re.fullmatch(
        rf"deoldify-video: WARNING: {small_disk}: 0\.1 MB free, but the job needs about 0\.2 MB "
        r"there; it will stop when the disk is full, keeping its finished segments",
        warning,
    ), warning
    assert re.fullmatch(
        rf"deoldify-video: error: no space left on {small_disk} \({job_dir}; needs about 0\.\d MB "
        rf"more\); the finished segments are kept in {job_dir}: free some space, or give "
        r"--job-dir on another disk, and run the same command again",
        error,
    ), error
    manifest = json.loads((job_dir / jobs.MANIFEST_NAME).read_text())
    done = [s for s in manifest["segments"] if s["state"] == "done"]
    assert 1 <= len(done) < len(manifest["segments"]) == 4
    assert all((job_dir / s["file"]).stat().st_size == s["size"] for s in done)
    assert not list(small_disk.rglob("*.part")) and not output.exists()

    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    verbose = [*args[:3], "-v", *args[3:]]  # the log says what was resumed
    proc = subprocess.run(verbose, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"resuming, {len(done)} of 4 segments done" in proc.stderr
    assert probe(output).frame_count == 100
    assert sorted(p.name for p in small_disk.iterdir()) == ["out.mkv"]
