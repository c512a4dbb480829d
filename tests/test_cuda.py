"""On a CUDA GPU: the device-side path, a real out-of-memory recovery, the whole pipeline and
NVENC. Every test here skips without CUDA (``pytest -m gpu`` selects them)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from deoldify_video import color
from deoldify_video.inference import load_colorizer
from deoldify_video.media.probe import probe
from deoldify_video.media.reader import read_all
from deoldify_video.pipeline import colorize_video
from deoldify_video.types import RenderConfig

from .test_encoders import nvenc_opens

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.fixture
def exact_fp32() -> Iterator[None]:
    """float32 on the GPU without TF32, so that it can be compared with the CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize(("clip", "depth"), [("basic.mp4", 8), ("tenbit.mkv", 10)])
def test_planes_go_to_the_gpu_and_match_the_cpu(make_clip, exact_fp32, clip, depth):
    info = probe(make_clip(clip))
    planes = read_all(info, count=6)
    assert planes.dtype == (np.uint8 if depth == 8 else np.uint16)
    cpu = load_colorizer("lite", "cpu").colorize_planes(planes, depth, False)
    gpu = load_colorizer("lite", "cuda", precision="fp32").colorize_planes(planes, depth, False)
    assert all(t.device.type == "cuda" for t in gpu)
    assert torch.allclose(gpu[0].cpu(), cpu[0], atol=1e-6)  # conversion and resizing
    assert torch.allclose(gpu[1].cpu(), cpu[1], atol=1e-3)


def test_mixed_precision_chroma_is_close_to_fp32(make_clip, exact_fp32):
    planes = read_all(probe(make_clip("basic.mp4")), count=8)
    reference = load_colorizer("lite", "cuda", precision="fp32").colorize_planes(planes, 8, False)
    for precision in ("fp16", "bf16"):
        colorizer = load_colorizer("lite", "cuda", precision=precision)
        chroma = colorizer.colorize_planes(planes, 8, False)[1]
        assert torch.isfinite(chroma).all()
        assert (chroma - reference[1]).abs().mean() < 0.01, precision


def test_chroma_planes_computed_on_the_gpu_match_the_cpu():
    chroma = torch.rand(3, 2, 36, 64) - 0.5
    for depth in (8, 10):
        cpu = color.chroma_to_planes(chroma, (135, 240), depth, False)
        gpu = color.chroma_to_planes(chroma.cuda(), (135, 240), depth, False)
        assert gpu.dtype == cpu.dtype and gpu.shape == cpu.shape
        difference = np.abs(gpu.astype(np.int32) - cpu.astype(np.int32))
        assert difference.max() <= 1 and (difference == 0).mean() > 0.999


def test_a_real_out_of_memory_halves_the_batch_and_loses_no_frame():
    """A memory cap that holds about four frames' activations: a batch of 64 has to come down."""
    colorizer = load_colorizer("lite", "cuda", batch_size=4)
    luma = torch.rand(64, 1, 256, 256, device="cuda")
    colorizer.predict(luma[:4])  # cuDNN and cuBLAS set up before the cap
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    colorizer.predict_on_device(luma[:4])
    four_frames = torch.cuda.max_memory_allocated() - base
    reference = colorizer.predict(luma)
    outputs = 2 * reference.numel() * reference.element_size()  # the chunks, then their cat
    colorizer.batch_size = 64
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((base + four_frames + outputs) / total)
    try:
        chroma = colorizer.predict(luma)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert 1 <= colorizer.batch_size <= 8
    assert chroma.shape == reference.shape
    assert torch.isfinite(chroma).all()
    assert (chroma - reference).abs().max() < 0.02  # other batch sizes run other kernels


def test_whole_pipeline_on_the_gpu_keeps_the_luminance(tmp_path, make_clip):
    source = make_clip("basic.mp4")
    output = tmp_path / "out.mkv"
    colorize_video(source, output, load_colorizer("lite", "cuda"))
    assert np.array_equal(read_all(probe(output)), read_all(probe(source)))


@pytest.mark.skipif(not nvenc_opens(), reason="this ffmpeg cannot open NVENC on this machine")
@pytest.mark.parametrize("codec", ["h264_nvenc", "hevc_nvenc"])
def test_nvenc_encodes_every_frame(tmp_path, make_clip, codec):
    source = make_clip("basic.mp4")
    output = tmp_path / "out.mp4"
    config = RenderConfig(codec=codec, crf=18)
    colorize_video(source, output, load_colorizer("lite", "cuda"), config)
    info = probe(output)
    assert info.frame_count == probe(source).frame_count
    assert info.audio_streams
