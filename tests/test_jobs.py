"""Job folders: segment plan, seek windows, manifest, lock, verification, status, concat list."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from deoldify_video import jobs
from deoldify_video.errors import JobStateError, UsageError
from deoldify_video.inference import Colorizer
from deoldify_video.jobs import JobOptions
from deoldify_video.media import concat
from deoldify_video.media.probe import frame_times, probe
from deoldify_video.media.reader import FrameReader, read_all
from deoldify_video.media.writer import encode_settings
from deoldify_video.nets.weights import weights_digest
from deoldify_video.pipeline import colorize_video
from deoldify_video.stages import Cancelled
from deoldify_video.types import ProgressEvent, Segment

from .conftest import DATA

# --------------------------------------------------------------------------- plan and windows


def test_segments_cover_every_frame_once():
    segments = jobs.plan_segments(113, 25)
    assert [(s.start, s.end) for s in segments] == [
        (0, 25),
        (25, 50),
        (50, 75),
        (75, 100),
        (100, 113),
    ]
    assert [s.index for s in segments] == [0, 1, 2, 3, 4]
    # a tail shorter than half a segment joins the last one
    assert [(s.start, s.end) for s in jobs.plan_segments(112, 25)] == [
        (0, 25),
        (25, 50),
        (50, 75),
        (75, 112),
    ]
    assert jobs.plan_segments(5, 10) == (Segment(0, 0, 5),)
    assert jobs.plan_segments(14, 10) == (Segment(0, 0, 14),)
    with pytest.raises(ValueError):
        jobs.plan_segments(0, 10)


def test_segment_length_in_whole_frames():
    assert jobs.segment_frames_for(Fraction(30000, 1001), 10.0) == 300
    assert jobs.segment_frames_for(Fraction(25), 0.6) == 15
    assert jobs.segment_frames_for(Fraction(25), 0.001) == 1
    with pytest.raises(UsageError, match="segment-seconds"):
        JobOptions(segment_seconds=0)
    with pytest.raises(UsageError, match="workers"):
        JobOptions(workers=0)
    assert JobOptions(job_dir="reel.job").job_dir == Path("reel.job")  # a str is a path too


def test_segment_work_seeks_between_frames():
    times = [0.5 + i * 0.04 for i in range(100)]
    first = jobs.segment_work(Segment(0, 0, 25), warmup=13, times=times, format_start=0.5)
    assert (first.first, first.start_time, first.decoded) == (0, None, 25)
    early = jobs.segment_work(Segment(1, 10, 20), warmup=13, times=times, format_start=0.5)
    assert (early.first, early.start_time) == (0, None)
    later = jobs.segment_work(Segment(2, 50, 75), warmup=13, times=times, format_start=0.5)
    assert later.first == 37 and later.decoded == 38
    assert later.start_time == pytest.approx(36.5 * 0.04)


@pytest.mark.parametrize(
    "source",
    ["basic.mp4", "vfr.mkv", "odd.mkv", "tenbit.mkv", "tree.avi", "carphone.mp4"],
)
def test_segment_reads_equal_a_full_decode(make_clip, source):
    real = DATA / "video" / source
    info = probe(real if real.is_file() else make_clip(source))
    full = read_all(info)
    times = frame_times(info.path, info.video_index)
    size = max(3, info.frame_count // 6)
    for segment in jobs.plan_segments(info.frame_count, size):
        work = jobs.segment_work(segment, 4, times, info.format_start_time)
        with FrameReader(info, work.start_time, work.decoded) as reader:
            frames = np.concatenate(list(reader.batches(16)))
        assert np.array_equal(frames, full[work.first : segment.end]), (source, segment)


# --------------------------------------------------------------------------- concat


def test_segment_durations_do_not_accumulate_rounding():
    fps = Fraction(30000, 1001)
    bounds = list(range(0, 150_001, 250))
    durations = concat.segment_durations(bounds, fps)
    micros = sum(int(d.replace(".", "")) for d in durations)
    assert micros == round(Fraction(150_000) / fps * 1_000_000)
    assert concat.segment_durations([0, 15, 30], fps) == ["0.500500", "0.500500"]
    with pytest.raises(ValueError):
        concat.segment_durations([0, 10, 10], fps)


def test_concat_list_and_command(make_clip):
    text = concat.concat_list_text([("segment-00000.nut", "0.5"), ("it's.nut", "0.25")])
    assert text.splitlines() == [
        "ffconcat version 1.0",
        "file 'segment-00000.nut'",
        "duration 0.5",
        "file 'it'\\''s.nut'",
        "duration 0.25",
    ]
    with pytest.raises(ValueError):
        concat.concat_list_text([("a\nb", "1")])
    settings = encode_settings(probe(make_clip("anamorphic.mp4")))
    cmd = concat.concat_command("list.ffconcat", "out.mkv", settings)
    assert cmd[:1] == ["ffmpeg"]
    assert cmd[cmd.index("-f") + 1] == "concat"
    assert cmd[cmd.index("-c") + 1] == "copy"
    assert cmd[cmd.index("-colorspace") + 1] == "bt709"
    assert cmd[cmd.index("-color_range") + 1] == "tv"
    assert cmd[-3:] == ["-f", "matroska", os.path.abspath("out.mkv")]


# --------------------------------------------------------------------------- the manifest


def _manifest(tmp_path: Path, make_clip, **settings) -> jobs.Manifest:
    source = make_clip("basic.mp4")
    return jobs.new_manifest(
        source,
        tmp_path / "out.mkv",
        probe(source),
        "lite",
        "ab" * 32,
        {"crf": 17, "segment_frames": 10, **settings},
        jobs.plan_segments(30, 10),
    )


def test_manifest_round_trips_and_is_versioned(tmp_path, make_clip):
    manifest = _manifest(tmp_path, make_clip)
    record = jobs.FileRecord("segment-00001.nut", 10, 1234, "cd" * 32)
    manifest = manifest.with_segment(1, record)
    jobs.write_manifest(tmp_path, manifest)
    data = json.loads((tmp_path / jobs.MANIFEST_NAME).read_text())
    assert data["version"] == jobs.MANIFEST_VERSION
    assert [s["state"] for s in data["segments"]] == ["pending", "done", "pending"]
    assert data["segments"][1]["sha256"] == "cd" * 32
    assert data["probe"]["fps"] == "25/1" and data["settings_hash"] == manifest.settings_hash
    assert jobs.read_manifest(tmp_path) == manifest
    assert (manifest.frames_done, manifest.segments_done, manifest.frame_count) == (10, 1, 30)
    data["version"] = 99
    (tmp_path / jobs.MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(JobStateError, match="--fresh"):
        jobs.read_manifest(tmp_path)


def test_a_killed_manifest_write_leaves_the_old_manifest(tmp_path, make_clip, monkeypatch):
    old = _manifest(tmp_path, make_clip)
    jobs.write_manifest(tmp_path, old)
    new = old.with_segment(0, jobs.FileRecord("segment-00000.nut", 10, 1, "00"))

    def crash(src: object, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(jobs.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        jobs.write_manifest(tmp_path, new)
    monkeypatch.undo()
    assert jobs.read_manifest(tmp_path) == old
    # a kill between the write and the rename leaves a .part, which the next run ignores
    (tmp_path / "manifest.json.999.part").write_text('{"half a manif')
    assert jobs.read_manifest(tmp_path) == old
    assert jobs.open_job(tmp_path, old, fresh=False) == old
    assert not list(tmp_path.glob("*.part"))


def test_differences_name_what_changed(tmp_path, make_clip):
    recorded = _manifest(tmp_path, make_clip)
    assert recorded.differences(recorded) == []
    other = _manifest(tmp_path, make_clip, crf=20)
    assert recorded.differences(other) == ["--crf 17 -> 20"]
    model = dataclasses.replace(recorded, model="video", weights_sha256="ef" * 32)
    assert recorded.differences(model) == ["--model lite -> video"]
    weights = dataclasses.replace(recorded, weights_sha256="ef" * 32)
    assert recorded.differences(weights) == [
        "--model lite has other weights (sha256 abababababab -> efefefefefef)"
    ]
    edited = dataclasses.replace(
        recorded, input=dataclasses.replace(recorded.input, fingerprint="0" * 64)
    )
    assert recorded.differences(edited) == ["the input file's content changed"]


def test_differences_speak_of_the_options_the_user_gave(tmp_path, make_clip):
    """basic.mp4 runs at 25 fps: 125 frames are --segment-seconds 5."""
    base = {"segment_frames": 125, "smooth": True, "smooth_strength": 0.6, "warmup_frames": 13,
            "batch_size": 8, "model_batch_size": 8}  # fmt: skip
    recorded = _manifest(tmp_path, make_clip, **base)
    longer = _manifest(tmp_path, make_clip, **{**base, "segment_frames": 250})
    assert recorded.differences(longer) == ["--segment-seconds 5 -> 10"]
    stronger = _manifest(tmp_path, make_clip, **{**base, "smooth_strength": 0.8,
                         "warmup_frames": 27, "batch_size": 4, "model_batch_size": 4})  # fmt: skip
    assert recorded.differences(stronger) == ["--batch-size 8 -> 4, --smooth-strength 0.6 -> 0.8"]
    off = _manifest(tmp_path, make_clip, **{**base, "smooth": False, "smooth_strength": None,
                    "warmup_frames": 0})  # fmt: skip
    assert recorded.differences(off) == ["--no-smooth (the job smooths)"]
    assert off.differences(recorded) == ["smoothing on (the job was started with --no-smooth)"]
    text = " ".join(recorded.differences(longer) + recorded.differences(stronger))
    assert "segment_frames" not in text and "warmup" not in text


def test_a_touched_but_unchanged_input_resumes_with_a_warning(tmp_path, make_clip, caplog):
    source = tmp_path / "reel.mp4"
    source.write_bytes(make_clip("basic.mp4").read_bytes())
    info = probe(source)

    def request() -> jobs.Manifest:
        return jobs.new_manifest(source, tmp_path / "out.mkv", info, "lite", "ab" * 32,
                                 {"crf": 17}, jobs.plan_segments(30, 10))  # fmt: skip

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    recorded = jobs.open_job(job_dir, request(), fresh=False)
    os.utime(source, ns=(recorded.input.mtime_ns + 10**9, recorded.input.mtime_ns + 10**9))
    touched = request()
    assert recorded.differences(touched) == []
    resumed = jobs.open_job(job_dir, touched, fresh=False)
    assert "its modification time changed, but its size and content fingerprint did not" in (
        caplog.text
    )
    assert resumed.input == touched.input == jobs.read_manifest(job_dir).input
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    source.write_bytes(bytes(data))
    with pytest.raises(JobStateError, match="the input file's content changed"):
        jobs.open_job(job_dir, request(), fresh=False)


def test_a_resume_with_other_threads_or_workers_says_what_that_means(tmp_path, make_clip, caplog):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    started = dataclasses.replace(
        _manifest(tmp_path, make_clip), execution={"device": "cpu", "threads": 2, "workers": 1}
    )
    jobs.open_job(job_dir, started, fresh=False)
    again = dataclasses.replace(started, execution={"device": "cpu", "threads": 1, "workers": 2})
    assert started.differences(again) == []
    jobs.open_job(job_dir, again, fresh=False)
    assert (
        "this job was started with --device cpu --threads 2 --workers 1, this run has "
        "--device cpu --threads 1 --workers 2: the segments colorized now may differ from an "
        "uninterrupted run's in the last bit" in caplog.text
    )
    assert jobs.read_manifest(job_dir).execution == started.execution  # the job's own
    caplog.clear()
    jobs.open_job(job_dir, started, fresh=False)
    assert "may differ" not in caplog.text


def test_fingerprint_samples_a_large_file(tmp_path):
    path = tmp_path / "big.bin"
    size = 64 << 20
    with path.open("wb") as f:
        f.truncate(size)
    first = jobs.fingerprint(path)
    with path.open("r+b") as f:
        f.seek(size * 3 // 9)  # one of the sampled spots
        f.write(b"x")
    assert jobs.fingerprint(path) != first
    small = tmp_path / "small.bin"
    small.write_bytes(b"a" * 1000)
    before = jobs.fingerprint(small)
    small.write_bytes(b"a" * 999 + b"b")
    assert jobs.fingerprint(small) != before


def test_open_job_refuses_another_request_and_fresh_starts_over(tmp_path, make_clip):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    recorded = _manifest(tmp_path, make_clip)
    assert jobs.open_job(job_dir, recorded, fresh=False) == recorded
    changed = _manifest(tmp_path, make_clip, crf=23)
    with pytest.raises(JobStateError, match=r"--crf 17 -> 23.*--fresh"):
        jobs.open_job(job_dir, changed, fresh=False)
    assert jobs.open_job(job_dir, changed, fresh=True) == changed
    assert jobs.read_manifest(job_dir) == changed


def test_damaged_segments_are_forgotten(tmp_path, make_clip, caplog):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    manifest = _manifest(tmp_path, make_clip)
    for index in range(3):
        path = job_dir / f"segment-{index:05d}.nut"
        path.write_bytes(bytes([index]) * 100)
        manifest = manifest.with_segment(index, jobs.file_record(path, 10))
    jobs.write_manifest(job_dir, manifest)
    (job_dir / "segment-00001.nut").write_bytes(bytes([9]) * 100)  # same size, other bytes
    (job_dir / "segment-00002.nut").unlink()
    resumed = jobs.open_job(job_dir, manifest, fresh=False)
    assert [s.index for s in resumed.pending()] == [1, 2]
    assert "sha256" in caplog.text and "missing" in caplog.text
    assert jobs.read_manifest(job_dir) == resumed


def test_lock_is_exclusive_and_dies_with_its_process(tmp_path):
    job_dir = tmp_path / "job"
    with jobs.JobLock(job_dir):
        assert jobs.is_locked(job_dir)
        with pytest.raises(JobStateError, match=f"process {os.getpid()}"):
            jobs.JobLock(job_dir).__enter__()
    assert not jobs.is_locked(job_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from deoldify_video.jobs import JobLock; "
         "lock = JobLock(Path(sys.argv[1])).__enter__(); print('locked', flush=True); "
         "time.sleep(60)", str(job_dir)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        assert jobs.is_locked(job_dir)
        holder.kill()
        holder.wait()
        with jobs.JobLock(job_dir):  # the killed holder's lock is gone
            pass
    finally:
        holder.kill()
        holder.wait()


def test_foreign_folders_are_refused(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(JobStateError, match="not a job folder"):
        jobs.JobLock(folder).__enter__()
    assert (folder / "holiday.jpg").exists() and not (folder / "lock").exists()
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(JobStateError, match="is a file"):
        jobs.JobLock(afile).__enter__()


def test_status_reports_progress(tmp_path, make_clip, capsys):
    from deoldify_video.cli import main

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    manifest = _manifest(tmp_path, make_clip).with_segment(
        0, jobs.FileRecord("segment-00000.nut", 10, 1, "00")
    )
    jobs.write_manifest(job_dir, dataclasses.replace(manifest, work_seconds=5.0))
    status = jobs.job_status(job_dir)
    assert (status.segments_done, status.segments, status.frames_done, status.frames) == (
        1,
        3,
        10,
        30,
    )
    assert status.fps == pytest.approx(2.0) and status.eta_seconds == pytest.approx(10.0)
    assert not status.running
    assert main(["jobs", "status", str(job_dir)]) == 0
    out = capsys.readouterr().out
    assert "segments:   1/3 done" in out and "frames:     10/30 (33.3%)" in out
    assert "2.00 frames/s" in out and "ETA:        10s" in out
    assert main(["jobs", "status", str(tmp_path)]) == 2


def test_weights_digest_ignores_layout_and_sees_values(tiny_colorizer):
    model = tiny_colorizer.model
    digest = weights_digest(model)
    copy = type(model)()
    copy.load_state_dict(model.state_dict())
    assert weights_digest(copy) == digest  # contiguous layout, not channels_last
    with torch.no_grad():
        next(copy.parameters()).add_(1e-3)
    assert weights_digest(copy) != digest


# --------------------------------------------------------------------------- in-process runs


class _Interrupt:
    """A progress callback that raises KeyboardInterrupt once ``after`` frames are done."""

    def __init__(self, after: int) -> None:
        self.after = after

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage == "colorize" and event.done >= self.after:
            raise KeyboardInterrupt


@dataclass(frozen=True)
class _Interrupted:
    """A job interrupted in its third of three segments, beside an uninterrupted run."""

    source: Path
    colorizer: Colorizer
    options: JobOptions
    reference: Path
    output: Path
    job_dir: Path


def _interrupted_job(tmp_path: Path, make_clip, tiny_colorizer) -> _Interrupted:
    source = make_clip("basic.mp4")  # 30 frames at 25 fps, AAC audio
    colorizer = _with_render_factor(tiny_colorizer, 2)
    options = JobOptions(segment_seconds=0.4)  # 10 frames a segment, 3 segments
    reference = tmp_path / "reference.mkv"
    colorize_video(source, reference, colorizer, options=options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference.mkv"]
    output = tmp_path / "out.mkv"
    with pytest.raises(KeyboardInterrupt):  # in the third segment
        colorize_video(source, output, colorizer, progress=_Interrupt(21), options=options)
    job_dir = jobs.default_job_dir(output)
    manifest = jobs.read_manifest(job_dir)
    assert manifest is not None and manifest.segments_done == 2
    assert not output.exists() and not list(job_dir.glob("*.part"))
    return _Interrupted(source, colorizer, options, reference, output, job_dir)


def test_interrupted_job_resumes_to_the_same_video_and_redoes_a_damaged_segment(
    tmp_path, make_clip, tiny_colorizer
):
    job = _interrupted_job(tmp_path, make_clip, tiny_colorizer)
    source, colorizer, options = job.source, job.colorizer, job.options
    reference, output, job_dir = job.reference, job.output, job.job_dir
    segment = job_dir / "segment-00000.nut"
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))

    events: list[ProgressEvent] = []
    colorize_video(source, output, colorizer, progress=events.append, options=options)
    first = next(e for e in events if e.stage == "colorize")
    assert first.done == 10  # resumed with segment 1; segments 0 (damaged) and 2 redone
    assert frame_md5s(output) == frame_md5s(reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv", "reference.mkv"]


def test_segments_finished_after_the_last_manifest_write_are_kept_on_resume(
    tmp_path, make_clip, tiny_colorizer
):
    """A driver killed between a worker's rename and its own manifest write: the segment file
    is in place but unrecorded; the next run checks it and keeps it instead of redoing it."""
    job = _interrupted_job(tmp_path, make_clip, tiny_colorizer)
    manifest = jobs.read_manifest(job.job_dir)
    assert manifest is not None
    jobs.write_manifest(job.job_dir, manifest.with_segment(1, None))  # as if never recorded

    events: list[ProgressEvent] = []
    colorize_video(job.source, job.output, job.colorizer, progress=events.append,
                   options=job.options)  # fmt: skip
    first = next(e for e in events if e.stage == "colorize")
    assert first.done == 20  # segments 0 and 1 kept, only segment 2 made
    assert frame_md5s(job.output) == frame_md5s(job.reference)


def test_a_run_stopped_from_another_thread_raises_cancelled_and_resumes(
    tmp_path, make_clip, tiny_colorizer
):
    source = make_clip("basic.mp4")  # 30 frames, 3 segments of 10
    colorizer = _with_render_factor(tiny_colorizer, 2)
    reference = tmp_path / "reference.mkv"
    colorize_video(source, reference, colorizer, options=JobOptions(segment_seconds=0.4))
    output = tmp_path / "out.mkv"
    stop, halfway = threading.Event(), threading.Event()
    raised: list[BaseException] = []

    def progress(event: ProgressEvent) -> None:
        if event.stage == "colorize" and event.done >= 12:
            halfway.set()

    def work() -> None:
        try:
            colorize_video(source, output, colorizer, progress=progress,
                           options=JobOptions(segment_seconds=0.4, stop=stop))  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - looked at below
            raised.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    halfway.wait()
    stop.set()
    worker.join()
    assert len(raised) == 1 and isinstance(raised[0], Cancelled), raised
    manifest = jobs.read_manifest(jobs.default_job_dir(output))
    assert manifest is not None and 1 <= manifest.segments_done < 3 and not output.exists()
    colorize_video(source, output, colorizer, options=JobOptions(segment_seconds=0.4))
    assert frame_md5s(output) == frame_md5s(reference)


def test_keep_job_keeps_the_joined_video_and_a_rerun_of_a_finished_job_only_muxes(
    tmp_path, make_clip, tiny_colorizer
):
    source = make_clip("silent.mp4")
    colorizer = _with_render_factor(tiny_colorizer, 2)
    job_dir = tmp_path / "my job"
    options = JobOptions(job_dir=job_dir, keep_job=True, segment_seconds=0.4)
    output = tmp_path / "out.mp4"
    colorize_video(source, output, colorizer, options=options)
    assert sorted(p.name for p in job_dir.iterdir()) == ["lock", "manifest.json", "video.mkv"]
    status = jobs.job_status(job_dir)
    assert status.joined and status.frames_done == status.frames == 15
    events: list[ProgressEvent] = []
    colorize_video(source, output, colorizer, overwrite=True, progress=events.append,
                   options=options)  # fmt: skip
    assert [e.done for e in events if e.stage == "colorize"] == [15]
    other = JobOptions(job_dir=job_dir, segment_seconds=0.4)
    with pytest.raises(JobStateError, match="--render-factor 2 -> 3"):
        colorize_video(source, output, _with_render_factor(tiny_colorizer, 3), overwrite=True,
                       options=other)  # fmt: skip


def _with_render_factor(colorizer, factor):
    return Colorizer(colorizer.model, colorizer.spec, "cpu", factor, colorizer.batch_size)


def frame_md5s(path: Path) -> list[str]:
    """md5 of every decoded video frame."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0",
                          "-f", "framemd5", "-"], capture_output=True, check=True)  # fmt: skip
    return [line.rsplit(",", 1)[-1].strip() for line in out.stdout.decode().splitlines()
            if not line.startswith("#")]  # fmt: skip
