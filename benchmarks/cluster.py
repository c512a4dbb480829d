"""What the Ray path costs against one machine's own processes, and what N GPUs would give.

Runs the same clip of about 40 segments twice through the command line: with ``--workers 1``
on this machine, and with ``--cluster ray`` on a one-node Ray cluster this script starts (one
actor with the same threads), and prints per run: wall time, time to the first finished
segment, the driver process's peak memory, and the mean per-segment time its workers recorded.
The difference per segment is the Ray path's overhead. It then measures how fast this machine
stream-copies a large file (the join and the mux are two such copies) and, from these figures,
projects the time of a 2-hour 1080p film on 1 to 64 GPUs.

    python benchmarks/cluster.py [--segments 40] [--size 320x240] [--gpu-fps 60]
                                 [--film-gb 9]

``--gpu-fps`` (frames/s one GPU's worker makes at 1080p, decode and encode included) and
``--film-gb`` (the colour film's size) are assumptions for the projection, printed with it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import process_rss

REPO = Path(__file__).resolve().parents[1]
FPS = 25
SEGMENT_SECONDS = 0.4  # 10 frames a segment
FILM_FRAMES = 2 * 3600 * 24  # a 2-hour film at 24 frames/s
FILM_SEGMENT_FRAMES = 240  # the default 10-second segments at 24 frames/s


def make_clip(path: Path, frames: int, size: str) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={size}:rate={FPS},hue=s=0", "-f", "lavfi", "-i",
         "sine=frequency=440:sample_rate=48000", "-frames:v", str(frames), "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip


def run(clip: Path, output: Path, extra: list[str], segments: int) -> dict[str, float]:
    """One colorize run: wall seconds, seconds to the first and last finished segment, the
    driver's peak RSS (MiB) and the mean seconds per segment the workers recorded."""
    job_dir = Path(f"{output}.job")
    command = [sys.executable, "-m", "deoldify_video", "colorize", str(clip), "-o", str(output),
               "--segment-seconds", str(SEGMENT_SECONDS), "--keep-job", "--quiet",
               *extra]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=REPO)
    first = last = None
    peak = 0
    while proc.poll() is None:
        peak = max(peak, process_rss(proc.pid))
        done = _segments_done(job_dir)
        now = time.monotonic() - started
        if done and first is None:
            first = now
        if done >= segments and last is None:
            last = now
        time.sleep(0.02)
    wall = time.monotonic() - started
    if proc.returncode:
        raise SystemExit(f"the run failed: {' '.join(command)}")
    manifest = json.loads((job_dir / "manifest.json").read_text())
    seconds = [s["seconds"] for s in manifest["segments"]]
    return {
        "wall_s": wall,
        "first_segment_s": first if first is not None else wall,
        "serial_tail_s": wall - (last if last is not None else wall),
        "driver_peak_mib": peak / 2**20,
        "segment_s": sum(seconds) / len(seconds),
        "output_bytes": output.stat().st_size,
    }


def _segments_done(job_dir: Path) -> int:
    try:
        data = json.loads((job_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(s["state"] == "done" for s in data["segments"])


def copy_rate(source: Path, folder: Path) -> float:
    """Bytes per second of an ffmpeg stream copy of a file of a few hundred MB made by
    looping ``source``."""
    big = folder / "big.mkv"
    loops = max(1, int(300e6 / source.stat().st_size))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops), "-i", str(source),
                    "-map", "0", "-c", "copy", str(big)], check=True)  # fmt: skip
    copy = folder / "copy.mkv"
    started = time.monotonic()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(big), "-map", "0", "-c", "copy",
                    str(copy)], check=True)  # fmt: skip
    rate = big.stat().st_size / (time.monotonic() - started)
    big.unlink()
    copy.unlink()
    return rate


def projection(
    gpus: int, segment_s: float, overhead_s: float, first_s: float, serial_s: float
) -> float:
    """Seconds for the film on ``gpus`` workers: start-up, the segments in rounds, the serial
    join and mux."""
    rounds = math.ceil(FILM_FRAMES / FILM_SEGMENT_FRAMES / gpus)
    return first_s + rounds * (segment_s + overhead_s) + serial_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=40)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--gpu-fps", type=float, default=60.0)
    parser.add_argument("--film-gb", type=float, default=9.0)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.cluster_utils import Cluster

    threads = str(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = folder / "clip.mp4"
        make_clip(clip, args.segments * round(SEGMENT_SECONDS * FPS), args.size)
        local = run(clip, folder / "local.mkv", ["--threads", threads], args.segments)
        head = {"num_cpus": int(threads), "object_store_memory": 200 * 2**20,
                "include_dashboard": False}  # fmt: skip
        cluster = Cluster(initialize_head=True, head_node_args=head)
        try:
            on_ray = run(
                clip,
                folder / "ray.mkv",
                ["--threads", threads, "--cluster", "ray", "--ray-address", cluster.address],
                args.segments,
            )
        finally:
            cluster.shutdown()
        rate = copy_rate(folder / "local.mkv", folder)

    print(f"{args.segments} segments of {round(SEGMENT_SECONDS * FPS)} frames at {args.size}")
    print(f"{'path':<10}{'wall s':>9}{'1st seg s':>11}{'seg s':>8}{'tail s':>8}{'driver MiB':>12}")
    for name, figures in (("workers 1", local), ("ray", on_ray)):
        print(f"{name:<10}{figures['wall_s']:>9.1f}{figures['first_segment_s']:>11.1f}"
              f"{figures['segment_s']:>8.2f}{figures['serial_tail_s']:>8.1f}"
              f"{figures['driver_peak_mib']:>12.0f}")  # fmt: skip
    overhead = (on_ray["wall_s"] - local["wall_s"]) / args.segments
    print(f"Ray overhead per segment (wall difference / segments): {overhead:.3f} s")
    print(f"stream copy: {rate / 1e6:.0f} MB/s")

    serial = 2 * args.film_gb * 1e9 / rate
    segment_s = FILM_SEGMENT_FRAMES / args.gpu_fps
    first = on_ray["first_segment_s"]
    print(
        f"\nA 2-hour 1080p film ({FILM_FRAMES} frames, {FILM_FRAMES // FILM_SEGMENT_FRAMES} "
        f"segments; assumed {args.gpu_fps:g} frames/s per GPU, {args.film_gb:g} GB of colour "
        f"video): join + mux about {serial:.0f} s"
    )
    print(f"{'GPUs':>5}{'hours':>8}{'speed-up':>10}{'serial share':>14}")
    one = projection(1, segment_s, max(overhead, 0.0), first, serial)
    for gpus in (1, 2, 4, 8, 16, 64):
        total = projection(gpus, segment_s, max(overhead, 0.0), first, serial)
        print(f"{gpus:>5}{total / 3600:>8.2f}{one / total:>10.1f}{serial / total:>13.0%}")


if __name__ == "__main__":
    main()
