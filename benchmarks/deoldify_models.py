"""Speed of DeOldify's generators: seconds per frame on the CPU, batch throughput on a GPU.

Usage (from the repository root, with the package installed or ``PYTHONPATH=.``)::

    python benchmarks/deoldify_models.py                       # video + artistic, defaults
    python benchmarks/deoldify_models.py --models artistic --cpu-frames 3 --threads 2
    python benchmarks/deoldify_models.py --batch-sizes 1,4,8 --gpu-iters 10
    python benchmarks/deoldify_models.py --image photo.jpg      # a real picture as the input

The networks get random weights (speed does not depend on the values), so nothing has to be
downloaded; the input is random too unless ``--image`` names a picture, which then goes
through DeOldify's pre-processing (grey, square at the render size). Each network runs at its
registry default render factor (video 21 -> 336 px, stable and artistic 35 -> 560 px) unless
``--render-factor`` is given. On a GPU, float32 runs with TF32 off, then fp16 and bf16 under
``torch.autocast``, for each batch size; peak memory is ``torch.cuda.max_memory_allocated``.
Prints one table.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from deoldify_video.deoldify_policy import preprocess, render_size
from deoldify_video.errors import DeoldifyError
from deoldify_video.images import read_image
from deoldify_video.nets.registry import get_spec
from deoldify_video.nets.unet import fold_spectral_norm


@dataclass(frozen=True)
class Row:
    model: str
    device: str
    precision: str
    side: int
    batch: int
    seconds_per_frame: float
    peak_mib: float | None = None
    note: str = ""


def _build(name: str, fold: bool) -> torch.nn.Module:
    model = get_spec(name).builder().eval()
    return fold_spectral_norm(model) if fold else model


def network_input(picture: np.ndarray | None, render_factor: int, side: int) -> torch.Tensor:
    """``(1, 3, side, side)``: ``picture`` (RGB uint8) pre-processed as DeOldify does, or
    random values when it is None."""
    if picture is None:
        return torch.randn(1, 3, side, side)
    return preprocess(picture, render_factor)


def bench_cpu(name: str, x: torch.Tensor, frames: int, fold: bool) -> Row:
    """``x``: one ``(1, 3, S, S)`` network input."""
    model = _build(name, fold)
    with torch.inference_mode():
        model(x)  # warm-up
        start = time.perf_counter()
        for _ in range(frames):
            model(x)
        elapsed = time.perf_counter() - start
    return Row(name, "cpu", "fp32", x.shape[-1], 1, elapsed / frames, note=_note(fold))


def bench_gpu(
    model: torch.nn.Module,
    name: str,
    frame: torch.Tensor,
    batch: int,
    precision: str,
    iters: int,
    fold: bool,
) -> Row:
    """``model`` already on the GPU, ``frame`` one ``(1, 3, S, S)`` input repeated into the
    batch; ``precision`` is fp32 (TF32 off), fp16 or bf16 autocast."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    side = frame.shape[-1]
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    try:
        x = frame.expand(batch, -1, -1, -1).contiguous().cuda()
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            for _ in range(2):
                model(x)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(iters):
                model(x)
            torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
    except torch.cuda.OutOfMemoryError:
        return Row(name, "cuda", precision, side, batch, float("nan"), note="out of memory")
    peak = torch.cuda.max_memory_allocated() / 2**20
    return Row(name, "cuda", precision, side, batch, elapsed / (iters * batch), peak, _note(fold))


def _note(fold: bool) -> str:
    return "spectral norm folded" if fold else ""


def print_table(rows: list[Row], gpu_name: str | None) -> None:
    if gpu_name:
        print(f"GPU: {gpu_name}")
    print(f"CPU threads: {torch.get_num_threads()}  torch {torch.__version__}")
    header = f"{'model':<9} {'device':<6} {'precision':<9} {'px':>4} {'batch':>5} "
    header += f"{'s/frame':>9} {'frames/s':>9} {'peak MiB':>9}  note"
    print(header)
    print("-" * len(header))
    for r in rows:
        fps = 1.0 / r.seconds_per_frame if r.seconds_per_frame > 0 else float("nan")
        peak = f"{r.peak_mib:9.0f}" if r.peak_mib is not None else f"{'-':>9}"
        print(
            f"{r.model:<9} {r.device:<6} {r.precision:<9} {r.side:>4} {r.batch:>5} "
            f"{r.seconds_per_frame:9.3f} {fps:9.2f} {peak}  {r.note}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="video,artistic", help="comma-separated names")
    parser.add_argument("--render-factor", type=int, default=None, help="default: per model")
    parser.add_argument("--cpu-frames", type=int, default=2, help="timed CPU frames per model")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU measurements")
    parser.add_argument("--batch-sizes", default="1,4,8", help="GPU batch sizes")
    parser.add_argument("--gpu-iters", type=int, default=5, help="timed GPU batches")
    parser.add_argument(
        "--fold", action="store_true", help="fold spectral norm into the weights first"
    )
    parser.add_argument("--image", help="a picture to use as the input (default: random)")
    args = parser.parse_args()
    try:
        picture = read_image(args.image)[0] if args.image else None
    except DeoldifyError as exc:
        parser.error(str(exc))
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    batches = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    rows: list[Row] = []
    for name in names:
        policy = get_spec(name).policy
        render_factor = args.render_factor or policy.default_render_factor
        x = network_input(picture, render_factor, render_size(render_factor, policy.render_base))
        if not args.no_cpu:
            rows.append(bench_cpu(name, x, args.cpu_frames, args.fold))
        if torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cudnn.benchmark = True
            model = _build(name, args.fold).cuda()
            for precision in ("fp32", "fp16", "bf16"):
                for batch in batches:
                    rows.append(
                        bench_gpu(model, name, x, batch, precision, args.gpu_iters, args.fold)
                    )
            del model
    gpu_name = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    print_table(rows, gpu_name)


if __name__ == "__main__":
    main()
