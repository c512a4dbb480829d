"""DeOldify's video loop (every frame a JPEG on disk) against ``colorize_video``, same model.

DeOldify's ``VideoColorizer`` extracts every frame to a JPEG with ffmpeg (``-qscale 0``),
colorizes the files one at a time through its image path and saves each result as a JPEG
(Pillow's default quality), encodes the colour JPEGs with libx264 CRF 17, takes the audio out
and muxes it back re-encoded to AAC at 256 kb/s. Here that loop is re-done with this package's
image path (:func:`deoldify_video.images.colorize_rgb`, which gives DeOldify's generators
DeOldify's exact pre- and post-processing) and the same model, weights, device and settings
as the ``colorize_video`` run beside it, so the two differ only in how the frames travel.

Each run is a fresh process (so that neither inherits the other's memory), which loads the
model and then times its loop. Measured: the loop's wall time; the peak disk in the work
folder (frames, segments, outputs) and the peak resident memory of that process with its
children (ffmpeg), sampled every 50 ms over its whole life.

    python benchmarks/versus_frame_files.py [CLIP] [--model lite] [--device cpu] [--repeat N]

CLIP defaults to the bundled examples/bigbuckbunny_bw.mp4. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from measure import PeakSampler
from PIL import Image

from deoldify_video.images import colorize_rgb
from deoldify_video.inference import Colorizer, resolve_device
from deoldify_video.media.probe import probe
from deoldify_video.nets.weights import load_network
from deoldify_video.pipeline import colorize_video, configure_threads

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "bigbuckbunny_bw.mp4"
FRAME_PATTERN = "%05d.jpg"


def extract_command(clip: Path, frames: Path) -> list[str]:
    """Every frame of ``clip`` to a JPEG in ``frames`` (DeOldify: image2, mjpeg, qscale 0)."""
    return ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(clip), "-f", "image2",
            "-vcodec", "mjpeg", "-qscale", "0", str(frames / FRAME_PATTERN)]  # fmt: skip


def build_command(frames: Path, fps: str, out: Path) -> list[str]:
    """The colour JPEGs to H.264 CRF 17 at the source's average frame rate, as DeOldify does."""
    return ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "image2", "-vcodec", "mjpeg",
            "-framerate", fps, "-i", str(frames / FRAME_PATTERN), "-crf", "17",
            "-vcodec", "libx264", str(out)]  # fmt: skip


def audio_command(clip: Path, out: Path) -> list[str]:
    """The source's audio, stream-copied into its own file."""
    return ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(clip), "-vn", "-acodec", "copy",
            str(out)]  # fmt: skip


def mux_command(video: Path, audio: Path, out: Path) -> list[str]:
    """Video copied, audio re-encoded to AAC 256 kb/s, cut to the shorter (DeOldify's mux)."""
    return ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(video), "-i", str(audio),
            "-shortest", "-c:v", "copy", "-c:a", "aac", "-b:a", "256k", str(out)]  # fmt: skip


def frame_files(clip: Path, colorizer: Colorizer, work: Path) -> Path:
    """DeOldify's video loop on ``clip``; returns the output file in ``work``."""
    bw, colour = work / "bwframes", work / "colorframes"
    bw.mkdir()
    colour.mkdir()
    subprocess.run(extract_command(clip, bw), check=True)
    for path in sorted(bw.iterdir()):
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        Image.fromarray(colorize_rgb(rgb, colorizer)).save(colour / path.name)
    info = probe(clip)
    silent = work / "no_audio.mp4"
    subprocess.run(build_command(colour, str(info.fps), silent), check=True)
    out = work / "frame_files.mp4"
    if info.audio_streams:
        audio = work / "audio.mka"
        subprocess.run(audio_command(clip, audio), check=True)
        subprocess.run(mux_command(silent, audio, out), check=True)
    else:
        shutil.copyfile(silent, out)
    return out


def streamed(clip: Path, colorizer: Colorizer, work: Path) -> Path:
    """``colorize_video`` with its defaults (smoothing on, H.264 CRF 17, audio copied)."""
    out = work / "colorize.mp4"
    colorize_video(clip, out, colorizer)
    return out


