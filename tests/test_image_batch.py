"""``image`` on many photos: folders, a bad photo among good ones, re-runs, JPEG quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deoldify_video.images import (
    DEFAULT_QUALITY,
    colorize_image,
    default_image_output,
    find_images,
    jpeg_quality,
)

from .conftest import DATA
from .test_cli import run_cli

CAMERA = DATA / "photos-bw" / "camera.jpg"


def _grey(path: Path, size: int = 96, **save: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(CAMERA).convert("L").resize((size, size)).save(path, **save)
    return path


def _tables(path: Path) -> dict[int, list[int]]:
    with Image.open(path) as img:
        return {k: list(v) for k, v in img.quantization.items()}


def _pillow_tables(quality: int, tmp_path: Path) -> dict[int, list[int]]:
    reference = tmp_path / f"reference-{quality}.jpg"
    Image.new("RGB", (16, 16), (90, 120, 150)).save(reference, quality=quality)
    return _tables(reference)


def _model(tiny_weights: Path) -> tuple[str, ...]:
    return ("--model", str(tiny_weights), "--render-factor", "4")


def test_a_bad_photo_does_not_stop_the_batch(tmp_path, tiny_weights):
    good = _grey(tmp_path / "a.png")
    text = tmp_path / "b.jpg"
    text.write_text("not a photo\n")
    missing = tmp_path / "c.jpg"
    other = _grey(tmp_path / "d.jpg")
    proc = run_cli("image", str(good), str(text), str(missing), str(other), *_model(tiny_weights))
    assert proc.returncode == 2
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 3, proc.stderr
    assert str(text) in errors[0] and "not an image" in errors[0]
    assert str(missing) in errors[1] and "no such file" in errors[1]
    assert errors[2] == "deoldify-video: 2 of 4 photos colorized, 2 failed"
    assert (tmp_path / "a_colorized.png").is_file() and (tmp_path / "d_colorized.jpg").is_file()
    assert "Traceback" not in proc.stderr


def test_folders_missing_output_folders_and_skip_existing(tmp_path, tiny_weights):
    photos = tmp_path / "scans"
    _grey(photos / "one.png")
    _grey(photos / "roll 2" / "one.png")  # the same name in a sub-folder
    _grey(photos / "roll 2" / "two.jpg")
    (photos / "notes.txt").write_text("index of the scans\n")
    _grey(photos / "old_colorized.png")  # an output of an earlier run beside its photo
    out = tmp_path / "new" / "deep" / "out"  # created with its parents

    top = run_cli("image", str(photos), "-o", str(out), *_model(tiny_weights), "-q")
    assert top.returncode == 0, top.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.*")) == ["one_colorized.png"]

    everything = run_cli("image", str(photos), "-r", "-o", str(out), *_model(tiny_weights))
    assert everything.returncode == 2  # one_colorized.png exists and --overwrite was not given
    assert "already exists" in everything.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.*")) == [
        "one_colorized.png",
        "roll 2/one_colorized.png",
        "roll 2/two_colorized.jpg",
    ]

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.*")}
    # a re-run of a finished batch reads nothing and loads no model (this one does not exist)
    rerun = run_cli("image", str(photos), "-r", "-o", str(out), "--skip-existing",
                    "--model", str(tmp_path / "absent.pt"))  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.strip() == "0 of 3 photos colorized, 3 skipped (their output exists)"
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.*")} == before

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    _grey(empty / "sub" / "x.png")
    proc = run_cli("image", str(empty), *_model(tiny_weights))
    assert proc.returncode == 2
    assert f"{empty}: no photos in this folder (--recursive looks in its sub-folders too)" in (
        proc.stderr
    )


def test_overwrite_and_skip_existing_contradict(tmp_path, tiny_weights):
    photo = _grey(tmp_path / "a.png")
    proc = run_cli("image", str(photo), "--overwrite", "--skip-existing")
    assert proc.returncode == 2
    assert "not allowed with argument" in proc.stderr


def test_two_photos_with_one_output_are_not_overwritten(tmp_path, tiny_weights):
    first = _grey(tmp_path / "a" / "x.png")
    second = _grey(tmp_path / "b" / "x.png")
    out = tmp_path / "out"
    proc = run_cli("image", str(first), str(second), "-o", str(out), "--overwrite",
                   *_model(tiny_weights))  # fmt: skip
    assert proc.returncode == 2
    assert f"{second}: its output {out / 'x_colorized.png'} is also the output of {first}" in (
        proc.stderr
    )


def test_finding_photos_and_naming_their_outputs(tmp_path):
    _grey(tmp_path / "b.png")
    _grey(tmp_path / "a.JPG")
    _grey(tmp_path / "a_colorized.JPG")
    _grey(tmp_path / ".hidden.png")
    _grey(tmp_path / "sub" / "c.png")
    (tmp_path / "readme.md").write_text("x")
    assert find_images(tmp_path) == [tmp_path / "a.JPG", tmp_path / "b.png"]
    assert find_images(tmp_path, recursive=True)[-1] == tmp_path / "sub" / "c.png"
    nested = default_image_output(tmp_path / "sub" / "c.png", "out", base=tmp_path)
    assert nested == Path("out") / "sub" / "c_colorized.png"


# --------------------------------------------------------------------------- JPEG quality


def test_jpeg_quality_is_recovered_from_its_table(tmp_path):
    for quality in (30, 75, 88, 95):
        assert jpeg_quality(_pillow_tables(quality, tmp_path)[0]) == quality


def test_jpeg_outputs_keep_the_source_quality(tmp_path, tiny_colorizer):
    grey = _grey(tmp_path / "grey.jpg", quality=88)
    out = colorize_image(grey, tmp_path / "grey_out.jpg", tiny_colorizer)
    assert _tables(out)[0] == _tables(grey)[0]  # the source's own luminance table
    assert _tables(out) == _pillow_tables(88, tmp_path)

    png = _grey(tmp_path / "scan.png")
    out = colorize_image(png, tmp_path / "scan_out.jpg", tiny_colorizer)
    assert _tables(out) == _pillow_tables(DEFAULT_QUALITY, tmp_path)  # not Pillow's 75

    out = colorize_image(grey, tmp_path / "q60.jpg", tiny_colorizer, quality=60)
    assert _tables(out) == _pillow_tables(60, tmp_path)

    # a colour JPEG with custom tables, recoloured: both tables kept as they are
    rgb = np.asarray(Image.open(CAMERA).convert("RGB").resize((96, 96)))
    custom = {0: [3 + (i % 7) for i in range(64)], 1: [9 + (i % 5) for i in range(64)]}
    colour = tmp_path / "colour.jpg"
    Image.fromarray(rgb).save(colour, qtables=custom)
    out = colorize_image(colour, tmp_path / "colour_out.jpg", tiny_colorizer, recolor=True)
    assert _tables(out) == _tables(colour)
    with pytest.raises(Exception, match="--quality must be from 1 to 100"):
        colorize_image(grey, tmp_path / "bad.jpg", tiny_colorizer, quality=0)


def test_a_model_or_quality_that_cannot_work_stops_the_batch_in_one_line(tmp_path):
    photos = [str(_grey(tmp_path / f"{name}.png")) for name in "abc"]
    absent = tmp_path / "absent.pt"
    proc = run_cli("image", *photos, "--model", str(absent))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"deoldify-video: error: {absent}: no such file"]
    proc = run_cli("image", *photos, "--quality", "0")
    assert proc.stderr.strip().splitlines() == [
        "deoldify-video: error: --quality must be from 1 to 100, got 0"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.png"]
