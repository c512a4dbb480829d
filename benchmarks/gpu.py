"""Colorizing on a GPU measured in one command; ``--device cpu --quick`` checks it on a CPU.

    python benchmarks/gpu.py                        # CUDA, full sizes (sized for < 8 min, untimed)
    python benchmarks/gpu.py --device cpu --quick   # every part, tiny sizes (about 30 s of CPU)
    python benchmarks/gpu.py --device cpu --parts ceiling --seconds 10 --threads 1 --repeat 3

Parts (``--parts``, comma-separated; each is timed and recorded on its own, and a part that
fails writes its error into the JSON while the others go on):

* ``models``: each network alone on ready frames at its render size. DeOldify's way (float32,
  one frame at a time, copied to the device and back, as DeOldify's video loop runs it)
  against ours (:meth:`Colorizer.predict`: fp16 and bf16 autocast, channels_last, batches of 1
  to 32; ``--compile`` adds ``torch.compile`` rows): frames/s and peak GPU memory.
* ``pipeline``: ``colorize_video`` (defaults: smoothing, H.264 CRF 17) on a clip generated with
  ffmpeg's lavfi sources (1920x1080, 60 s, 24 fps, black-and-white film grain, a tone), per
  model: frames/s, the model's busy time on the GPU (CUDA events) and the GPU's utilisation
  (NVML samples, where NVML is installed); and the clip's decode and encode rates alone.
* ``correctness``: mixed precision against float32 (TF32 off) on the bundled example's frames:
  mean CIEDE2000 and the largest chroma difference in 8-bit steps.
* ``oom``: GPU memory capped (``torch.cuda.set_per_process_memory_fraction``) to about four
  frames' activations; a batch of 64 must be halved until it fits and lose no frame. On a
  CPU the out-of-memory error is simulated.
* ``ceiling``: the pipeline with a model that does nothing, against one ffmpeg decoding and
  encoding the same clip with the same settings: the most the pipeline's own work allows.
* ``versus``: ``benchmarks/versus_frame_files.py`` (DeOldify's JPEG-per-frame loop against
  ``colorize_video``) per model on the bundled example.

DeOldify's ``video`` generator gets random weights (speed does not depend on them) unless its
weights are installed; ``lite`` uses the shipped ones. The JSON goes to ``--json PATH``, else
to ``$OUT/gpu-benchmark.json`` when ``OUT`` is set, else to the current folder, rewritten after
every part; the printed table also goes beside it as ``gpu-benchmark.txt``. Exit code 1 when
a part failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gpu_report import report  # noqa: E402
from measure import PeakSampler, cpu_seconds  # noqa: E402
from torch import nn  # noqa: E402
from versus_frame_files import EXAMPLE, Setup, compare  # noqa: E402

from deoldify_video import color, metrics  # noqa: E402
from deoldify_video.inference import Colorizer, render_size, resolve_device  # noqa: E402
from deoldify_video.media.probe import probe  # noqa: E402
from deoldify_video.media.reader import FrameReader, read_all  # noqa: E402
from deoldify_video.media.writer import FrameWriter, encode_settings, writer_command  # noqa: E402
from deoldify_video.nets.registry import InputPolicy, ModelSpec, get_spec  # noqa: E402
from deoldify_video.nets.weights import load_network, weights_location  # noqa: E402
from deoldify_video.pipeline import colorize_video, configure_threads  # noqa: E402
from deoldify_video.types import RenderConfig  # noqa: E402

PARTS = ("models", "pipeline", "correctness", "oom", "ceiling", "versus")
JSON_NAME = "gpu-benchmark.json"
OOM_FRAMES = 64


@dataclass(frozen=True)
class Profile:
    """Sizes and repetitions of one run.

    Attributes:
        width, height, seconds, fps: the generated clip.
        batches: batch sizes of ours in ``models``.
        precisions: our precisions in ``models``; the mixed ones are checked in
            ``correctness``.
        render_factor: for every model; None for each model's default.
        batch: frames per model call in the pipeline, ``correctness`` and ``versus``.
        min_calls, min_seconds: a measurement repeats its call until both are reached.
        sample_frames: frames of the bundled example compared in ``correctness``.
        repeat: interleaved runs of ``ceiling`` and ``versus`` (medians).
        clip_models: the models that colorize whole clips in ``pipeline`` and ``versus``.
    """

    width: int
    height: int
    seconds: float
    fps: int
    batches: tuple[int, ...]
    precisions: tuple[str, ...]
    render_factor: int | None
    batch: int
    min_calls: int
    min_seconds: float
    sample_frames: int
    repeat: int
    clip_models: tuple[str, ...]


def profile_for(device: torch.device, quick: bool) -> Profile:
    """Full sizes on CUDA; tiny ones with ``quick`` (whole clips with ``lite`` only); on a CPU
    without ``quick``, sizes for the parts a CPU can finish (``ceiling``, ``lite``)."""
    cuda = device.type == "cuda"
    # float16 autocast on a CPU is emulated and many times slower than float32 there.
    mixed = ("fp16", "bf16") if cuda else ("bf16",)
    if quick:
        return Profile(
            width=64, height=48, seconds=2.0, fps=3, batches=(1, 2), precisions=mixed,
            render_factor=2, batch=2, min_calls=1, min_seconds=0.0, sample_frames=2, repeat=1,
            clip_models=("lite",),
        )  # fmt: skip
    if cuda:
        return Profile(
            width=1920, height=1080, seconds=60.0, fps=24, batches=(1, 4, 8, 16, 32),
            precisions=mixed, render_factor=None, batch=16, min_calls=5, min_seconds=1.0,
            sample_frames=32, repeat=1, clip_models=("lite", "video"),
        )  # fmt: skip
    return Profile(
        width=1920, height=1080, seconds=10.0, fps=24, batches=(1, 4, 8),
        precisions=("fp32", *mixed), render_factor=None, batch=8, min_calls=3, min_seconds=2.0,
        sample_frames=8, repeat=3, clip_models=("lite",),
    )  # fmt: skip


# --------------------------------------------------------------------------- shared pieces


@dataclass
class Net:
    """A model built once for every part."""

    spec: ModelSpec
    model: nn.Module
    weights: str

    def render(self, profile: Profile, height: int, width: int) -> tuple[int, int]:
        factor = profile.render_factor or self.spec.policy.default_render_factor
        return render_size(self.spec.policy, factor, height, width)

    def colorizer(self, device: torch.device, profile: Profile, **kwargs: Any) -> Colorizer:
        kwargs.setdefault("batch_size", profile.batch)
        return Colorizer(self.model, self.spec, device, profile.render_factor, **kwargs)


def build(name: str, device: torch.device) -> Net:
    """The registered network: installed weights if there are, else random ones."""
    spec = get_spec(name)
    if weights_location(spec).is_file():
        spec, model = load_network(name, device=device)
        return Net(spec, model, f"trained: {weights_location(spec).name}")
    with torch.device(device):
        model = spec.builder()
    return Net(spec, model.eval(), "random")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    call: Callable[[], object], frames: int, device: torch.device, profile: Profile
) -> dict[str, Any]:
    """frames/s of ``call`` (``frames`` per call) after a warm-up call, repeated until
    ``profile.min_calls`` and ``profile.min_seconds``; peak GPU memory on CUDA."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    call()
    sync(device)
    calls, start = 0, time.perf_counter()
    while calls < profile.min_calls or time.perf_counter() - start < profile.min_seconds:
        call()
        calls += 1
    sync(device)
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        "fps": calls * frames / elapsed,
        "ms_per_frame": 1e3 * elapsed / (calls * frames),
        "peak_mib": peak,
        "calls": calls,
    }


