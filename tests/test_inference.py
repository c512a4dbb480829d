"""inference.py: render sizes, device names, out-of-memory handling, both input policies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deoldify_video.color import luma_to_unit
from deoldify_video.errors import InferenceError, UsageError
from deoldify_video.inference import Colorizer, render_size, resolve_device
from deoldify_video.nets.registry import InputPolicy, ModelSpec

LUMA_CHROMA = InputPolicy("luma-chroma", default_render_factor=16, size_multiple=32)
DEOLDIFY = InputPolicy("deoldify-rgb", 21, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


class ChromaFromLuma(nn.Module):
    """A deterministic stand-in network: chroma is a fixed function of the input pixels."""

    def __init__(self, max_batch: int | None = None) -> None:
        super().__init__()
        self.max_batch = max_batch
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        if self.max_batch is not None and x.shape[0] > self.max_batch:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return torch.cat([x * 0.1, -x * 0.2], dim=1)


def spec(policy: InputPolicy) -> ModelSpec:
    return ModelSpec("stand-in", ChromaFromLuma, policy, "none.pt")


@pytest.mark.parametrize(
    ("size", "factor", "expected"),
    [
        ((480, 640), 16, (192, 256)),
        ((720, 1280), 16, (160, 256)),  # 144 rounds to the nearest multiple of 32
        ((241, 321), 16, (192, 256)),
        ((1080, 1440), 8, (96, 128)),
        ((640, 480), 16, (256, 192)),  # portrait
        ((100, 3000), 16, (32, 256)),  # never below one multiple
    ],
)
def test_render_size_keeps_aspect(size, factor, expected):
    assert render_size(LUMA_CHROMA, factor, *size) == expected


def test_render_size_deoldify_is_a_square():
    assert render_size(DEOLDIFY, 21, 480, 640) == (336, 336)


@pytest.mark.parametrize("factor", [0, -1, 101])
def test_bad_render_factor(factor):
    with pytest.raises(UsageError, match="render factor"):
        render_size(LUMA_CHROMA, factor, 480, 640)


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("tpu:0")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            resolve_device("cuda:1")


def test_out_of_memory_halves_the_batch_and_loses_no_frame():
    luma = torch.rand(10, 1, 64, 96)
    reference = Colorizer(ChromaFromLuma(), spec(LUMA_CHROMA), batch_size=8).predict(luma)
    network = ChromaFromLuma(max_batch=2)
    colorizer = Colorizer(network, spec(LUMA_CHROMA), batch_size=8)
    chroma = colorizer.predict(luma)
    assert colorizer.batch_size == 2
    assert torch.equal(chroma, reference)
    assert sum(b for b in network.batches if b <= 2) == 10


def test_out_of_memory_with_one_frame_is_a_clear_error():
    colorizer = Colorizer(ChromaFromLuma(max_batch=0), spec(LUMA_CHROMA), batch_size=4)
    with pytest.raises(InferenceError, match="out of memory .* even with one frame"):
        colorizer.predict(torch.rand(3, 1, 32, 32))


def test_other_errors_are_not_taken_for_out_of_memory():
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        Colorizer(Broken(), spec(LUMA_CHROMA)).predict(torch.rand(1, 1, 32, 32))


def test_luma_chroma_policy_normalises_and_clamps():
    colorizer = Colorizer(ChromaFromLuma(), spec(LUMA_CHROMA), render_factor=2)
    luma = torch.rand(3, 1, 120, 160)
    small, chroma = colorizer.colorize(luma)
    assert small.shape == (3, 1, 32, 32) and chroma.shape == (3, 2, 32, 32)
    x = (small - 0.5) / 0.5
    assert torch.allclose(chroma[:, :1], (x * 0.1).clamp(-0.5, 0.5), atol=1e-6)


def test_deoldify_policy_turns_rgb_output_into_chroma():
    class Identity(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x  # grey in, the same grey out: no chroma

    colorizer = Colorizer(Identity(), spec(DEOLDIFY), render_factor=2)
    _, chroma = colorizer.colorize(torch.rand(2, 1, 48, 64))
    assert chroma.shape == (2, 2, 32, 32)
    assert chroma.abs().max() < 1e-5


@pytest.mark.parametrize(("dtype", "depth", "full"), [(np.uint8, 8, False), (np.uint16, 10, True)])
def test_colorize_planes_on_the_cpu_equals_colorize_of_the_float_luma(dtype, depth, full):
    planes = np.random.default_rng(0).integers(0, 1 << depth, (3, 120, 160)).astype(dtype)
    colorizer = Colorizer(ChromaFromLuma(), spec(LUMA_CHROMA), render_factor=2)
    small, chroma = colorizer.colorize_planes(planes, depth, full)
    reference_small, reference = colorizer.colorize(luma_to_unit(planes, depth, full))
    assert torch.equal(small, reference_small) and torch.equal(chroma, reference)
    assert small.device.type == chroma.device.type == "cpu"


def test_luma_to_unit_takes_integer_tensors_too():
    planes = np.random.default_rng(1).integers(0, 1024, (2, 9, 7)).astype(np.uint16)
    tensor = torch.from_numpy(planes.view(np.int16).copy())
    assert torch.equal(luma_to_unit(tensor, 10, False), luma_to_unit(planes, 10, False))


def test_precision_is_fp32_on_the_cpu_unless_asked():
    luma = torch.rand(2, 1, 32, 32)
    network = nn.Conv2d(1, 2, 3, padding=1)
    exact = Colorizer(network, spec(LUMA_CHROMA))
    assert exact.precision == "fp32"
    half = Colorizer(network, spec(LUMA_CHROMA), precision="bf16")
    fp32, bf16 = exact.predict(luma), half.predict(luma)
    assert not torch.equal(fp32, bf16)  # bfloat16 keeps 8 bits of mantissa
    assert torch.allclose(fp32, bf16, atol=0.02)
    with pytest.raises(UsageError, match="unknown precision 'fp8'"):
        Colorizer(network, spec(LUMA_CHROMA), precision="fp8")


def test_a_mixed_precision_overflow_is_redone_in_fp32(caplog):
    class OverflowsInHalf(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            chroma = torch.cat([x * 0.1, -x * 0.2], dim=1)
            return chroma + float("inf") if torch.is_autocast_enabled("cpu") else chroma

    luma = torch.rand(3, 1, 32, 32)
    exact = Colorizer(OverflowsInHalf(), spec(LUMA_CHROMA)).predict(luma)
    half = Colorizer(OverflowsInHalf(), spec(LUMA_CHROMA), precision="bf16").predict(luma)
    assert torch.equal(half, exact) and torch.isfinite(half).all()
    assert "overflowed in bf16 on a batch of 3: redone in fp32" in caplog.text
