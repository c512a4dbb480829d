"""Numerical parity of the plain-PyTorch DeOldify generators and image policy with DeOldify.

The oracle is a reference kit of outputs and per-layer activations that DeOldify's own code
computed with deterministic "seeded" weights on deterministic pictures. Its inputs are rebuilt by
``deoldify_kit`` (the weights are saved as ``.pth`` files laid out like the released ones and
loaded through the public :func:`deoldify_video.load_model`); ``tests/data/deoldify-reference``
holds the outputs that the default run checks: both generator families at 176x144 (float64
output and a block of every recorded layer) and the artistic generator's whole image pipeline.
The ``slow`` tests check the other sizes and models against the full kit, a folder named by the
``DEOLDIFY_REFERENCE`` environment variable (see ``tests/data/README.md``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from deoldify_video import deoldify_policy
from deoldify_video.nets import registry
from deoldify_video.nets.unet import fold_spectral_norm
from deoldify_video.nets.weights import load_model, load_network

from .deoldify_kit import network_input, seeded_state_dict, sepia_picture

SHIPPED = Path(__file__).resolve().parent / "data" / "deoldify-reference"
KIT = Path(os.environ.get("DEOLDIFY_REFERENCE") or SHIPPED / "absent")
FULL_KIT = (
    pytest.mark.slow,
    pytest.mark.skipif(
        not KIT.is_dir(), reason="the full reference kit: set DEOLDIFY_REFERENCE to its folder"
    ),
)

# short name -> (released file stem, registry name)
MODELS = {"artistic": ("ColorizeArtistic_gen", "artistic"), "video": ("ColorizeVideo_gen", "video")}
SIZES = {"176x144": (176, 144), "224": (224, 224), "256x192": (256, 192)}  # name -> (H, W)
E2E_STAGES = ("model_in", "model_out", "model_image_u8", "raw_color_u8", "final_u8")
F32_TOL = 1e-5
F64_TOL = 1e-7
LAYER_REL_TOL = 1e-6


def _seeded_state(stem: str) -> dict[str, torch.Tensor]:
    manifest = json.loads((SHIPPED / f"{stem}_state_dict.json").read_text())
    return dict(seeded_state_dict(manifest["state_dict"], 1))


def _input(size: str) -> torch.Tensor:
    return network_input(*SIZES[size])


def _reference(short: str, size: str, suffix: str) -> np.ndarray:
    """A network output of the kit: the shipped subset's when it holds it, else the full kit's."""
    shipped = SHIPPED / f"{short}_seed1_{size}.npz"
    if shipped.is_file():
        with np.load(shipped) as arrays:
            if suffix in arrays.files:
                return arrays[suffix]
    return np.load(KIT / f"{short}_seed1_{size}_{suffix}.npy")


def _e2e(short: str) -> dict[str, np.ndarray]:
    """The stages of the image pipeline at render factor 11 (see ``E2E_STAGES``)."""
    stage = f"{short}_seed1_e2e_rf11"
    shipped = SHIPPED / f"{stage}.npz"
    if shipped.is_file():
        with np.load(shipped) as arrays:
            return dict(arrays)
    return {name: np.load(KIT / f"{stage}_{name}.npy") for name in E2E_STAGES}


@pytest.fixture(scope="module")
def seeded_files(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Path]]:
    """short name -> {form: path}: the seed-1 weights saved under the released file name as a
    bare state dict and as fastai's learner save ``{"model", "opt"}``."""
    cache: dict[str, dict[str, Path]] = {}

    def get(short: str) -> dict[str, Path]:
        if short not in cache:
            stem = MODELS[short][0]
            state = _seeded_state(stem)
            folder = tmp_path_factory.mktemp(short)
            files = {form: folder / form / f"{stem}.pth" for form in ("bare", "learner")}
            for path in files.values():
                path.parent.mkdir()
            torch.save(state, files["bare"])
            opt = {"state": {}, "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.99), "params": [0]}]}
            torch.save({"model": state, "opt": opt}, files["learner"])
            cache[short] = files
        return cache[short]

    return get


@pytest.fixture(scope="module")
def network(seeded_files) -> Callable[[str, torch.dtype], torch.nn.Module]:
    """(short name, dtype) -> the seeded network loaded by :func:`load_model`, cached."""
    cache: dict[tuple[str, torch.dtype], torch.nn.Module] = {}

    def get(short: str, dtype: torch.dtype) -> torch.nn.Module:
        if (short, dtype) not in cache:
            model = load_model(MODELS[short][1], weights=seeded_files(short)["learner"])
            cache[short, dtype] = model.to(dtype)
        return cache[short, dtype]

    return get


def _run(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        return model(x.to(dtype)).float().numpy()


@pytest.mark.parametrize("short", sorted(MODELS))
def test_both_file_forms_load_through_the_public_path(seeded_files, short: str) -> None:
    files = seeded_files(short)
    bare = load_model(MODELS[short][1], weights=files["bare"])
    learner = load_model(MODELS[short][1], weights=files["learner"])
    assert not bare.training and not learner.training
    expected = torch.load(files["bare"], mmap=True, weights_only=True)
    for model in (bare, learner):
        state = model.state_dict()
        assert list(state) == list(expected)
        for key, value in expected.items():
            assert torch.equal(state[key], value), key


@pytest.mark.parametrize("short", sorted(MODELS))
def test_path_alone_identifies_the_architecture(seeded_files, short: str) -> None:
    spec, model = load_network(str(seeded_files(short)["learner"]))
    assert spec.name == MODELS[short][1]
    assert spec.policy.kind == "deoldify-rgb"
    assert not model.training


@pytest.mark.parametrize("short", sorted(MODELS))
@pytest.mark.parametrize(
    ("size", "suffix"),
    # A float32 run differs from the float64 one by ~1.5e-6: either is a reference at 1e-5.
    [("176x144", "out_f64"), *(pytest.param(size, "out", marks=FULL_KIT) for size in SIZES)],
)
def test_float32_output_matches(network, short: str, size: str, suffix: str) -> None:
    out = _run(network(short, torch.float32), _input(size))
    ref = _reference(short, size, suffix)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=F32_TOL)


@pytest.mark.parametrize("short", sorted(MODELS))
def test_float64_output_and_every_layer_match(network, short: str) -> None:
    """176x144 (not a multiple of 32: the nearest-resize branch runs) in float64: the output
    to 1e-7 and each recorded activation on its own, since deep mistakes are damped by the
    time they reach the output. A leading block of each activation is recorded."""
    model = network(short, torch.float64)
    meta = json.loads((SHIPPED / f"{short}_seed1_176x144_layers.json").read_text())
    captured: dict[str, torch.Tensor] = {}

    def keep(path: str):
        def hook(module, inputs, output) -> None:
            captured[path] = output.detach().clone()

        return hook

    handles = []
    for entry in meta["tensors"]:
        path = entry["module"]
        # The encoder runs child by child; its output is its last child's output.
        module = model.get_submodule("layers.0.7" if path == "layers.0" else path)
        handles.append(module.register_forward_hook(keep(path)))
    try:
        out = _run(model, _input("176x144"))
    finally:
        for handle in handles:
            handle.remove()
    np.testing.assert_allclose(out, _reference(short, "176x144", "out_f64"), rtol=0, atol=F64_TOL)
    with np.load(SHIPPED / f"{short}_seed1_176x144.npz") as arrays:
        for entry in meta["tensors"]:
            ref = arrays[entry["array"]]
            got = captured[entry["module"]]
            assert list(got.shape) == entry["full_shape"], entry["module"]
            block = got[tuple(slice(0, n) for n in ref.shape)].float().numpy()
            rel = np.abs(block - ref).max() / entry["max_abs"]
            assert rel < LAYER_REL_TOL, f"{entry['module']}: relative error {rel:.3g}"


def test_folded_spectral_norm_gives_the_same_output(seeded_files, network) -> None:
    x = _input("176x144")[..., 40:104, 40:104]
    expected = _run(network("artistic", torch.float32), x)
    folded = fold_spectral_norm(load_model("artistic", weights=seeded_files("artistic")["bare"]))
    assert not any(key.endswith("weight_orig") for key in folded.state_dict())
    np.testing.assert_array_equal(_run(folded, x), expected)


@pytest.mark.parametrize("short", sorted(MODELS))
@pytest.mark.parametrize(
    "size", [pytest.param(size, marks=FULL_KIT) for size in ("224", "256x192")]
)
def test_float64_output_matches_other_sizes(network, short: str, size: str) -> None:
    out = _run(network(short, torch.float64), _input(size))
    np.testing.assert_allclose(out, _reference(short, size, "out_f64"), rtol=0, atol=F64_TOL)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("short", sorted(MODELS))
def test_float32_output_matches_on_gpu(seeded_files, short: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = load_model(MODELS[short][1], weights=seeded_files(short)["learner"], device="cuda")
    with torch.no_grad():
        out = model(_input("176x144").cuda()).cpu().numpy()
    ref = _reference(short, "176x144", "out_f64")
    np.testing.assert_allclose(out, ref, rtol=0, atol=F32_TOL)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        half = model(_input("176x144").cuda()).float().cpu().numpy()
    assert np.isfinite(half).all()
    assert np.abs(half - out).max() < 0.1


@pytest.mark.parametrize("short", ["artistic", pytest.param("video", marks=FULL_KIT)])
def test_end_to_end_image_matches_deoldify(network, short: str) -> None:
    """Frame -> policy -> network -> policy against DeOldify's pipeline at render factor 11."""
    model = network(short, torch.float32)
    ref = _e2e(short)
    orig = sepia_picture()
    x = deoldify_policy.preprocess(orig, 11)
    out = torch.from_numpy(_run(model, x))
    np.testing.assert_allclose(out.numpy(), ref["model_out"], rtol=0, atol=F32_TOL)
    for keep, stage in ((False, "raw_color_u8"), (True, "final_u8")):
        got = deoldify_policy.postprocess(out, orig, keep_luminance=keep)[0]
        assert np.abs(got.astype(int) - ref[stage]).max() <= 1, stage


@pytest.mark.parametrize(
    "short",
    [pytest.param("video", marks=FULL_KIT), pytest.param("stable", marks=FULL_KIT), "artistic"],
)
def test_policy_stages_are_bit_exact(short: str) -> None:
    orig = sepia_picture()
    ref = _e2e(short)
    x = deoldify_policy.preprocess(orig, 11)
    assert np.array_equal(x.numpy(), ref["model_in"])
    out = torch.from_numpy(ref["model_out"])
    square = deoldify_policy.output_to_image(out)[0]
    assert np.array_equal(square, ref["model_image_u8"])
    raw = deoldify_policy.postprocess(out, orig, keep_luminance=False)[0]
    assert np.array_equal(raw, ref["raw_color_u8"])
    final = deoldify_policy.postprocess(out, orig)[0]
    assert np.array_equal(final, ref["final_u8"])


def test_policy_batches_and_shapes() -> None:
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 37, 53, 3), dtype=np.uint8)
    x = deoldify_policy.preprocess(frames, 3)
    assert x.shape == (2, 3, 48, 48) and x.dtype == torch.float32
    grey = x * torch.tensor(deoldify_policy.IMAGENET_STD)[:, None, None]
    grey = grey + torch.tensor(deoldify_policy.IMAGENET_MEAN)[:, None, None]
    torch.testing.assert_close(grey[:, 0], grey[:, 1], rtol=0, atol=1e-6)
    torch.testing.assert_close(grey[:, 0], grey[:, 2], rtol=0, atol=1e-6)
    single = deoldify_policy.preprocess(frames[1], 3)
    assert torch.equal(single[0], x[1])
    final = deoldify_policy.postprocess(torch.zeros(2, 3, 48, 48), frames)
    assert final.shape == frames.shape and final.dtype == np.uint8