LOOPS: dict[str, Callable[[Path, Colorizer, Path], Path]] = {
    "frame_files": frame_files,
    "colorize": streamed,
}


@dataclass(frozen=True)
class Setup:
    """The colorizer both loops use: a registry name, optionally other weights for it."""

    model: str
    device: str = "cpu"
    weights: str | None = None
    render_factor: int | None = None
    batch_size: int = 8
    threads: int | None = None


def child_command(loop: str, clip: Path, setup: Setup, work: Path) -> list[str]:
    """This script, run as the process that carries out one loop."""
    return [sys.executable, __file__, "--child", loop, "--work", str(work), str(clip),
            "--setup", json.dumps(asdict(setup))]  # fmt: skip


def run_child(loop: str, clip: Path, setup: Setup, work: Path) -> dict[str, Any]:
    """Load the colorizer, time the loop; for the parent, as one line of JSON."""
    configure_threads(setup.threads)
    device = resolve_device(setup.device)
    spec, network = load_network(setup.model, setup.weights, device)
    colorizer = Colorizer(network, spec, device, setup.render_factor, setup.batch_size)
    start = time.perf_counter()
    out = LOOPS[loop](clip, colorizer, work)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "frames": probe(out).frame_count}


def measure_run(loop: str, clip: Path, setup: Setup, root: Path) -> dict[str, Any]:
    """One loop in its own process: its wall time, and the peaks of disk and memory."""
    work = Path(tempfile.mkdtemp(dir=root))
    try:
        child = subprocess.Popen(
            child_command(loop, clip, setup, work), stdout=subprocess.PIPE, text=True
        )
        with PeakSampler(child.pid, work) as peaks:
            stdout, _ = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"the {loop} loop failed (exit code {child.returncode})")
        result = json.loads(stdout.splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**result, "fps": result["frames"] / result["wall_s"],
            "peak_disk_mb": peaks.disk / 1e6, "peak_rss_mib": peaks.rss / 2**20}  # fmt: skip


def compare(clip: Path, setup: Setup, root: Path, repeat: int = 1) -> dict[str, Any]:
    """Both loops ``repeat`` times, interleaved; the medians, and the speed-up of ours."""
    runs: dict[str, list[dict[str, Any]]] = {loop: [] for loop in LOOPS}
    for _ in range(repeat):
        for loop in LOOPS:
            runs[loop].append(measure_run(loop, clip, setup, root))
    result: dict[str, Any] = {"clip": str(clip), "model": setup.model, "device": setup.device,
                              "repeat": repeat}  # fmt: skip
    for loop, items in runs.items():
        result[loop] = {key: statistics.median(r[key] for r in items) for key in items[0]}
    result["speedup"] = result["frame_files"]["wall_s"] / result["colorize"]["wall_s"]
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| model | device | loop | wall s | frames/s | peak disk MB | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for loop, label in (("frame_files", "frame files (DeOldify)"), ("colorize", "colorize")):
            m = r[loop]
            lines.append(
                f"| {r['model']} | {r['device']} | {label} | {m['wall_s']:.1f} | "
                f"{m['fps']:.1f} | {m['peak_disk_mb']:.1f} | {m['peak_rss_mib']:.0f} |"
            )
        lines.append(f"| {r['model']} | {r['device']} | speed-up | {r['speedup']:.2f} x | | | |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path, default=EXAMPLE)
    parser.add_argument("--model", default="lite")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each loop (median)")
    parser.add_argument("--child", choices=sorted(LOOPS), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.clip, Setup(**json.loads(args.setup)),
                                   args.work)))  # fmt: skip
        return 0
    setup = Setup(args.model, args.device, threads=args.threads)
    info = probe(args.clip)
    with tempfile.TemporaryDirectory() as tmp:
        result = compare(args.clip, setup, Path(tmp), args.repeat)
    threads = args.threads or os.cpu_count()
    print(
        f"clip: {args.clip.name} {info.width}x{info.height}, {info.frame_count} frames; "
        f"{os.cpu_count()} CPUs, torch threads {threads}; median of {args.repeat}"
    )
    print()
    print(table([result]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
