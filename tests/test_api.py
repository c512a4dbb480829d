"""The package's face: docstring examples that run, and the example scripts."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from deoldify_video.media.probe import probe

from .conftest import CLIP_FACTS, DATA

REPO = Path(__file__).resolve().parents[1]


def test_every_module_with_an_example_has_its_examples_run(pytestconfig: pytest.Config):
    """pytest runs docstring examples (--doctest-modules) of the modules in testpaths only."""
    assert "--doctest-modules" in pytestconfig.getini("addopts")
    with_examples = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "deoldify_video").rglob("*.py")
        if ">>> " in path.read_text()
    }
    assert with_examples == set(pytestconfig.getini("testpaths")) - {"tests"}


# --------------------------------------------------------------------------- README


def readme_api_blocks() -> list[str]:
    """The Python blocks of the README's "The Python API" part."""
    text = (REPO / "README.md").read_text()
    part = text[text.index("### The Python API") :]
    part = part[: part.index("\n## ")]
    return re.findall(r"```python\n(.*?)```", part, re.S)


def test_readme_api_blocks_import_only_public_names():
    import deoldify_video

    blocks = readme_api_blocks()
    assert len(blocks) >= 6
    for block in blocks:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "deoldify_video":
                assert {a.name for a in node.names} <= set(deoldify_video.__all__)


def test_readme_api_blocks_run(tmp_path):
    """Every block runs from a clone's root; those that colorize the example film (about
    15 s each on 2 cores) are left to the example scripts' tests, on tiny clips."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "examples").symlink_to(EXAMPLES)
    (tmp_path / "tests" / "data").symlink_to(DATA)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ran = 0
    for block in readme_api_blocks():
        if "colorize_video(" in block and "bigbuckbunny" in block:
            continue
        proc = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, f"{block}\n{proc.stderr}"
        ran += 1
    assert ran >= 4
    assert (tmp_path / "camera_colour.jpg").is_file() and (tmp_path / "camera_mine.png").is_file()


# --------------------------------------------------------------------------- examples/

EXAMPLES = REPO / "examples"


def run_example(script: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def tiny(weights: Path) -> list[str]:
    """The random-weight model at a 32 px render size: fast, not good."""
    return ["--model", str(weights), "--render-factor", "2"]


def test_every_example_compiles_and_answers_help(tmp_path):
    scripts = sorted(EXAMPLES.glob("*.py"))
    assert [p.name for p in scripts] == [
        "colorize_film.py", "colorize_folder.py", "colorize_photos.py", "progress_bar.py",
    ]  # fmt: skip
    for script in scripts:
        compile(script.read_text(), str(script), "exec")
        proc = run_example(script.name, "--help", cwd=tmp_path)
        assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr


def test_film_example(tmp_path, make_clip, tiny_weights):
    output = tmp_path / "film colour.mp4"
    proc = run_example(
        "colorize_film.py", make_clip("silent.mp4"), "-o", output, *tiny(tiny_weights), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{output}: 15 frames, 176x144 at 15 fps\n"
    facts, result = CLIP_FACTS["silent.mp4"], probe(output)
    assert (result.frame_count, result.width, result.height) == (facts.frames, *facts.size)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film colour.mp4"]  # no job left
    missing = run_example("colorize_film.py", tmp_path / "none.mp4", cwd=tmp_path)
    assert missing.returncode == 2 and "none.mp4" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_folder_example_goes_on_past_a_bad_film_and_skips_done_ones(
    tmp_path, make_clip, tiny_weights
):
    reels = tmp_path / "reels"
    reels.mkdir()
    shutil.copy(make_clip("silent.mp4"), reels / "a.mp4")
    shutil.copy(make_clip("odd.mkv"), reels / "b.mkv")
    (reels / "c.avi").write_text("not a film")
    (reels / "notes.txt").write_text("not a film either, and not taken for one")
    out = tmp_path / "colour"
    proc = run_example("colorize_folder.py", reels, "-o", out, *tiny(tiny_weights), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("error:") == 1 and "c.avi" in proc.stderr
    assert proc.stdout.splitlines()[-1] == "3 films: 2 colorized, 0 already done, 1 failed"
    assert sorted(p.name for p in out.iterdir()) == ["a_colorized.mp4", "b_colorized.mkv"]
    assert probe(out / "a_colorized.mp4").frame_count == CLIP_FACTS["silent.mp4"].frames
    assert probe(out / "b_colorized.mkv").frame_count == CLIP_FACTS["odd.mkv"].frames
    again = run_example("colorize_folder.py", reels, "-o", out, *tiny(tiny_weights), cwd=tmp_path)
    assert again.stdout.count("done before, skipped") == 2


def test_photos_example(tmp_path, tiny_weights):
    grey = tmp_path / "grey.png"
    Image.new("L", (40, 30), 128).save(grey)
    out = tmp_path / "colour"
    camera = DATA / "photos-bw" / "camera.jpg"
    proc = run_example(
        "colorize_photos.py", camera, grey, "-o", out, *tiny(tiny_weights), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        str(out / "camera_colorized.jpg"),
        str(out / "grey_colorized.png"),
    ]
    with Image.open(out / "camera_colorized.jpg") as result, Image.open(camera) as source:
        assert result.size == source.size and result.mode == "RGB"
    with Image.open(out / "grey_colorized.png") as result:
        assert result.size == (40, 30)


def test_progress_example_draws_its_bar_stops_and_resumes(tmp_path, make_clip, tiny_weights):
    source, output = make_clip("basic.mp4"), tmp_path / "out.mkv"
    args = (source, "-o", output, *tiny(tiny_weights))
    stopped = run_example("progress_bar.py", *args, "--stop-after", "8", cwd=tmp_path)
    assert stopped.returncode == 130, stopped.stderr
    assert "run the same command again to resume" in stopped.stderr
    assert "colorize  [" in stopped.stderr and not output.exists()
    done = run_example("progress_bar.py", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "100%  30/30" in done.stderr  # basic.mp4's 30 frames
    assert "mux       [" in done.stderr
    assert done.stdout == f"{output}: 30 frames\n"
