"""Encoders: NVENC's command line, and refusing an encoder this ffmpeg lacks or cannot open."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from deoldify_video.errors import UsageError
from deoldify_video.media import mux
from deoldify_video.media.probe import probe
from deoldify_video.media.writer import (
    check_encoder,
    encode_settings,
    encoder_trial_command,
    listed_encoders,
    writer_command,
)

from .test_cli import assert_one_line_error, run_cli

LISTING = """Encoders:
 V..... = Video
 A..... = Audio
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)
 A....D aac                  AAC (Advanced Audio Coding)
"""


def nvenc_opens() -> bool:
    """Whether this machine's ffmpeg really encodes with h264_nvenc."""
    trial = subprocess.run(encoder_trial_command("h264_nvenc"), capture_output=True, check=False)
    return trial.returncode == 0


def test_listed_encoders_reads_the_table_not_the_legend():
    assert listed_encoders(LISTING) == {"libx264", "h264_nvenc", "aac"}


@pytest.mark.parametrize("codec", ["h264_nvenc", "hevc_nvenc"])
def test_nvenc_command(make_clip, codec):
    info = probe(make_clip("basic.mp4"))
    settings = dataclasses.replace(encode_settings(info, preset="slow", crf=21), codec=codec)
    cmd = writer_command(settings, "out.mkv")
    assert cmd[cmd.index("-c:v") + 1] == codec
    assert cmd[cmd.index("-preset") + 1] == "p5"
    assert cmd[cmd.index("-cq") + 1] == "21"
    assert cmd[cmd.index("-b:v") + 1] == "0"
    assert cmd[cmd.index("-pix_fmt", cmd.index("pipe:0")) + 1] == "yuv420p"
    assert "-crf" not in cmd and "-flags" not in cmd
    no_b = dataclasses.replace(settings, b_frames=False)
    assert "-bf" in writer_command(no_b, "out.mkv")


def test_nvenc_ten_bit_is_p010_for_hevc_and_refused_for_h264(make_clip):
    info = probe(make_clip("tenbit.mkv"))
    settings = dataclasses.replace(encode_settings(info), codec="hevc_nvenc")
    assert settings.output_pix_fmt == "p010le"
    assert settings.input_pix_fmt == "yuv420p10le"
    with pytest.raises(UsageError, match="tenbit.mkv: h264_nvenc cannot encode its 10-bit"):
        encode_settings(info, "h264_nvenc")


def test_containers_for_nvenc(make_clip):
    info = probe(make_clip("basic.mp4"))
    for name in ("o.mp4", "o.mov", "o.mkv"):
        assert mux.plan_streams(info, Path(name), "hevc_nvenc")
    with pytest.raises(UsageError, match="avi container cannot hold h264_nvenc"):
        mux.plan_streams(info, Path("o.avi"), "h264_nvenc")


def fake_ffmpeg(folder: Path, trial_stderr: str, trial_code: int) -> str:
    """A PATH whose ``ffmpeg`` prints :data:`LISTING` for ``-encoders`` and answers any other
    call with ``trial_stderr`` and ``trial_code``."""
    folder.mkdir()
    (folder / "listing.txt").write_text(LISTING)
    (folder / "stderr.txt").write_text(trial_stderr)
    script = folder / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = -encoders ] && exec cat "$(dirname "$0")/listing.txt"; done\n'
        f'cat "$(dirname "$0")/stderr.txt" >&2; exit {trial_code}\n'
    )
    script.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_an_encoder_missing_from_the_build_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_ffmpeg(tmp_path / "bin", "", 0))
    with pytest.raises(
        UsageError, match=r"--codec hevc_nvenc: this ffmpeg \(.*\) has no hevc_nvenc"
    ):
        check_encoder("hevc_nvenc")
    check_encoder("libx264")  # listed, and not a hardware encoder: not tried


def test_a_listed_nvenc_that_cannot_open_is_refused_with_its_reason(tmp_path, monkeypatch):
    stderr = "[h264_nvenc @ 0x5580] Cannot load libcuda.so.1\nError initializing output stream\n"
    monkeypatch.setenv("PATH", fake_ffmpeg(tmp_path / "bin", stderr, 1))
    with pytest.raises(UsageError) as caught:
        check_encoder("h264_nvenc")
    message = str(caught.value)
    assert "cannot open the h264_nvenc encoder here (Cannot load libcuda.so.1)" in message
    assert "\n" not in message


def test_a_listed_nvenc_that_opens_is_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_ffmpeg(tmp_path / "bin", "", 0))
    check_encoder("h264_nvenc")


@pytest.mark.skipif(nvenc_opens(), reason="this machine's ffmpeg can encode with NVENC")
def test_cli_refuses_nvenc_here_in_one_line(tmp_path, make_clip):
    output = tmp_path / "out.mp4"
    proc = run_cli("colorize", str(make_clip("basic.mp4")), "-o", str(output), "--codec",
                   "h264_nvenc")  # fmt: skip
    assert_one_line_error(proc, "--codec h264_nvenc", "choose another --codec")
    assert not output.exists()
    assert list(tmp_path.iterdir()) == []