def test_policy_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        deoldify_policy.preprocess(np.zeros((8, 8, 3), np.float32), 2)
    with pytest.raises(ValueError, match="render_factor"):
        deoldify_policy.preprocess(np.zeros((8, 8, 3), np.uint8), 0)
    with pytest.raises(ValueError, match=r"\(N, 3, S, S\)"):
        deoldify_policy.output_to_image(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="2 outputs for 1 frames"):
        deoldify_policy.postprocess(torch.zeros(2, 3, 8, 8), np.zeros((8, 8, 3), np.uint8))


def test_registry_entries() -> None:
    for name, rf, stem in (
        ("video", 21, "ColorizeVideo_gen"),
        ("stable", 35, "ColorizeStable_gen"),
        ("artistic", 35, "ColorizeArtistic_gen"),
    ):
        spec = registry.get_spec(name)
        assert spec.weights_file == f"{stem}.pth"
        assert spec.url.startswith("https://") and not spec.shipped
        assert spec.policy.kind == "deoldify-rgb"
        assert spec.policy.default_render_factor == rf
        assert spec.policy.mean == deoldify_policy.IMAGENET_MEAN
        assert spec.policy.std == deoldify_policy.IMAGENET_STD
        assert "MIT" in spec.licence
        assert (registry.shipped_models_dir() / spec.card).is_file()


def test_image_api_gives_deoldifys_colours(network) -> None:
    """The public still-image path (what `deoldify-video image --model artistic` runs)."""
    from deoldify_video.images import colorize_rgb
    from deoldify_video.inference import Colorizer
    from deoldify_video.nets.registry import get_spec

    colorizer = Colorizer(network("artistic", torch.float32), get_spec("artistic"), "cpu", 11)
    got = colorize_rgb(sepia_picture(), colorizer)
    assert np.abs(got.astype(int) - _e2e("artistic")["final_u8"]).max() <= 1
