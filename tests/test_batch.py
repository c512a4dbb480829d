"""Many films in one command: folders expanded, each film a resumable job, bad ones named."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from deoldify_video import jobs
from deoldify_video.batch import batch_items, colorize_videos, find_videos
from deoldify_video.cli import main
from deoldify_video.errors import UsageError
from deoldify_video.jobs import JobOptions
from deoldify_video.pipeline import InProcess, plan_video, run_jobs
from deoldify_video.types import ProgressEvent

from .test_jobs import frame_md5s


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_a_folder_means_its_videos_and_recursive_keeps_sub_folders_apart(tmp_path):
    shelf = tmp_path / "shelf"
    a = _touch(shelf / "a.mkv")
    b = _touch(shelf / "B.AVI")
    _touch(shelf / "notes.txt")
    _touch(shelf / "a_colorized.mkv")  # an earlier output is not an input
    _touch(shelf / ".hidden.mp4")
    deep = _touch(shelf / "reel2" / "a.mkv")
    assert find_videos(shelf) == [b, a]
    assert find_videos(shelf, recursive=True) == [b, a, deep]

    items, errors = batch_items([shelf], tmp_path / "out", recursive=True)
    assert not errors
    assert [(i.source, i.output) for i in items] == [
        (b, tmp_path / "out" / "B_colorized.avi"),
        (a, tmp_path / "out" / "a_colorized.mkv"),
        (deep, tmp_path / "out" / "reel2" / "a_colorized.mkv"),
    ]
    items, errors = batch_items([a, deep], None)
    assert [i.output for i in items] == [shelf / "a_colorized.mkv", deep.parent / "a_colorized.mkv"]


def test_inputs_without_films_or_sharing_an_output_are_errors_of_their_own(tmp_path):
    empty = tmp_path / "empty"
    _touch(empty / "sub" / "film.mp4")
    a = _touch(tmp_path / "one" / "film.mp4")
    b = _touch(tmp_path / "two" / "film.mp4")
    items, errors = batch_items([empty, a, b], tmp_path / "out")
    assert [i.source for i in items] == [a]
    assert [source for source, _ in errors] == [empty, b]
    assert "--recursive" in str(errors[0][1])
    assert "also the output of" in str(errors[1][1])


def test_colorize_videos_reports_progress_over_every_film_and_a_rerun_skips_them(
    tmp_path, make_clip, tiny_colorizer
):
    films = tmp_path / "films"
    films.mkdir()
    shutil.copy(make_clip("basic.mp4"), films / "one.mp4")  # 30 frames
    shutil.copy(make_clip("basic.mp4"), films / "two.mp4")
    events: list[ProgressEvent] = []
    result = colorize_videos(
        [films], tmp_path / "out", tiny_colorizer, progress=events.append,
        options=JobOptions(segment_seconds=0.4),
    )  # fmt: skip
    assert [r.output.name for r in result.colorized] == ["one_colorized.mp4", "two_colorized.mp4"]
    batch = [e for e in events if e.stage == "batch"]
    assert batch[0].total == 60 and batch[-1].done == 60
    assert [e.done for e in batch] == sorted(e.done for e in batch)
    film_totals = {e.total for e in events if e.stage == "colorize"}
    assert film_totals == {30}
    assert frame_md5s(result.colorized[0].output) == frame_md5s(result.colorized[1].output)
    assert not list((tmp_path / "out").glob("*.job"))

    again = colorize_videos([films], tmp_path / "out", tiny_colorizer)
    assert not again.colorized and len(again.already_done) == 2
    assert again.summary() == "2 films: 0 colorized, 2 already done, 0 failed"


def test_the_command_goes_on_past_a_bad_film_and_exits_2_with_a_summary(
    tmp_path, make_clip, tiny_weights, capsys
):
    good = make_clip("basic.mp4")
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(os.urandom(20_000))
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "colour"
    args = ["colorize", str(good), str(bad), str(missing), "-o", str(out),
            "--model", str(tiny_weights), "--render-factor", "2", "--quiet"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3, err
    assert str(bad) in err[0] and str(missing) in err[1]
    assert err[2].endswith("3 films: 1 colorized, 0 already done, 2 failed")
    assert (out / "basic_colorized.mp4").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["basic_colorized.mp4"]

    shutil.copy(good, bad)  # the bad ones mended: the same command does only them
    shutil.copy(good, missing)
    assert main(args[:-1]) == 0  # without --quiet: a line per film and the summary
    assert "3 films: 2 colorized, 1 already done, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-o", "{tmp}/out.mp4"], "names a folder"),
        (["--job-dir", "{tmp}/job"], "--job-dir"),
        (["--fps", "24"], "--fps is for a single image sequence"),
        (["--ray-address", "127.0.0.1:1"], "--ray-address is for --cluster ray"),
        (["--cluster", "ray", "--workers", "2"], "--workers is for one machine"),
    ],
)
def test_options_that_do_not_fit_several_films_are_refused(
    tmp_path, make_clip, extra, message, capsys
):
    clip = make_clip("basic.mp4")
    other = shutil.copy(clip, tmp_path / "other.mp4")
    extra = [e.format(tmp=tmp_path) for e in extra]
    assert main(["colorize", str(clip), str(other), *extra, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.mp4"]  # no work done


def test_without_ray_installed_cluster_ray_is_one_line_saying_what_to_install(tmp_path, make_clip):
    script = (
        "import sys; sys.modules['ray'] = None\n"
        "from deoldify_video.cli import main\n"
        "raise SystemExit(main(sys.argv[1:]))\n"
    )
    clip = make_clip("basic.mp4")
    out = tmp_path / "out.mkv"
    proc = subprocess.run(
        [sys.executable, "-c", script, "colorize", str(clip), "-o", str(out), "--cluster", "ray",
         "--ray-address", "local", "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        'deoldify-video: error: Ray is not installed: pip install "deoldify-video[ray]" to use '
        "--cluster ray"
    ]
    assert not out.exists() and not jobs.default_job_dir(out).exists()


def test_the_single_machine_path_never_imports_ray(tmp_path, make_clip, tiny_weights):
    clip = make_clip("basic.mp4")
    script = (
        "import sys\n"
        "from deoldify_video.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
        "raise SystemExit(code)\n"
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", script, "colorize", str(clip), str(clip), "-o", str(out),
         "--model", str(tiny_weights), "--render-factor", "2", "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr  # the second is the first's output: refused
    assert "also the output of" in proc.stderr
    assert (out / "basic_colorized.mp4").is_file()


def test_an_output_folder_that_is_a_file_is_refused(tmp_path, tiny_colorizer):
    target = _touch(tmp_path / "out")
    with pytest.raises(UsageError, match="is a file"):
        colorize_videos([tmp_path], target, tiny_colorizer)


def test_an_executor_working_aside_gets_each_film_finished_in_a_thread_meanwhile(
    tmp_path, make_clip, tiny_colorizer
):
    """Where the segments are made elsewhere (a cluster), the driver joins and muxes a finished
    film in a thread of its own while it goes on handing out the next film's segments."""

    class Aside(InProcess):
        works_aside = True

    films = [shutil.copy(make_clip("basic.mp4"), tmp_path / f"{name}.mp4") for name in "ab"]
    seen: list[tuple[str, str]] = []

    def progress(event: ProgressEvent) -> None:
        seen.append((event.stage, threading.current_thread().name))

    jobs_to_run = [plan_video(film, None) for film in films]
    results = run_jobs(jobs_to_run, tiny_colorizer, progress, JobOptions(segment_seconds=0.4),
                       Aside(tiny_colorizer))  # fmt: skip
    assert [r.output.name for r in results] == ["a_colorized.mp4", "b_colorized.mp4"]
    assert {thread for stage, thread in seen if stage == "mux"} == {"finish_0"}
    assert ("colorize", "MainThread") in seen  # the segments were made in the calling thread
    assert frame_md5s(results[0].output) == frame_md5s(results[1].output)


def test_a_cluster_address_where_nothing_listens_is_one_line_not_a_wait(
    tmp_path, make_clip, tiny_weights, capsys
):
    pytest.importorskip("ray")
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "out.mkv"
    args = ["colorize", str(make_clip("basic.mp4")), "-o", str(out), "--model", str(tiny_weights),
            "--cluster", "ray", "--ray-address", f"127.0.0.1:{port}", "--quiet"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"deoldify-video: error: cannot reach the Ray cluster at 127.0.0.1:{port}"
    )
    assert "\n" not in err and not out.exists()
