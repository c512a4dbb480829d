"""Exit codes of the command line for faults of the run and for signals.

2 is bad input or usage; a fault of the run itself (a worker process died, a broken
invariant, a full disk) is 1; SIGTERM, which schedulers and ``timeout`` send, stops the run as
Ctrl-C does (the resume hint, temporary files removed, the job resumable) with 143.
Every test runs the real command in a subprocess and acts on what it sees in the job folder,
never on timing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deoldify_video import errors, jobs

from .conftest import ffmpeg
from .test_resume import segments_done

REPO = Path(__file__).resolve().parents[1]


def test_internal_faults_exit_1_and_bad_input_2():
    assert errors.InternalError.exit_code == errors.DiskFullError.exit_code == 1
    assert errors.DamagedError.exit_code == errors.DecodeError.exit_code == 2


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six seconds of 160x120 at 25 fps with sound: six segments of a second."""
    path = tmp_path_factory.mktemp("exit") / "reel.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=6", "-f", "lavfi",
           "-i", "sine=d=6", "-c:v", "libx264", "-c:a", "aac", str(path))  # fmt: skip
    return path


def start(clip: Path, output: Path, weights: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "deoldify_video", "colorize", str(clip), "-o", str(output),
         "--model", str(weights), "--render-factor", "2", "--quiet", "--segment-seconds", "1",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        start_new_session=True,  # its own process group, as a terminal or a scheduler gives it
    )  # fmt: skip


def wait_for(proc: subprocess.Popen[str], ready, what: str):
    """Poll until ``ready()`` gives something true, and return it (the run must not end first)."""
    while not (found := ready()):
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.communicate()[1]}")
        time.sleep(0.01)
    return found


def running_with(path: Path) -> list[str]:
    """Command lines of the processes that still name ``path`` (an ffmpeg left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline and "pytest" not in cmdline:
            found.append(cmdline)
    return found


def test_a_worker_that_dies_is_an_internal_fault(tmp_path, clip, tiny_weights):
    output = tmp_path / "out.mkv"
    job_dir = jobs.default_job_dir(output)
    proc = start(clip, output, tiny_weights, "--workers", "2", "--threads", "2")

    def a_worker_encoding() -> int:
        parts = [p.name for p in job_dir.glob("segment-*.part")] if job_dir.is_dir() else []
        return int(parts[0].split(".")[-2]) if parts else 0  # segment-N.nut.<pid>.part

    worker = wait_for(proc, a_worker_encoding, "a worker started a segment")
    os.kill(worker, signal.SIGKILL)  # mid-segment: that segment can never be finished
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["deoldify-video: error: a worker process died (exit code -9)"]
    assert not list(job_dir.glob("*.part"))


@pytest.mark.parametrize("to", ["process", "group"])
def test_sigterm_stops_like_ctrl_c(tmp_path, clip, tiny_weights, to):
    """``kill PID``, and SIGTERM to the whole process group (as ``timeout`` and systemd send
    it, ffmpeg included)."""
    output = tmp_path / "out.mkv"
    job_dir = jobs.default_job_dir(output)
    proc = start(clip, output, tiny_weights, "--threads", "1")
    wait_for(proc, lambda: segments_done(job_dir) >= 1, "the first segment")
    if to == "process":
        os.kill(proc.pid, signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [
        f"deoldify-video: terminated (SIGTERM); the finished segments are kept in {job_dir}. "
        "Run the same command again to resume."
    ]
    assert not list(tmp_path.rglob("*.part"))  # no temporary file left, in the job or beside
    assert running_with(clip) == []  # no decoder or encoder left running
    done = segments_done(job_dir)
    assert 1 <= done < 6

    resumed = start(clip, output, tiny_weights, "--threads", "1")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert re.fullmatch(r"\s*", err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]
