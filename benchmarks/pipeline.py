"""Throughput of the video pipeline and of its parts, on this machine.

Prints a table: frames/s of ffmpeg decode + encode alone (grey chroma, no model), of the model
alone on ready batches at the render size, of temporal smoothing alone, and of the whole
pipeline with and without smoothing (each the median of --repeat runs); the CPU time per frame
of the first two, and the most frames/s the machine's cores allow when both share them; the
peak resident memory of this process and of its ffmpeg children; the most temporary disk the
pipeline used beside the output.

    python benchmarks/pipeline.py [--clip FILE | --size 640x480|1080p|2k|4k] [--model NAME|PATH]
                                  [--threads N] [--preset P] [--repeat N]

Without --clip it builds a black-and-white clip from the bundled example,
examples/bigbuckbunny_bw.mp4, scaled to --size: at 640x480 (the default) the example played
twice (264 frames, with audio); at 1080p, 2k (2048x1556, a full-aperture scan) and 4k
(3840x2160) its first 72 frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from measure import cpu_seconds, process_rss, tree_rss  # noqa: E402

from deoldify_video import color  # noqa: E402
from deoldify_video.errors import DeoldifyError  # noqa: E402
from deoldify_video.inference import load_colorizer  # noqa: E402
from deoldify_video.media.probe import probe  # noqa: E402
from deoldify_video.media.reader import FrameReader  # noqa: E402
from deoldify_video.media.writer import FrameWriter, encode_settings  # noqa: E402
from deoldify_video.pipeline import colorize_video, configure_threads  # noqa: E402
from deoldify_video.temporal import SmoothingConfig, smooth_chroma  # noqa: E402
from deoldify_video.types import ProgressEvent, RenderConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "examples" / "bigbuckbunny_bw.mp4"


SIZES = {"640x480": (640, 480), "1080p": (1920, 1080), "2k": (2048, 1556), "4k": (3840, 2160)}


def make_clip(folder: Path, size: str) -> Path:
    """The bundled example, grey, scaled to ``size`` (a key of :data:`SIZES`)."""
    width, height = SIZES[size]
    clip = folder / f"bench_{width}x{height}_bw.mp4"
    length = ["-stream_loop", "1"] if size == "640x480" else []
    frames = [] if size == "640x480" else ["-frames:v", "72"]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *length, "-i", str(SOURCE), *frames,
         "-vf", f"scale={width}:{height},format=gray,format=yuv420p",
         "-c:v", "libx264", "-crf", "18", "-c:a", "copy", str(clip)],
        check=True,
    )  # fmt: skip
    return clip


def bench_io(clip: Path, out: Path, batch: int, preset: str) -> tuple[float, float]:
    """Decode the Y planes and encode them with grey chroma: the pipeline's ffmpeg cost.

    Returns (frames/s, CPU seconds per frame, ffmpeg's and the Python side's together)."""
    info = probe(clip)
    settings = encode_settings(info, preset=preset)
    mid = 1 << (info.plane_depth - 1)
    cpu, start = cpu_seconds(), time.perf_counter()
    with FrameReader(info) as reader, FrameWriter(settings, out) as writer:
        for planes in reader.batches(batch):
            grey = np.full((planes.shape[0], 2, *settings.chroma_size), mid, planes.dtype)
            writer.write(planes, grey)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return info.frame_count / wall, cpu / info.frame_count


def bench_model(
    clip: Path, model: str, batch: int, frames: int = 64
) -> tuple[float, float, float, str]:
    """(model frames/s, its CPU seconds per frame, smoothing frames/s, render size) on the
    clip's first frames."""
    info = probe(clip)
    colorizer = load_colorizer(model, "cpu", batch_size=batch)
    with FrameReader(info, count=frames) as reader:
        planes = np.concatenate(list(reader.batches(batch)))
    luma = colorizer.to_render_size(color.luma_to_unit(planes, info.plane_depth, info.full_range))
    colorizer.predict(luma[:batch])  # warm-up
    cpu, start = cpu_seconds(), time.perf_counter()
    chroma = colorizer.predict(luma)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    smooth_start = time.perf_counter()
    smooth_chroma(luma, chroma, None, SmoothingConfig())
    smooth_fps = frames / (time.perf_counter() - smooth_start)
    return frames / wall, cpu / frames, smooth_fps, f"{luma.shape[-1]}x{luma.shape[-2]}"


def bench_pipeline(
    clip: Path, folder: Path, model: str, config: RenderConfig
) -> tuple[float, int, float, float]:
    """Whole pipeline in this process; returns (frames/s, peak bytes of temporary files beside
    the output, frames/s from its first frame colorized to its last, seconds of fixed costs:
    before the first frame (probing, the colour check, planning) and after the last (joining,
    muxing))."""
    colorizer = load_colorizer(model, "cpu", batch_size=config.batch_size)
    out_dir = Path(tempfile.mkdtemp(dir=folder))
    peak = [0]
    done = threading.Event()
    marks: dict[str, float] = {}

    def progress(event: ProgressEvent) -> None:
        if event.stage == "colorize" and event.done > 0:
            marks.setdefault("first", time.perf_counter())
            if event.done == event.total:
                marks["last"] = time.perf_counter()

    def watch() -> None:
        while not done.is_set():
            size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
            peak[0] = max(peak[0], size)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.perf_counter()
    try:
        result = colorize_video(clip, out_dir / "out.mp4", colorizer, config, progress=progress)
    finally:
        done.set()
        watcher.join()
    end = time.perf_counter()
    first, last = marks["first"], marks["last"]
    # the first report comes after the first batch: its frames count from the start
    batch = min(config.batch_size, result.frames)
    frames_fps = (result.frames - batch) / (last - first)
    fixed = (end - start) - result.frames / frames_fps
    return result.frames / (end - start), peak[0], frames_fps, fixed