def guarded(make: Callable[[], dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """``make()``'s result with ``fields``, or ``fields`` with the error it raised."""
    try:
        return {**fields, **make()}
    except Exception as exc:  # noqa: BLE001 - recorded, the benchmark goes on
        return {**fields, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


class TimedColorizer(Colorizer):
    """A :class:`Colorizer` that adds up how long its network calls keep the device busy:
    CUDA events around each call on a GPU, wall time elsewhere."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._seconds = 0.0

    def predict_on_device(self, luma: torch.Tensor) -> torch.Tensor:
        if self.device.type != "cuda":
            start = time.perf_counter()
            out = super().predict_on_device(luma)
            self._seconds += time.perf_counter() - start
            return out
        begin = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        begin.record()
        out = super().predict_on_device(luma)
        end.record()
        self._events.append((begin, end))
        return out

    def busy_seconds(self) -> float:
        sync(self.device)
        return self._seconds + sum(b.elapsed_time(e) for b, e in self._events) / 1e3


class NullNet(nn.Module):
    """A model that does nothing: grey chroma at the input's size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], 2, *x.shape[-2:])


NULL_SPEC = ModelSpec("null", NullNet, InputPolicy("luma-chroma", 16, size_multiple=32), "none")


def clip_command(profile: Profile, out: Path) -> list[str]:
    """A black-and-white clip with film grain and a 440 Hz tone, from ffmpeg's lavfi sources."""
    size = f"{profile.width}x{profile.height}"
    return ["ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={profile.fps}",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(profile.seconds), "-vf", "format=gray,noise=c0s=8:c0f=t,format=yuv420p",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-c:a", "aac", "-shortest",
            str(out)]  # fmt: skip


class Clip:
    """The generated clip, made on first use."""

    def __init__(self, folder: Path, profile: Profile) -> None:
        self.path = folder / f"clip_{profile.width}x{profile.height}_{profile.seconds:g}s.mp4"
        self.profile = profile
        self.seconds = 0.0

    def get(self) -> Path:
        if not self.path.exists():
            start = time.perf_counter()
            subprocess.run(clip_command(self.profile, self.path), check=True)
            self.seconds = time.perf_counter() - start
        return self.path


# --------------------------------------------------------------------------- the parts


def part_models(ctx: Context) -> dict[str, Any]:
    return {"per_model": {name: bench_network(net, ctx) for name, net in ctx.nets.items()}}


def bench_network(net: Net, ctx: Context) -> dict[str, Any]:
    device, profile = ctx.device, ctx.profile
    h, w = net.render(profile, profile.height, profile.width)
    result: dict[str, Any] = {"weights": net.weights, "render": [w, h]}
    frame = torch.rand(1, len(net.spec.policy.mean), h, w)

    def deoldify_way() -> None:  # float32, NCHW, one frame copied there and back
        with torch.inference_mode():
            net.model(frame.to(device)).cpu()

    result["deoldify_way"] = guarded(
        lambda: timed(deoldify_way, 1, device, profile), precision="fp32", batch=1
    )
    rows = []
    for precision in profile.precisions:
        colorizer = net.colorizer(device, profile, precision=precision)
        for batch in profile.batches:
            rows.append(
                guarded(
                    lambda c=colorizer, b=batch: bench_predict(c, b, h, w, ctx),
                    precision=precision,
                    batch=batch,
                )
            )
    if ctx.compile:
        rows += bench_compiled(net, h, w, ctx)
    result["ours"] = rows
    measured = [r for r in rows if "fps" in r]
    if measured and "fps" in result["deoldify_way"]:
        # A row whose calls overflowed also ran in fp32: not a figure of its precision.
        best = max(measured, key=lambda r: (r.get("overflowed_batches", 0) == 0, r["fps"]))
        result["best"] = {k: best[k] for k in ("precision", "batch", "fps", "peak_mib")}
        result["speedup"] = best["fps"] / result["deoldify_way"]["fps"]
    return result


def bench_predict(colorizer: Colorizer, batch: int, h: int, w: int, ctx: Context) -> dict[str, Any]:
    """Our colorizer on ready batches; calls that overflowed (and so also ran in fp32) are
    counted, since they measure more than the precision asked for."""
    colorizer.batch_size = batch
    luma = torch.rand(batch, 1, h, w)
    with inference_warnings() as warnings:
        result = timed(lambda: colorizer.predict(luma), batch, ctx.device, ctx.profile)
    return {**result, "overflowed_batches": overflows(warnings)}


def bench_compiled(net: Net, h: int, w: int, ctx: Context) -> list[dict[str, Any]]:
    """``torch.compile`` of the network at the largest batch of at most 16, per precision."""
    batch = max(b for b in ctx.profile.batches if b <= 16)
    rows = []
    for precision in ctx.profile.precisions:

        def run(precision: str = precision) -> dict[str, Any]:
            compiled = Colorizer(
                torch.compile(net.model),
                net.spec,
                ctx.device,
                ctx.profile.render_factor,
                batch,
                precision,
            )
            start = time.perf_counter()
            compiled.predict(torch.rand(batch, 1, h, w))
            first = time.perf_counter() - start
            return {**bench_predict(compiled, batch, h, w, ctx), "compile_s": first}

        rows.append(guarded(run, precision=precision, batch=batch, compiled=True))
    return rows


def part_pipeline(ctx: Context) -> dict[str, Any]:
    clip = ctx.clip.get()
    info = probe(clip)
    result: dict[str, Any] = {
        "clip": {
            "size": [info.width, info.height],
            "frames": info.frame_count,
            "fps": str(info.fps),
            "generate_s": ctx.clip.seconds,
        },
        "decode_alone": guarded(lambda: decode_rate(clip, ctx.profile.batch)),
        "encode_alone": guarded(lambda: encode_rate(clip, ctx.profile.batch, ctx.folder)),
    }
    result["per_model"] = {
        name: guarded(lambda net=net: run_pipeline(clip, net, ctx))
        for name, net in ctx.clip_nets().items()
    }
    return result


def decode_rate(clip: Path, batch: int) -> dict[str, Any]:
    """The pipeline's decoder alone: Y planes through the pipe, frames/s."""
    info = probe(clip)
    frames, start = 0, time.perf_counter()
    with FrameReader(info) as reader:
        for planes in reader.batches(batch):
            frames += planes.shape[0]
    return {"fps": frames / (time.perf_counter() - start), "frames": frames}


def encode_rate(clip: Path, batch: int, folder: Path) -> dict[str, Any]:
    """The pipeline's encoder alone (its default settings), fed the clip's first frames over
    and over with grey chroma, as many frames as the clip has."""
    info = probe(clip)
    settings = encode_settings(info)
    luma = read_all(info, count=min(info.frame_count, 48))
    grey = np.full((batch, 2, *settings.chroma_size), 1 << (info.plane_depth - 1), luma.dtype)
    frames, start = 0, time.perf_counter()
    with FrameWriter(settings, folder / "encode_alone.mkv") as writer:
        while frames < info.frame_count:
            n = min(batch, info.frame_count - frames)
            first = frames % (luma.shape[0] - n + 1)
            writer.write(luma[first : first + n], grey[:n])
            frames += n
    return {"fps": frames / (time.perf_counter() - start), "frames": frames}


def run_pipeline(clip: Path, net: Net, ctx: Context) -> dict[str, Any]:
    """``colorize_video`` with its defaults; frames/s, model busy time, GPU utilisation."""
    colorizer = TimedColorizer(
        net.model, net.spec, ctx.device, ctx.profile.render_factor, ctx.profile.batch
    )
    out = ctx.folder / f"pipeline_{net.spec.name}.mp4"
    out.unlink(missing_ok=True)
    config = RenderConfig(batch_size=ctx.profile.batch)
    start = time.perf_counter()
    with (
        PeakSampler(os.getpid(), gpu=ctx.device.type == "cuda", interval=0.1) as peaks,
        inference_warnings() as warnings,
    ):
        result = colorize_video(clip, out, colorizer, config)
    wall = time.perf_counter() - start
    busy = colorizer.busy_seconds()
    return {
        "fps": result.frames / wall,
        "wall_s": wall,
        "frames": result.frames,
        "precision": colorizer.precision,
        "batch": ctx.profile.batch,
        "model_busy_s": busy,
        "model_busy_fraction": busy / wall,
        "gpu_utilisation_pct": peaks.gpu_utilisation,
        "peak_rss_mib": peaks.rss / 2**20,
        "overflowed_batches": overflows(warnings),
    }


def part_correctness(ctx: Context) -> dict[str, Any]:
    info = probe(EXAMPLE)
    planes = read_all(info, count=ctx.profile.sample_frames)
    depth, full = info.plane_depth, info.full_range
    mixed = [p for p in ctx.profile.precisions if p != "fp32"]
    per_model = {}
    for name, net in ctx.nets.items():
        exact = net.colorizer(ctx.device, ctx.profile, precision="fp32")
        with exact_float32():
            small, reference = exact.colorize_planes(planes, depth, full)
        rows: dict[str, Any] = {"weights": net.weights}
        for precision in mixed:
            colorizer = net.colorizer(ctx.device, ctx.profile, precision=precision)
            rows[precision] = guarded(
                lambda c=colorizer, y=small, ref=reference: precision_error(
                    c, planes, depth, full, y, ref
                )
            )
        per_model[name] = rows
    return {"frames": planes.shape[0], "source": EXAMPLE.name, "per_model": per_model}


class _Capture(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def inference_warnings() -> Iterator[list[str]]:
    """The warnings the colorizer logs in the block: batches halved, overflows redone."""
    messages: list[str] = []
    handler = _Capture(messages)
    logger = logging.getLogger("deoldify_video.inference")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def overflows(messages: list[str]) -> int:
    """How many batches overflowed in mixed precision (and were redone in fp32)."""
    return sum("overflowed" in m for m in messages)


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """float32 without TF32 on CUDA, for a reference."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def precision_error(
    colorizer: Colorizer,
    planes: np.ndarray,
    depth: int,
    full: bool,
    luma: torch.Tensor,
    reference: torch.Tensor,
) -> dict[str, Any]:
    """Mean CIEDE2000 and the largest chroma difference (8-bit steps) against ``reference``;
    batches that overflowed were redone in fp32 (counted), so they compare as fp32."""
    with inference_warnings() as warnings:
        chroma = colorizer.colorize_planes(planes, depth, full)[1]
    finite = torch.isfinite(chroma)
    chroma = torch.where(finite, chroma, torch.zeros_like(chroma))
    ours, theirs = (to_rgb(luma, c) for c in (chroma, reference))
    de = [metrics.mean_ciede2000_rgb(a, b) for a, b in zip(ours, theirs, strict=True)]
    steps = (chroma - reference).abs().max().item() * 255
    return {
        "mean_ciede2000": float(np.mean(de)),
        "max_ciede2000_frame": float(np.max(de)),
        "max_chroma_steps": steps,
        "nonfinite_samples": int((~finite).sum().item()),
        "overflowed_batches": overflows(warnings),
    }


def to_rgb(luma: torch.Tensor, chroma: torch.Tensor) -> list[np.ndarray]:
    """Render-size luma and BT.601 chroma -> one ``(h, w, 3)`` sRGB array per frame."""
    rgb = color.ycbcr_to_rgb(torch.cat([luma, chroma], dim=1).float().cpu())
    return list(rgb.permute(0, 2, 3, 1).numpy())


def part_oom(ctx: Context) -> dict[str, Any]:
    per_model = {
        name: guarded(lambda n=net: out_of_memory(n, ctx)) for name, net in ctx.nets.items()
    }
    return {"per_model": per_model}


class _SmallMemory(nn.Module):
    """Stands in for a GPU that holds ``limit`` frames: larger batches raise CUDA's error."""

    def __init__(self, model: nn.Module, limit: int) -> None:
        super().__init__()
        self.model, self.limit = model, limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated on a CPU)")
        return self.model(x)


def out_of_memory(net: Net, ctx: Context) -> dict[str, Any]:
    """Ask for a batch that does not fit; it must come down and lose no frame."""
    device = ctx.device
    frames = OOM_FRAMES if device.type == "cuda" else 2
    h, w = net.render(ctx.profile, ctx.profile.height, ctx.profile.width)
    luma = torch.rand(frames, 1, h, w, device=device)
    small = 4 if device.type == "cuda" else 1
    colorizer = net.colorizer(device, ctx.profile, batch_size=small)
    reference = colorizer.predict(luma)
    if device.type == "cuda":
        limit = memory_cap(colorizer, luma[:small], reference)
        mode = f"GPU memory capped at {limit / 2**20:.0f} MiB"
    else:
        colorizer = Colorizer(
            _SmallMemory(net.model, small), net.spec, device, ctx.profile.render_factor, small
        )
        mode = f"simulated: batches over {small} frames fail"
    colorizer.batch_size = frames
    try:
        with inference_warnings() as warnings:
            chroma = colorizer.predict(luma)
    finally:
        if device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0, device)
            torch.cuda.empty_cache()
    return {
        "mode": mode,
        "asked_batch": frames,
        "final_batch": colorizer.batch_size,
        "warnings": warnings,
        "frames_in": frames,
        "frames_out": chroma.shape[0],
        "max_difference_vs_small_batches": (chroma - reference).abs().max().item(),
        "all_finite": bool(torch.isfinite(chroma).all()),
    }


def memory_cap(colorizer: Colorizer, few: torch.Tensor, reference: torch.Tensor) -> int:
    """Cap this process's GPU memory at what is in use plus a pass over ``few`` frames plus
    room for the outputs; returns the cap in bytes."""
    device = colorizer.device
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    colorizer.predict_on_device(few)
    one_pass = torch.cuda.max_memory_allocated(device) - base
    outputs = 2 * reference.numel() * reference.element_size()
    torch.cuda.empty_cache()
    limit = base + one_pass + outputs
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(limit / total, device)
    return limit


def part_ceiling(ctx: Context) -> dict[str, Any]:
    clip = ctx.clip.get()
    info = probe(clip)
    null = Colorizer(NullNet(), NULL_SPEC, ctx.device, None, ctx.profile.batch)
    runs: dict[str, list[dict[str, float]]] = {
        "ffmpeg_alone": [],
        "null_smooth": [],
        "null_no_smooth": [],
    }
    for _ in range(ctx.profile.repeat):  # interleaved: a busy moment touches all alike
        runs["ffmpeg_alone"].append(ffmpeg_alone(clip, ctx.folder))
        for key, smooth in (("null_smooth", True), ("null_no_smooth", False)):
            config = RenderConfig(batch_size=ctx.profile.batch, smooth=smooth)
            runs[key].append(null_pipeline(clip, null, config, ctx.folder))
    result: dict[str, Any] = {"frames": info.frame_count, "repeat": ctx.profile.repeat}
    for key, items in runs.items():
        result[key] = {k: statistics.median(r[k] for r in items) for k in items[0]}
    for key in ("null_smooth", "null_no_smooth"):
        result[f"ratio_{key.removeprefix('null_')}"] = (
            result[key]["fps"] / result["ffmpeg_alone"]["fps"]
        )
    return result


def ffmpeg_alone_command(clip: Path, out: Path) -> list[str]:
    """One ffmpeg that decodes ``clip`` and encodes it exactly as the pipeline's encoder does
    (the encoder's command with the clip in place of the raw frames on stdin)."""
    command = writer_command(encode_settings(probe(clip)), "nut")
    raw_input = command.index("-f")
    encode = command[command.index("pipe:0") + 1 : -1]  # the encoder writes to stdout: a file
    return [*command[:raw_input], "-i", str(clip), *encode, str(out)]


def ffmpeg_alone(clip: Path, folder: Path) -> dict[str, float]:
    out = folder / "ffmpeg_alone.nut"
    frames = probe(clip).frame_count
    cpu, start = cpu_seconds(), time.perf_counter()
    subprocess.run(ffmpeg_alone_command(clip, out), check=True)
    wall = time.perf_counter() - start
    return {"fps": frames / wall, "cpu_ms_per_frame": 1e3 * (cpu_seconds() - cpu) / frames}


def null_pipeline(
    clip: Path, null: Colorizer, config: RenderConfig, folder: Path
) -> dict[str, float]:
    out = folder / "null.mp4"
    out.unlink(missing_ok=True)
    cpu, start = cpu_seconds(), time.perf_counter()
    frames = colorize_video(clip, out, null, config).frames
    wall = time.perf_counter() - start
    return {"fps": frames / wall, "cpu_ms_per_frame": 1e3 * (cpu_seconds() - cpu) / frames}


def part_versus(ctx: Context) -> dict[str, Any]:
    clip = ctx.clip.get() if ctx.quick else EXAMPLE
    per_model = {}
    for name, net in ctx.clip_nets().items():
        per_model[name] = guarded(
            lambda n=net: compare(clip, versus_setup(n, ctx), ctx.folder, ctx.profile.repeat)
        )
    return {"per_model": per_model}


def versus_setup(net: Net, ctx: Context) -> Setup:
    """How ``versus``'s processes rebuild this colorizer (random weights through a file)."""
    weights = None
    if net.weights == "random":
        weights = str(ctx.folder / f"{net.spec.name}-random.pth")
        torch.save(net.model.state_dict(), weights)
    return Setup(net.spec.name, str(ctx.device), weights, ctx.profile.render_factor,
                 ctx.profile.batch, torch.get_num_threads())  # fmt: skip


# --------------------------------------------------------------------------- running


@dataclass
class Context:
    device: torch.device
    profile: Profile
    folder: Path
    clip: Clip
    nets: dict[str, Net]
    quick: bool
    compile: bool

    def clip_nets(self) -> dict[str, Net]:
        """The models that colorize whole clips (see :attr:`Profile.clip_models`)."""
        return {n: net for n, net in self.nets.items() if n in self.profile.clip_models}


RUNNERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "models": part_models,
    "pipeline": part_pipeline,
    "correctness": part_correctness,
    "oom": part_oom,
    "ceiling": part_ceiling,
    "versus": part_versus,
}


def run_part(name: str, ctx: Context) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        result = {"ok": True, **RUNNERS[name](ctx)}
    except Exception as exc:  # noqa: BLE001 - recorded, the next part goes on
        result = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
    return {**result, "seconds": time.perf_counter() - start}


def meta(device: torch.device, args: argparse.Namespace, threads: int) -> dict[str, Any]:
    try:
        version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    except OSError as exc:  # no ffmpeg: the parts that need it record their own failure
        version = f"no ffmpeg ({exc})"
    info: dict[str, Any] = {
        "device": str(device),
        "quick": args.quick,
        "parts": args.parts,
        "models": args.models,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch_threads": threads,
        "ffmpeg": (version.splitlines() or [""])[0],
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {
            "gpu": props.name,
            "gpu_memory_gib": props.total_memory / 2**30,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    return info


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities turned into None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def json_path(given: Path | None) -> Path:
    if given is not None:
        return given
    return Path(os.environ.get("OUT") or ".") / JSON_NAME


def save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(finite(data), indent=1))
    path.with_suffix(".txt").write_text(report(data) + "\n")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="where to write the JSON")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks, not figures")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"some of {','.join(PARTS)}")
    parser.add_argument("--models", default="video,lite", help="registry names")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seconds", type=float, default=None, help="length of the clip")
    parser.add_argument("--repeat", type=int, default=None, help="runs of ceiling and versus")
    args = parser.parse_args()
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {', '.join(sorted(unknown))} (use {', '.join(PARTS)})")
    return args


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    threads = configure_threads(args.threads)
    device = resolve_device(args.device)
    profile = profile_for(device, args.quick)
    overrides = {"seconds": args.seconds, "repeat": args.repeat}
    profile = dataclasses.replace(profile, **{k: v for k, v in overrides.items() if v})
    out = json_path(args.json)
    parts = [p for p in PARTS if p in args.parts.split(",")]
    data: dict[str, Any] = {
        "meta": meta(device, args, threads),
        "profile": dataclasses.asdict(profile),
        "parts": {},
    }
    with tempfile.TemporaryDirectory(prefix="gpu-benchmark-") as tmp:
        folder = Path(tmp)
        needs_models = set(parts) - {"ceiling"}
        names = [n.strip() for n in args.models.split(",") if n.strip()] if needs_models else []
        nets = {name: build(name, device) for name in names}
        ctx = Context(
            device, profile, folder, Clip(folder, profile), nets, args.quick, args.compile
        )
        for name in parts:
            print(f"{name} ...", file=sys.stderr, flush=True)
            data["parts"][name] = run_part(name, ctx)
            save(out, data)
    data["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    save(out, data)
    print(report(data))
    print(f"\nwritten: {out}", file=sys.stderr)
    return 0 if all(part["ok"] for part in data["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
