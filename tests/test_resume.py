"""Kill ``deoldify-video colorize`` at chosen moments, run it again, and get the very same video.

Every test runs the real command in a subprocess on a 60-frame clip cut into 6 segments, and
compares the result with an uninterrupted run: the same decoded frames (frame md5s) and the
same audio packets. The moment to kill is found by watching the job folder, never by timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from deoldify_video import jobs
from deoldify_video.jobs import JobOptions
from deoldify_video.pipeline import colorize_video

from .conftest import ffmpeg
from .test_jobs import frame_md5s
from .test_pipeline import audio_md5

REPO = Path(__file__).resolve().parents[1]
SEGMENT_SECONDS = "0.4"  # 10 frames at 25 fps: 6 segments
FRAMES = 60

# Runs the command line, but SIGKILLs itself inside the Nth manifest write: after the new
# manifest is written and synced as a .part, before it is renamed over the old one.
_KILL_IN_MANIFEST_WRITE = """
import os, signal, sys
real_replace = os.replace
writes = 0
def replace(src, dst):
    global writes
    if os.fspath(dst).endswith("manifest.json"):
        writes += 1
        if writes == int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
os.replace = replace
from deoldify_video.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


@pytest.fixture(autouse=True)
def ctrl_c_reaches_the_runs() -> Iterator[None]:
    """The runs get Ctrl-C as a terminal's foreground job does, even where this test session
    ignores SIGINT (as anything a script starts with ``&`` does): a process inherits an ignored
    signal, and Python leaves it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def make_reel(path: Path, frames: int) -> Path:
    """``frames`` frames of grey 160x120 H.264 at 25 fps with AAC audio."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25,hue=s=0",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
           "-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-shortest", str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 frames (see :func:`make_reel`)."""
    return make_reel(tmp_path_factory.mktemp("resume") / "reel.mp4", FRAMES)


def command(clip: Path, output: Path, weights: Path, *extra: str) -> list[str]:
    return ["colorize", str(clip), "-o", str(output), "--model", str(weights),
            "--render-factor", "2", "--segment-seconds", SEGMENT_SECONDS, "--threads", "1",
            "--quiet", *extra]  # fmt: skip


def start(args: list[str], script: str | None = None) -> subprocess.Popen[bytes]:
    prefix = ["-c", script] if script else ["-m", "deoldify_video"]
    return subprocess.Popen(
        [sys.executable, *prefix, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        start_new_session=True,  # its own process group, as a terminal would give it
    )


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err.decode(errors="replace")


def run(args: list[str]) -> str:
    code, err = finish(start(args))
    assert code == 0, err
    return err


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str) -> None:
    """SIGKILL ``proc`` (only it: its encoders are left running, as after kill -9) as soon as
    ``ready()`` holds."""
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {finish(proc)[1]}")
        time.sleep(0.002)
    proc.kill()
    proc.wait()


def segments_done(job_dir: Path) -> int:
    try:
        data = json.loads((job_dir / jobs.MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return 0
    return sum(s["state"] == "done" for s in data["segments"])


def parts(folder: Path, pattern: str) -> bool:
    """A non-empty file matching ``pattern`` is in ``folder``."""
    for path in folder.glob(pattern):
        try:
            if path.stat().st_size > 0:
                return True
        except FileNotFoundError:  # renamed meanwhile
            continue
    return False


@pytest.fixture(scope="module")
def reference(clip: Path, tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory):
    """(frame md5s, audio md5) of an uninterrupted run."""
    output = tmp_path_factory.mktemp("reference") / "out.mkv"
    run(command(clip, output, tiny_weights))
    md5s = frame_md5s(output)
    assert len(md5s) == FRAMES
    return md5s, audio_md5(output, 0)


def check_same(output: Path, reference) -> None:
    md5s, audio = reference
    assert frame_md5s(output) == md5s
    assert audio_md5(output, 0) == audio
    assert not jobs.default_job_dir(output).exists()
    assert sorted(p.name for p in output.parent.iterdir()) == [output.name]


def test_a_second_run_on_the_same_job_refuses(tmp_path, clip, tiny_weights, reference):
    output = tmp_path / "out.mkv"
    job_dir = jobs.default_job_dir(output)
    args = command(clip, output, tiny_weights)
    first = start(args)
    while not (job_dir / jobs.MANIFEST_NAME).exists() and first.poll() is None:
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGSTOP)  # paused, so that it surely holds the job meanwhile
    try:
        code, err = finish(start(args))
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert code == 2
    assert "another run" in err and "is working on this job" in err
    code, err = finish(first)
    assert code == 0, err
    check_same(output, reference)


def test_interrupted_everywhere_and_resumed_gives_the_same_video(
    tmp_path, clip, tiny_weights, reference
):
    """One job, stopped at every kind of moment in turn, each time resumed by the same command."""
    output = tmp_path / "out.mkv"
    job_dir = jobs.default_job_dir(output)
    args = command(clip, output, tiny_weights)

    # Ctrl-C, which a terminal sends to the whole process group, ffmpeg included
    proc = start(args)
    while segments_done(job_dir) < 1 and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    code, err = finish(proc)
    assert code == 130, err
    assert f"kept in {job_dir}" in err and "Run the same command again to resume" in err
    assert "Traceback" not in err

    # another render setting is refused, saying what changed and how to start over
    code, err = finish(start([*args, "--crf", "20"]))
    assert code == 2
    assert "--crf 17 -> 20" in err and "--fresh" in err

    # kill -9 while a segment is decoded and colorized
    done = segments_done(job_dir)
    kill_when(start(args), lambda: segments_done(job_dir) > done, "the next segment")

    # kill -9 while the encoder writes a segment file
    done = segments_done(job_dir)
    kill_when(
        start(args),
        lambda: segments_done(job_dir) > done and parts(job_dir, "segment-*.part"),
        "a segment encode",
    )

    # kill -9 between writing the new manifest and renaming it over the old one
    done = segments_done(job_dir)
    code, _ = finish(start(["1", *args], script=_KILL_IN_MANIFEST_WRITE))
    assert code == -signal.SIGKILL
    assert list(job_dir.glob("manifest.json.*.part")) and segments_done(job_dir) == done

    # kill -9 while the segments are joined
    kill_when(start(args), lambda: parts(job_dir, "video.*.part"), "the join")
    assert segments_done(job_dir) == FRAMES // 10

    # kill -9 while the output is muxed
    kill_when(start(args), lambda: parts(tmp_path, "out.mkv.*.part"), "the mux")
    assert not output.exists()

    err = run(["-v", *args[:-1]])  # not quiet: the log says what was resumed
    assert "resuming" in err
    check_same(output, reference)


def test_two_workers_give_the_same_video(tmp_path, make_clip, tiny_colorizer):
    """Each process colorizes whole segments with the same thread count: same frames."""
    source = make_clip("basic.mp4")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = tmp_path / "one.mkv"
        colorize_video(source, one, tiny_colorizer, options=JobOptions(segment_seconds=0.4))
    finally:
        torch.set_num_threads(threads)
    torch.set_num_threads(2)  # shared out: one thread per worker
    try:
        two = tmp_path / "two.mkv"
        options = JobOptions(segment_seconds=0.4, workers=2)
        colorize_video(source, two, tiny_colorizer, options=options)
    finally:
        torch.set_num_threads(threads)
    assert frame_md5s(two) == frame_md5s(one)
    assert audio_md5(two, 0) == audio_md5(one, 0)