def command_memory(clip: Path, folder: Path, model: str, preset: str) -> tuple[int, int]:
    """Peak resident bytes of ``deoldify-video colorize`` run as a user runs it, with its
    default settings (a process of its own and its ffmpeg children, sampled every 50 ms):
    (the whole tree, the ffmpeg processes alone)."""
    out = folder / "memory.mp4"
    command = [sys.executable, "-m", "deoldify_video", "colorize", str(clip), "-o", str(out),
               "--model", model, "--preset", preset, "--overwrite", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(command)
    tree = children = 0
    while proc.poll() is None:
        total = tree_rss(proc.pid)
        tree = max(tree, total)
        children = max(children, total - process_rss(proc.pid))
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"colorize failed with exit code {proc.returncode}")
    return tree, children


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path)
    parser.add_argument("--size", choices=SIZES, default="640x480", help="of the generated clip")
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--preset", default="medium", help="libx264 speed preset")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measure (median)")
    args = parser.parse_args()
    if args.clip is not None:
        try:
            probe(args.clip)
        except DeoldifyError as exc:
            parser.error(str(exc))
    threads = configure_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = args.clip or make_clip(folder, args.size)
        info = probe(clip)
        plain = RenderConfig(batch_size=args.batch_size, preset=args.preset, smooth=False)
        smooth = dataclasses.replace(plain, smooth=True)
        runs: dict[str, list[Any]] = {"io": [], "model": [], "plain": [], "smooth": []}
        for _ in range(args.repeat):  # interleaved, so that a busy moment touches all alike
            runs["io"].append(bench_io(clip, folder / "io.nut", args.batch_size, args.preset))
            runs["model"].append(bench_model(clip, args.model, args.batch_size))
            runs["plain"].append(bench_pipeline(clip, folder, args.model, plain))
            runs["smooth"].append(bench_pipeline(clip, folder, args.model, smooth))
        rss_tree, rss_children = command_memory(clip, folder, args.model, args.preset)
    io_fps, io_cpu = (median(runs["io"], i) for i in range(2))
    model_fps, model_cpu, smooth_fps = (median(runs["model"], i) for i in range(3))
    render = runs["model"][0][3]
    plain_fps = median(runs["plain"], 0)
    disk = max(run[1] for run in runs["plain"] + runs["smooth"])
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    slower = min(io_fps, model_fps)
    cores = os.cpu_count() or 1
    shared = min(slower, cores / (io_cpu + model_cpu))
    print(
        f"clip: {clip.name if args.clip else 'the bundled example, grey'} "
        f"{info.width}x{info.height}, "
        f"{info.frame_count} frames; model {args.model} at {render}; torch threads {threads}; "
        f"batch {args.batch_size}; libx264 preset {args.preset}; {os.cpu_count()} CPUs; "
        f"torch {torch.__version__}"
    )
    print()
    print("| stage | frames/s |")
    print("|---|---|")
    print(f"| ffmpeg decode + encode alone | {io_fps:.1f} |")
    print(f"| model alone, ready batches at {render} | {model_fps:.1f} |")
    print(f"| temporal smoothing alone at {render} | {smooth_fps:.1f} |")
    for label, key in (("--no-smooth", "plain"), ("smoothing on", "smooth")):
        fps, frames_fps, fixed = (median(runs[key], i) for i in (0, 2, 3))
        print(
            f"| whole pipeline, {label} | {fps:.1f} ({fps / slower:.2f} x the slower part); "
            f"{frames_fps:.1f} ({frames_fps / slower:.2f} x) over the frames, beside "
            f"{fixed:.2f} s of fixed costs |"
        )
    print()
    print(
        f"CPU per frame: ffmpeg decode + encode {io_cpu * 1e3:.0f} ms, model {model_cpu * 1e3:.0f} "
        f"ms; sharing {cores} cores they allow at most {shared:.1f} frames/s "
        f"(the pipeline reaches {plain_fps / shared:.2f} x that without smoothing)"
    )
    print(
        f"peak RSS of `deoldify-video colorize` with its default settings: "
        f"{rss_tree / 2**20:.0f} MiB with its ffmpeg processes, which alone take "
        f"{rss_children / 2**20:.0f} MiB (sampled every 50 ms); this benchmark process "
        f"{rss_self:.0f} MiB"
    )
    print(f"temporary disk beside the output: {disk / 1e6:.1f} MB at most")
    return 0


def median(runs: list[Any], field: int) -> float:
    return statistics.median(run[field] for run in runs)


if __name__ == "__main__":
    sys.exit(main())
