"""File names that look like options (``-dash.mp4``) or protocols (``a:b.mkv``).

pathlib turns ``./-dash.mp4`` into ``-dash.mp4``, which ffmpeg, ffprobe and mkvmerge read as an
option; ``a:b.mkv`` is the protocol ``a`` to ffmpeg. Every path goes into a command as an
absolute path (:func:`~deoldify_video.media.ffmpeg.path_arg`): the input, the output, the
job folder's files and the source whose subtitle streams are muxed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from deoldify_video.media import concat, mux
from deoldify_video.media.ffmpeg import path_arg
from deoldify_video.media.probe import frame_times, packets_command, probe, probe_command
from deoldify_video.media.reader import reader_command
from deoldify_video.media.writer import encode_settings

from .test_pipeline import streams

REPO = Path(__file__).resolve().parents[1]


def test_path_arg_is_absolute_and_keeps_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert path_arg(Path("./-dash.mp4")) == str(tmp_path / "-dash.mp4")
    assert path_arg("a:b.mkv") == str(tmp_path / "a:b.mkv")
    assert path_arg("/films/-x.mkv") == "/films/-x.mkv"


def test_every_command_names_its_files_by_absolute_paths(tmp_path, make_clip, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = Path("-in:put.mkv")
    shutil.copy(make_clip("multi.mkv"), source)
    info = probe(Path("./") / source)  # pathlib has already dropped the "./"
    absolute = str(tmp_path / source)
    assert info.path == "-in:put.mkv"  # messages show the name as the user gave it
    job = Path("-job")

    def files(cmd: list[str], *flags: str) -> list[str]:
        return [cmd[i + 1] for i, arg in enumerate(cmd[:-1]) if arg in flags]

    assert probe_command(source)[-1] == absolute
    assert packets_command(source)[-1] == absolute
    assert files(reader_command(info), "-i") == [absolute]
    settings = encode_settings(info)
    cmd = concat.concat_command(job / "segments.ffconcat", job / "video.mkv", settings)
    assert files(cmd, "-i") == [str(tmp_path / job / "segments.ffconcat")]
    assert cmd[-1] == str(tmp_path / job / "video.mkv")
    plans = mux.plan_streams(info, Path("-out.mkv"), "libx264")
    assert [p.stream.kind for p in plans] == ["audio", "audio", "subtitle"]
    cmd = mux.mux_command(job / "video.mkv", info, plans, Path("-out.mkv"), "matroska", "libx264")
    assert files(cmd, "-i") == [str(tmp_path / job / "video.mkv"), absolute]
    assert cmd[-1] == str(tmp_path / "-out.mkv")
    cmd = mux.retime_command(job / "v.mkv", job / "t.txt", Path("-o.mkv"))
    assert cmd[1:] == ["--quiet", "-o", str(tmp_path / "-o.mkv"), "--timestamps",
                       f"0:{tmp_path / job / 't.txt'}", str(tmp_path / job / "v.mkv")]  # fmt: skip


def colorize(cwd: Path, weights: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "deoldify_video", "colorize", *args, "--model", str(weights),
         "--render-factor", "2", "--threads", "1", "--quiet"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_input_output_and_job_folder_named_like_options(tmp_path, make_clip, tiny_weights):
    """Subtitles, two audio streams and chapters, into an MP4 (the subtitles converted)."""
    shutil.copy(make_clip("multi.mkv"), tmp_path / "-dash.mkv")
    proc = colorize(
        tmp_path, tiny_weights, "./-dash.mkv", "-o", "./-out.mp4", "--job-dir", "./-job"
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["-dash.mkv", "-out.mp4"]
    out = streams(tmp_path / "-out.mp4")
    kinds = [
        (s["codec_type"], s["codec_name"]) for s in out["streams"] if s["codec_type"] != "data"
    ]
    assert kinds == [("video", "h264"), ("audio", "aac"), ("audio", "opus"),
                     ("subtitle", "mov_text")]  # fmt: skip
    assert len(out["chapters"]) == 2  # (MP4 keeps them in a text track: the data stream)
    assert probe(tmp_path / "-out.mp4").frame_count == probe(tmp_path / "-dash.mkv").frame_count


def test_variable_rate_source_named_like_an_option_and_a_protocol(
    tmp_path, make_clip, tiny_weights
):
    """A variable frame rate takes the mkvmerge path (the source's own timestamps)."""
    shutil.copy(make_clip("vfr.mkv"), tmp_path / "-v:fr.mkv")
    proc = colorize(tmp_path, tiny_weights, "./-v:fr.mkv", "-o", "./-out:put.mkv")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["-out:put.mkv", "-v:fr.mkv"]
    source, output = tmp_path / "-v:fr.mkv", tmp_path / "-out:put.mkv"
    times_in, times_out = frame_times(source, 0), frame_times(output, 0)
    assert [round(t - times_in[0], 3) for t in times_in] == [
        round(t - times_out[0], 3) for t in times_out
    ]
