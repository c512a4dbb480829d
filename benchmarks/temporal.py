"""Cost of temporal smoothing per frame, at render size and at full 640x480.

Prints a table: milliseconds per frame of :func:`deoldify_video.temporal.smooth_chroma`
(batches of 8 frames, best of several runs) on a camera pan over a real picture, and that
cost as a share of a frame's time in a pipeline whose model runs at ``--model-fps``. The
picture is a frame of the bundled example ``examples/bigbuckbunny_bw.mp4`` unless ``--photo``
names another; the chroma is noise (its values do not change the cost).

Usage (from the repository root, with the package installed or ``PYTHONPATH=.``)::

    python benchmarks/temporal.py [--photo FILE] [--threads 2] [--frames 48] [--repeats 5]
                                  [--model-fps 20]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from deoldify_video.color import rgb_to_ycbcr
from deoldify_video.temporal import SmootherState, SmoothingConfig, smooth_chroma

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bigbuckbunny_bw.mp4"
EXAMPLE_FRAME = 40
SIZES = ((256, 192), (640, 480))  # render size of a 640x480 frame, and the frame itself


def example_frame() -> np.ndarray:
    """Frame ``EXAMPLE_FRAME`` of the bundled example, BGR uint8 ``(H, W, 3)``."""
    capture = cv2.VideoCapture(str(EXAMPLE))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, EXAMPLE_FRAME)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise SystemExit(f"{EXAMPLE}: cannot read frame {EXAMPLE_FRAME}")
    return frame


def pan_clip(
    image: np.ndarray, size: tuple[int, int], frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A pan of 2% of the width per frame over ``image`` (BGR uint8): luma ``(N, 1, h, w)``,
    noisy chroma ``(N, 2, h, w)``."""
    width, height = size
    big = cv2.resize(image, (width * 3 // 2, height * 3 // 2), interpolation=cv2.INTER_AREA)
    step = 0.02 * width
    shots = [
        cv2.warpAffine(big, np.array([[1, 0, -step * t], [0, 1, -height / 4]], np.float32), size)
        for t in range(frames)
    ]
    rgb = torch.from_numpy(np.stack(shots)[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255
    ycbcr = rgb_to_ycbcr(rgb)
    noise = torch.from_numpy(np.random.default_rng(1).normal(0, 0.02, (frames, 2, 1, 1)))
    return ycbcr[:, :1].contiguous(), (ycbcr[:, 1:] + noise.float()).clamp(-0.5, 0.5)


def time_per_frame(
    luma: torch.Tensor, chroma: torch.Tensor, config: SmoothingConfig, repeats: int
) -> tuple[float, float]:
    """Best-of-``repeats`` wall and CPU milliseconds per frame, smoothing in batches of 8.

    CPU time (all threads of this process) is the steadier number on a shared machine.
    """
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        state: SmootherState | None = None
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(luma), 8):
            _, state = smooth_chroma(luma[i : i + 8], chroma[i : i + 8], state, config)
        best_wall = min(best_wall, (time.perf_counter() - wall) * 1000.0 / len(luma))
        best_cpu = min(best_cpu, (time.process_time() - cpu) * 1000.0 / len(luma))
    return best_wall, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, help="the picture to pan over")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model-fps", type=float, default=20.0)
    args = parser.parse_args()
    if args.photo and not args.photo.is_file():
        parser.error(f"{args.photo}: no such file")
    image = cv2.imread(str(args.photo), cv2.IMREAD_COLOR) if args.photo else example_frame()
    if image is None:
        parser.error(f"{args.photo}: not a readable picture")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    frame_ms = 1000.0 / args.model_fps
    configs = {"strength 0 (off)": SmoothingConfig(strength=0.0), "default": SmoothingConfig()}
    source = args.photo or f"{EXAMPLE.name}, frame {EXAMPLE_FRAME}"
    print(
        f"picture: {source}; threads={args.threads}, frames={args.frames}, "
        f"model at {args.model_fps:g} frames/s"
    )
    header = f"{'size':>9} | {'config':<16} | {'wall ms/frame':>13} | {'cpu ms/frame':>12}"
    print(f"{header} | {'share of frame time':>19}")
    print("-" * 83)
    for size in SIZES:
        luma, chroma = pan_clip(image, size, args.frames)
        for name, config in configs.items():
            wall, cpu = time_per_frame(luma, chroma, config, args.repeats)
            share = wall / (frame_ms + wall) * 100.0
            label = f"{size[0]}x{size[1]}"
            print(f"{label:>9} | {name:<16} | {wall:13.2f} | {cpu:12.2f} | {share:18.1f}%")


if __name__ == "__main__":
    main()
