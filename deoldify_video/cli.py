"""The ``deoldify-video`` command line. The only module that prints or draws progress bars."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from . import __version__
from .errors import DeoldifyError, UsageError
from .media.writer import CODECS, PRESETS
from .types import ProgressEvent, RenderConfig

if TYPE_CHECKING:
    from .inference import Colorizer
    from .jobs import JobOptions
    from .nets.registry import ModelSpec

log = logging.getLogger("deoldify_video")

PROG = "deoldify-video"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Colorize black-and-white film and photos."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("colorize", help="colorize video files")
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video file, folder of video files, image sequence (a folder of numbered frames or "
        "a pattern such as scans/reel1_%%06d.dpx), or an http(s) URL (yt-dlp)",
    )
    p.add_argument(
        "-o",
        "--output",
        help="output file, numbered frames (out/reel1_%%06d.tif), or a folder (an existing one, "
        "or a name ending in /) for the default name; with several inputs, the folder for "
        "every output; missing folders are created (default: INPUT_colorized.EXT beside "
        "each input)",
    )
    p.add_argument(
        "-r", "--recursive", action="store_true", help="take the videos of sub-folders too"
    )
    _add_model_options(p)
    p.add_argument("--batch-size", type=int, default=8, help="frames per model call (default 8)")
    p.add_argument("--codec", default="libx264", choices=CODECS)
    p.add_argument(
        "--crf", type=int, default=None, help="libx264/libx265 quality, 0-51 (default 17)"
    )
    p.add_argument(
        "--preset",
        default=None,
        choices=PRESETS,
        help="libx264/libx265 speed: a faster preset leaves more CPU to the model (default medium)",
    )
    p.add_argument("--no-smooth", action="store_true", help="turn temporal smoothing off")
    p.add_argument(
        "--smooth-strength",
        type=float,
        default=None,
        help="weight of the previous frame's colour, 0 to 0.95 (default 0.6)",
    )
    p.add_argument(
        "--recolor",
        action="store_true",
        help="colorize a colour video too, replacing its colours (refused by default)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--playlist", action="store_true", help="colorize every item of a playlist URL")
    p.add_argument(
        "--fps",
        type=_frame_rate,
        help="frame rate of an image sequence: 24, 25, 24000/1001... (default 24)",
    )
    p.add_argument(
        "--audio", metavar="FILE", help="sound for an image sequence (WAV, BWF), muxed unchanged"
    )
    p.add_argument(
        "--allow-truncated",
        action="store_true",
        help="colorize a truncated or damaged input as far as it goes, with a warning",
    )
    _add_excerpt_options(p)
    _add_job_options(p)
    p.set_defaults(handler=cmd_colorize)

    p = sub.add_parser("image", help="colorize photos")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="photos, or folders of photos")
    p.add_argument(
        "-o",
        "--output-dir",
        help="folder for the results, created if missing (default: beside each photo)",
    )
    p.add_argument(
        "-r", "--recursive", action="store_true", help="take the photos in sub-folders too"
    )
    _add_model_options(p)
    p.add_argument(
        "--quality",
        type=int,
        default=None,
        help="JPEG and WebP quality, 1-100 (default: a JPEG source's own, else 95)",
    )
    p.add_argument(
        "--recolor",
        action="store_true",
        help="colorize colour photos too, replacing their colours (refused by default)",
    )
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing output files")
    existing.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave out photos whose output exists (a re-run of a batch does only the rest)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=cmd_image)
    _add_preview_parser(sub)
    _add_models_parser(sub)
    _add_jobs_parser(sub)
    _add_evaluate_parser(sub)
    _add_train_parser(sub)
    return parser


def _add_preview_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preview", help="a sheet of a few frames colorized with several settings")
    p.add_argument("input", metavar="INPUT", help="a video file or a photo")
    p.add_argument("-o", "--output", help="the sheet, a .png (default: INPUT_preview.png)")
    p.add_argument("--frames", type=int, default=None, help="frames spread over the film (6)")
    p.add_argument("--at", metavar="T,...", help="or the frames at these times (s or clock)")
    p.add_argument(
        "--models", default="default", help="models or weights files, comma-separated (lite)"
    )
    p.add_argument(
        "--render-factors", metavar="N,...", help="render factors (default: each model's own)"
    )
    p.add_argument("--width", type=int, default=320, help="each picture's width (320 px)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--overwrite", action="store_true", help="replace an existing sheet")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_preview)


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a lite colorizer on your own photos (NoGAN)")
    p.add_argument(
        "--data",
        required=True,
        help="colour photos: a folder, a .txt list or a photo set manifest .csv (its train split)",
    )
    p.add_argument("--out", required=True, help="weights file to write (fp16 state dict)")
    p.add_argument("--phase", default="all", choices=["gen", "critic", "gan", "all"])
    p.add_argument("--steps", type=int, default=None, help="step budget of each phase")
    p.add_argument("--minutes", type=float, default=None, help="time budget of each phase")
    p.add_argument("--size", type=int, default=192, help="crop side in pixels (default 192)")
    p.add_argument("--batch-size", type=int, default=16, help="crops per step (default 16)")
    p.add_argument(
        "--val",
        default=None,
        help="validation photos that choose the checkpoint (a manifest: its val-source split)",
    )
    p.add_argument("--root", default=None, help="folder the lists' and manifest's paths start from")
    p.add_argument("--extra", nargs="*", default=[], help="more folders (RGBA cut-outs are pasted)")
    p.add_argument(
        "--stamp-prob",
        type=float,
        default=0.4,
        metavar="SHARE",
        help="share of the crops (0-1) that get one or two of the --extra cut-outs (default 0.4)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoints")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument(
        "--loss",
        default="l1",
        choices=["l1", "bins"],
        help="l1: regress chroma (default); bins: chroma bins with a rebalanced cross-entropy "
        "(more vivid colour)",
    )
    p.add_argument(
        "--init",
        default=None,
        metavar="FILE",
        help="lite weights to fine-tune from (e.g. models/lite.pt); a head of another kind "
        "starts fresh",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_train)


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="measure colorization quality on photos, a video or colour films"
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--images",
        metavar="DIR",
        help="colour photos: a folder, a .txt list or a photo set manifest .csv",
    )
    what.add_argument(
        "--video",
        nargs="+",
        metavar="VIDEO",
        help="TRUTH COLORIZED, or just COLORIZED for the steadiness scores",
    )
    what.add_argument(
        "--films",
        nargs="+",
        metavar="CLIP",
        help="colour clips: each turned grey, colorized with the model as `colorize` does, "
        "and scored against itself",
    )
    _add_model_options(p)
    p.add_argument("--root", default=None, help="folder a list's or manifest's paths start from")
    p.add_argument(
        "--split",
        default="val-source",
        help="with a manifest: the split to score, train, val-source or test-domain "
        "(default val-source)",
    )
    p.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME",
        help="with a manifest: only this source (repeatable)",
    )
    p.add_argument("--max-side", type=int, default=None, help="shrink photos to this long side")
    p.add_argument(
        "--max-frames", type=int, default=240, help="video frames to score (default 240)"
    )
    p.add_argument("--sheet", metavar="FILE.png", help="write a grey | ours | truth contact sheet")
    p.add_argument(
        "--strip",
        metavar="FILE.png",
        help="with --films: write a frame strip, a row per clip of grey | ours | truth frames",
    )
    p.add_argument(
        "--strip-frames",
        type=int,
        default=3,
        metavar="N",
        help="with --strip: frames per clip, spread over its scored part (default 3)",
    )
    p.add_argument(
        "--strip-height",
        type=int,
        default=120,
        metavar="PX",
        help="with --strip: the height of each picture in pixels (default 120)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_evaluate)


def _add_models_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list, download and describe models")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = msub.add_parser("list", help="every known model, and where its weights are")
    p.set_defaults(handler=cmd_models_list)
    p = msub.add_parser("download", help="fetch a model's weights into the cache")
    p.add_argument("name", help="model name (see `models list`)")
    p.add_argument("--url", help="download from this mirror instead of the official address")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_models_download)
    p = msub.add_parser("info", help="a model's details and model card")
    p.add_argument("name", help="model name (see `models list`)")
    p.set_defaults(handler=cmd_models_info)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="model name or weights file (default: lite)")
    p.add_argument(
        "--weights",
        metavar="PATH",
        default=None,
        help="weights file for the --model NAME (for a file whose name does not tell the model)",
    )
    p.add_argument(
        "--render-factor",
        type=int,
        default=None,
        help="model input size in units of 16 px (default: the model's own)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")


def _add_excerpt_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--start",
        metavar="T",
        help="colorize an excerpt from this time: seconds or HH:MM:SS.mmm (default 0)",
    )
    p.add_argument("--duration", metavar="D", help="the excerpt's length (seconds or clock)")
    p.add_argument("--end", metavar="T", help="or the excerpt's end (default: the video's end)")
    p.add_argument(
        "--compare",
        choices=["side", "split"],
        help="also write OUTPUT_compare.EXT: the original and the colour video side by side, "
        "or split in one picture",
    )


def _add_job_options(p: argparse.ArgumentParser) -> None:
    from .jobs import DEFAULT_SEGMENT_SECONDS

    p.add_argument(
        "--job-dir",
        type=Path,
        default=None,
        help="folder for the resumable job (default: OUTPUT.job beside the output)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start over, discarding an interrupted job for the same output",
    )
    p.add_argument(
        "--keep-job", action="store_true", help="keep the job folder after a successful run"
    )
    p.add_argument(
        "--segment-seconds",
        type=float,
        default=DEFAULT_SEGMENT_SECONDS,
        help=f"length of the resumable segments in seconds (default {DEFAULT_SEGMENT_SECONDS:g})",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes working at once: one per GPU, or sharing the CPU threads (default 1)",
    )
    p.add_argument(
        "--cluster",
        choices=["ray"],
        default=None,
        help="make the segments on a Ray cluster (needs the ray extra: "
        'pip install "deoldify-video[ray]")',
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="the cluster's address (default: RAY_ADDRESS; 'local' starts a private Ray here)",
    )


def _add_jobs_parser(sub: argparse._SubParsersAction) -> None:
    jobs = sub.add_parser("jobs", help="inspect resumable jobs")
    jsub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    p = jsub.add_parser("status", help="progress of a job: segments, frames, throughput, ETA")
    p.add_argument("job_dir", metavar="JOB_DIR", type=Path, help="the job folder")
    p.set_defaults(handler=cmd_jobs_status)


def cmd_colorize(args: argparse.Namespace) -> int:
    from .batch import find_videos
    from .media.source import is_url

    if args.cluster is None and args.ray_address is not None:
        raise UsageError("--ray-address is for --cluster ray")
    if args.cluster is not None and args.workers != 1:
        raise UsageError("--workers is for one machine; with --cluster the cluster's GPUs work")
    inputs = args.inputs
    if len(inputs) == 1:
        name = inputs[0]
        if is_url(name):
            return _colorize_url(args)
        folder = Path(name)
        if not (folder.is_dir() and find_videos(folder, args.recursive)):
            return _colorize_file(args, name, args.output)  # a file or an image sequence
    if any(is_url(name) for name in inputs):
        raise UsageError("an online clip is colorized on its own: give its URL as the only input")
    for option, value in (("--fps", args.fps), ("--audio", args.audio)):
        if value is not None:
            raise UsageError(f"{option} is for a single image sequence, not several inputs")
    return _colorize_batch(args)


def _colorize_batch(args: argparse.Namespace) -> int:
    """Colorize several films (folders expanded); a film that fails gets its error line and
    the others go on; a summary line, and exit code 2 when any failed."""
    from .batch import colorize_videos

    options = _job_options(args)
    config = _render_config(args)
    colorizer = _shared_colorizer(
        args.model, args.weights, args.device, args.render_factor, args.batch_size
    )
    try:
        with _executor(args, colorizer) as executor, _ProgressBars(args.quiet) as bars:
            result = colorize_videos(
                args.inputs,
                args.output,
                colorizer,
                config,
                args.overwrite,
                progress=bars,
                options=options,
                recursive=args.recursive,
                executor=executor,
                on_failed=lambda source, error: bars.write(f"{PROG}: error: {error}"),
            )
    except KeyboardInterrupt as exc:
        print(
            f"{PROG}: {_stopped(exc)}; the finished segments are kept in each film's job "
            "folder. Run the same command again to resume.",
            file=sys.stderr,
        )
        return _interrupt_code(exc)
    if not args.quiet:
        for video in result.colorized:
            print(f"{video.output}: {video.frames} frames colorized")
    if result.failed:
        print(f"{PROG}: {result.summary()}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(result.summary())
    return 0


@contextlib.contextmanager
def _executor(args: argparse.Namespace, colorizer: Colorizer) -> Iterator[Any]:
    """Where the segments are made: None (this machine) or a Ray cluster, connected for the
    length of the command."""
    if args.cluster is None:
        yield None
        return
    from .cluster import RayCluster

    with RayCluster.connect(args.ray_address, colorizer, args.threads) as cluster:
        yield cluster


def _colorize_url(args: argparse.Namespace) -> int:
    """Download an online clip (or each item of a playlist) and colorize it."""
    import hashlib
    import shutil

    from .media.mux import MUXERS
    from .media.source import check_url, fetch
    from .pipeline import names_folder

    url = args.inputs[0]
    check_url(url)
    out_dir = Path(args.output) if args.output and names_folder(args.output) else None
    key = hashlib.sha256(url.encode()).hexdigest()[:12]
    download_dir = Path.cwd() / f".deoldify-video-download-{key}"
    try:
        with _ProgressBars(disabled=args.quiet) as bars:
            clips = fetch(url, download_dir, progress=bars, allow_playlist=args.playlist)
    except DeoldifyError:
        if not any(download_dir.glob("*.part")):  # nothing worth resuming
            shutil.rmtree(download_dir, ignore_errors=True)
        raise
    if len(clips) > 1 and args.output and out_dir is None:
        raise UsageError(f"{args.output}: with --playlist, -o must name a folder (end it with /)")
    for clip in clips:
        ext = clip.path.suffix.lower() if clip.path.suffix.lower() in MUXERS else ".mkv"
        if args.output and out_dir is None:
            output = Path(args.output)
        else:
            output = (out_dir or Path.cwd()) / f"{clip.safe_name}{ext}"
        code = _colorize_file(args, str(clip.path), str(output))
        if code != 0:
            return code
    if not args.keep_job:
        shutil.rmtree(download_dir, ignore_errors=True)
    return 0


def _colorize_file(args: argparse.Namespace, input_path: str, output: str | None) -> int:
    from .jobs import default_job_dir
    from .pipeline import plan_video, run_video

    options = _job_options(args)
    job = plan_video(input_path, output, _render_config(args), args.overwrite, args.fps, args.audio)
    colorizer = _shared_colorizer(
        args.model, args.weights, args.device, args.render_factor, args.batch_size
    )
    job_dir = options.job_dir or default_job_dir(job.output)
    try:
        with _executor(args, colorizer) as executor, _ProgressBars(args.quiet) as bars:
            result = run_video(job, colorizer, progress=bars, options=options, executor=executor)
    except KeyboardInterrupt as exc:
        print(
            f"{PROG}: {_stopped(exc)}; the finished segments are kept in {job_dir}. Run the same "
            "command again to resume.",
            file=sys.stderr,
        )
        return _interrupt_code(exc)
    if not args.quiet:
        rate = f" at {_fps_text(result.info.fps)} frames/s" if result.info.is_sequence else ""
        print(f"{result.output}: {result.frames} frames colorized{rate}")
    return 0


def _job_options(args: argparse.Namespace) -> JobOptions:
    """The job options of ``colorize``; also sets the model's CPU threads."""
    from .jobs import JobOptions
    from .pipeline import configure_threads

    configure_threads(args.threads)
    return JobOptions(
        job_dir=args.job_dir,
        fresh=args.fresh,
        keep_job=args.keep_job,
        segment_seconds=args.segment_seconds,
        workers=args.workers,
    )


def _render_config(args: argparse.Namespace) -> RenderConfig:
    from .timecode import span_from_options

    return RenderConfig(
        model=args.model,
        render_factor=args.render_factor,
        batch_size=args.batch_size,
        device=args.device,
        codec=args.codec,
        crf=args.crf,
        preset=args.preset,
        smooth=not args.no_smooth,
        smooth_strength=args.smooth_strength,
        allow_truncated=args.allow_truncated,
        recolor=args.recolor,
        excerpt=span_from_options(args.start, args.duration, args.end),
        compare=args.compare,
    )


@functools.lru_cache(maxsize=1)
def _shared_colorizer(
    model: str, weights: str | None, device: str, render_factor: int | None, batch_size: int
) -> Colorizer:
    """The colorizer, loaded once for every item of a playlist (or batch of photos)."""
    from .inference import load_colorizer

    return load_colorizer(model, device, render_factor, batch_size, weights=weights)


def _frame_rate(text: str) -> Fraction:
    """``--fps``: a positive number or ratio (``24``, ``23.976``, ``24000/1001``)."""
    try:
        rate = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a frame rate: {text!r}") from None
    if rate <= 0:
        raise argparse.ArgumentTypeError(f"the frame rate must be positive, got {text}")
    return rate


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def cmd_preview(args: argparse.Namespace) -> int:
    from .preview import settings_for, write_sheet
    from .timecode import parse_time

    at = [parse_time(t, "--at") for t in args.at.split(",")] if args.at else None
    factors = None
    if args.render_factors:
        try:
            factors = [int(f) for f in args.render_factors.split(",")]
        except ValueError:
            raise UsageError(f"--render-factors {args.render_factors}: not whole numbers") from None
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    colorizers = []
    for name in models:  # every model is loaded (or its absence reported) before any decoding
        colorizer = _shared_colorizer(name, None, args.device, None, 1)
        colorizers.append((Path(name).stem if Path(name).is_file() else colorizer.spec.name,
                           colorizer))  # fmt: skip
    with _ProgressBars(disabled=args.quiet) as bars:
        sheet = write_sheet(
            args.input, args.output, settings_for(colorizers, factors), args.frames, at,
            args.width, args.overwrite, bars,
        )  # fmt: skip
    if not args.quiet:
        print(sheet)
    return 0


def cmd_jobs_status(args: argparse.Namespace) -> int:
    from .jobs import job_status

    status = job_status(args.job_dir)
    state = "running" if status.running else "stopped"
    if status.joined:
        state += ", every segment done and joined"
    print(f"job:        {status.job_dir} ({state})")
    print(f"input:      {status.input}")
    print(f"output:     {status.output}")
    print(f"segments:   {status.segments_done}/{status.segments} done")
    percent = 100.0 * status.frames_done / status.frames if status.frames else 0.0
    print(f"frames:     {status.frames_done}/{status.frames} ({percent:.1f}%)")
    rate, eta = status.fps, status.eta_seconds
    print(
        f"throughput: {f'{rate:.2f} frames/s' if rate is not None else 'unknown yet'}"
        f" over {_duration(status.work_seconds)} of work"
    )
    print(f"ETA:        {_duration(eta) if eta is not None else 'unknown yet'}")
    for share in status.nodes:
        speed = f"{share.fps:.2f} frames/s" if share.fps is not None else "rate unknown"
        print(
            f"node:       {share.node}: {len(share.segments)} segments "
            f"({_ranges(share.segments)}), {share.frames} frames, {speed}"
        )
    return 0


def _ranges(numbers: Sequence[int]) -> str:
    """``0-2, 5, 7-8`` for sorted numbers."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _duration(seconds: float) -> str:
    """``1h 02m 03s`` style."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def cmd_image(args: argparse.Namespace) -> int:
    """Colorize every photo named (folders expanded); a photo that fails gets its error line
    and the others go on; exit code 2 when any failed, with a summary when there were several."""
    from .images import check_quality, colorize_image

    check_quality(args.quality)
    out_dir = Path(args.output_dir) if args.output_dir is not None else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: is a file, not a folder for the results")
    photos, failures = _image_tasks(args.inputs, out_dir, args.recursive)
    for message in failures:
        _print_error(message)
    done = skipped = 0
    first_for: dict[Path, Path] = {}
    for source, output in photos:
        if output in first_for:
            failures.append(
                f"{source}: its output {output} is also the output of {first_for[output]}; "
                "colorize them into different folders"
            )
            _print_error(failures[-1])
            continue
        first_for[output] = source
        if args.skip_existing and output.exists():
            skipped += 1
            continue
        # loaded at the first photo to do (a re-run with nothing to do loads none); a model
        # that cannot be loaded stops the command
        colorizer = _shared_colorizer(args.model, args.weights, args.device, args.render_factor, 1)
        try:
            colorize_image(source, output, colorizer, args.overwrite, args.recolor, args.quality)
        except DeoldifyError as exc:
            failures.append(str(exc))
            _print_error(failures[-1])
            continue
        done += 1
        if not args.quiet:
            print(output)
    total = done + skipped + len(failures)
    summary = f"{done} of {total} photos colorized"
    if skipped:
        summary += f", {skipped} skipped (their output exists)"
    if failures:
        if total > 1:
            print(f"{PROG}: {summary}, {len(failures)} failed", file=sys.stderr)
        return 2
    if total > 1 and not args.quiet:
        print(summary)
    return 0


def _image_tasks(
    inputs: Sequence[str], out_dir: Path | None, recursive: bool
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(photo, output) pairs for the ``image`` command's inputs (folders expanded), and an
    error line for each folder that holds no photo."""
    from .images import default_image_output, find_images

    tasks: list[tuple[Path, Path]] = []
    failures: list[str] = []
    for name in inputs:
        path = Path(name)
        if not path.is_dir():
            tasks.append((path, default_image_output(path, out_dir)))
            continue
        found = find_images(path, recursive)
        if not found:
            hint = "" if recursive else " (--recursive looks in its sub-folders too)"
            failures.append(f"{path}: no photos in this folder{hint}")
        tasks += [(photo, default_image_output(photo, out_dir, base=path)) for photo in found]
    return tasks, failures


def _print_error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    if args.strip is not None and args.films is None:
        raise UsageError("--strip is for --films (photos take --sheet)")
    if args.films is not None:
        return _evaluate_films(args)
    if args.video is not None:
        from .scoring import score_video

        if len(args.video) > 2:
            raise UsageError("--video takes TRUTH COLORIZED, or COLORIZED alone")
        truth, colorized = (None, *args.video) if len(args.video) == 1 else args.video
        with _ProgressBars(disabled=args.quiet) as bars:
            scores, frames = score_video(colorized, truth, args.max_frames, progress=bars)
        result = {"frames": frames, **dataclasses.asdict(scores)}
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for key, value in result.items():
                text = (
                    "-"
                    if value is None
                    else str(value)
                    if isinstance(value, int)
                    else f"{value:.5f}"
                )
                print(f"{key:12} {text}")
        return 0
    return _evaluate_images(args)


# The film check's table: column headings and the scores under them.
_FILM_COLUMNS = ("ours", "grey", "ours", "grey", "truth", "ours", "grey")
_FILM_KEYS = (
    "ciede2000",
    "grey_ciede2000",
    "colorfulness",
    "grey_colorfulness",
    "truth_colorfulness",
    "psnr",
    "grey_psnr",
)


def _evaluate_films(args: argparse.Namespace) -> int:
    """``evaluate --films``: the film check (see :mod:`deoldify_video.film_check`)."""
    import json

    from PIL import Image

    from . import atomic
    from .film_check import film_check, film_strip
    from .inference import load_colorizer

    if args.sheet is not None:
        raise UsageError("--sheet is for --images; the films' frames go to --strip FILE.png")
    strip = Path(args.strip) if args.strip is not None else None
    if strip is not None and strip.suffix.lower() != ".png":
        raise UsageError(f"{strip}: the frame strip is a .png file")
    colorizer = load_colorizer(args.model, args.device, args.render_factor, weights=args.weights)
    with _ProgressBars(disabled=args.quiet) as bars:
        report = film_check(
            args.films,
            colorizer,
            max_frames=args.max_frames,
            strip_frames=args.strip_frames,
            strip_height=args.strip_height,
            progress=bars,
        )
    if strip is not None:
        strip.parent.mkdir(parents=True, exist_ok=True)
        with atomic.writing(strip) as part:
            Image.fromarray(film_strip(report)).save(part, format="PNG", optimize=True)
    summary = report.to_dict()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"{len(report.films)} clip{'s' if len(report.films) > 1 else ''} turned grey and "
        f"colorized, model {colorizer.spec.name} at render factor {colorizer.render_factor}"
    )
    print(f"{'':31}{'CIEDE2000':>14}{'colorfulness':>21}{'PSNR':>14}")
    print(f"{'clip':24}{'frames':>7}" + "".join(f"{h:>7}" for h in _FILM_COLUMNS))
    rows = [(s.name, str(s.frames), vars(s)) for s in report.films]
    rows.append(("mean", "", report.mean()))
    for name, frames, m in rows:
        cells = "".join(f"{m[key]:7.{1 if 'colorful' in key else 2}f}" for key in _FILM_KEYS)
        print(f"{name[:23]:24}{frames:>7}{cells}")
    return 0


def _evaluate_images(args: argparse.Namespace) -> int:
    import json

    from PIL import Image

    from .inference import load_colorizer
    from .train.data import list_images
    from .train.evaluate import contact_sheet, evaluate_images
    from .train.photoset import manifest_photos

    images = Path(args.images)
    root = Path(args.root) if args.root else None
    sources = None
    if images.suffix.lower() == ".csv":
        chosen = manifest_photos(images, root, (args.split,), args.source)
        photos = [path for path, _ in chosen]
        sources = [record.source for _, record in chosen]
    elif args.source:
        raise UsageError("--source needs a photo set manifest (.csv) as --images")
    else:
        photos = list_images(images, root)
    missing = [str(path) for path in photos if not path.is_file()]
    if missing:
        hint = (
            " (build the photo set with tools/build_photo_set.py --out DIR and give --root DIR)"
            if sources is not None
            else ""
        )
        raise UsageError(
            f"{args.images}: {len(missing)} listed photos not found, e.g. {missing[0]}{hint}"
        )
    colorizer = load_colorizer(
        args.model, args.device, args.render_factor, batch_size=1, weights=args.weights
    )
    with _ProgressBars(disabled=args.quiet) as bars:
        report = evaluate_images(
            colorizer.model,
            colorizer.spec,
            photos,
            colorizer.device,
            colorizer.render_factor,
            args.max_side,
            sources,
            bars,
        )
    summary = report.to_dict()
    if args.sheet:
        Image.fromarray(contact_sheet(report.thumbnails)).save(args.sheet)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    mean = summary["mean"]
    assert isinstance(mean, dict)
    print(
        f"{summary['count']} photos, model {colorizer.spec.name} at render factor "
        f"{colorizer.render_factor}"
    )
    print(f"{'':14}{'CIEDE2000':>10}{'PSNR':>8}{'colorfulness':>14}")
    print(f"{'grey':14}{mean['grey_ciede2000']:10.2f}{mean['grey_psnr']:8.2f}{0.0:14.1f}")
    print(
        f"{'colorized':14}{mean['ciede2000']:10.2f}{mean['psnr']:8.2f}{mean['colorfulness']:14.1f}"
    )
    print(f"{'truth':14}{0.0:10.2f}{'-':>8}{mean['truth_colorfulness']:14.1f}")
    by_source = summary.get("by_source")
    if isinstance(by_source, dict):
        print(f"\n{'source':30}{'photos':>7}{'CIEDE2000':>10}{'grey':>7}{'colour':>8}{'truth':>7}")
        for name, part in by_source.items():
            m = part["mean"]
            print(
                f"{name:30}{part['count']:7}{m['ciede2000']:10.2f}{m['grey_ciede2000']:7.2f}"
                f"{m['colorfulness']:8.1f}{m['truth_colorfulness']:7.1f}"
            )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train.nogan import TrainConfig, train

    if args.steps is None and args.minutes is None:
        raise UsageError("give a budget: --steps N or --minutes M (per phase)")
    config = TrainConfig(
        data=Path(args.data),
        out=Path(args.out),
        phase=args.phase,
        steps=args.steps,
        minutes=args.minutes,
        size=args.size,
        batch_size=args.batch_size,
        resume=args.resume,
        device=args.device,
        extra=tuple(Path(e) for e in args.extra),
        stamp_prob=args.stamp_prob,
        val=Path(args.val) if args.val else None,
        data_root=Path(args.root) if args.root else None,
        threads=args.threads,
        loss=args.loss,
        init=Path(args.init) if args.init else None,
    )
    with _ProgressBars(disabled=args.quiet) as bars:
        out = train(config, progress=bars)
    print(f"{out} (checkpoints and loss log in {config.run_dir})")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from .nets import registry, weights

    installed = {spec.name: (path, size) for spec, path, size in weights.installed_weights()}
    rows = [("NAME", "STATE", "SIZE", "WHERE / DESCRIPTION")]
    for name in registry.list_models():
        spec = registry.get_spec(name)
        default = " (default)" if name == registry.DEFAULT_MODEL else ""
        if name in installed:
            path, size = installed[name]
            rows.append((name + default, "installed", _megabytes(size), str(path)))
        else:
            hint = f"{spec.description}; `models download {name}`"
            rows.append((name + default, "not downloaded", _expected_size(spec), hint))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]))
    return 0


def cmd_models_download(args: argparse.Namespace) -> int:
    from .nets import registry, weights

    spec = registry.get_spec(args.name)
    if spec.shipped and args.url is None:
        print(f"{spec.name} ships with the package, nothing to download: "
              f"{weights.weights_location(spec)}")  # fmt: skip
        return 0
    with _ProgressBars(disabled=args.quiet) as bars:
        path = weights.download_weights(spec, progress=bars, url=args.url)
    print(path)
    return 0


def cmd_models_info(args: argparse.Namespace) -> int:
    from .nets import registry, weights

    spec = registry.get_spec(args.name)
    location = weights.weights_location(spec)
    print(f"name:           {spec.name}")
    print(f"description:    {spec.description}")
    factor = spec.policy.default_render_factor
    side = factor * spec.policy.render_base
    print(f"input policy:   {spec.policy.kind}, default render factor {factor} ({side} px)")
    print(f"weights:        {location} ({'present' if location.is_file() else 'not downloaded'})")
    if spec.url:
        print(f"download from:  {spec.url}")
    print(f"size:           {_expected_size(spec)}")
    if spec.sha256:
        print(f"sha256:         {spec.sha256}")
    print(f"licence:        {spec.licence}")
    card = registry.shipped_models_dir() / spec.card
    if spec.card and card.is_file():
        print()
        print(card.read_text().rstrip())
    return 0


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _expected_size(spec: ModelSpec) -> str:
    """The weights file's size: pinned in the registry, else about the network's float32
    tensors (``~874.0 MB``)."""
    from .nets import weights

    return (
        _megabytes(spec.size_bytes)
        if spec.size_bytes
        else f"~{_megabytes(weights.expected_bytes(spec))}"
    )


class _ProgressBars:
    """Turns the library's ProgressEvents into one tqdm bar per stage.

    A bar starts at the count its first event reports, so after a resume its rate and ETA
    count only this run's work. Stages follow each other: a new stage's bar closes the bars
    before it, so it is drawn below them and never moves them. The ``batch`` bar (frames over
    every film of a batch) stays on top for the whole run; a stage's bar starts again when
    its count goes back or its total changes (the next film).
    """

    UNITS = {
        "download": ("B", True),
        "batch": ("frame", False),
        "colorize": ("frame", False),
        "mux": ("step", False),
        "frames": ("frame", False),
        "score": ("step", False),
        "evaluate": ("photo", False),
    }
    LASTING = "batch"

    def __init__(self, disabled: bool) -> None:
        self.disabled = disabled
        self.bars: dict[str, tqdm] = {}

    def __enter__(self) -> _ProgressBars:
        return self

    def __call__(self, event: ProgressEvent) -> None:
        if self.disabled:
            return
        bar = self.bars.get(event.stage)
        if bar is not None and (bar.disable or event.done < bar.n or event.total != bar.total):
            bar.close()
            bar = None
        if bar is None:
            if event.stage != self.LASTING:
                self._close(keep=self.LASTING)
            unit, scale = self.UNITS.get(event.stage, ("step", False))
            bar = tqdm(
                total=event.total,
                initial=event.done,
                desc=event.stage,
                unit=unit,
                unit_scale=scale,
                dynamic_ncols=True,
                file=sys.stderr,
            )
            self.bars[event.stage] = bar
        bar.update(event.done - bar.n)
        if event.message:
            bar.set_postfix_str(event.message, refresh=False)

    def write(self, line: str) -> None:
        """Print a line to stderr above the bars."""
        tqdm.write(line, file=sys.stderr)

    def _close(self, keep: str = "") -> None:
        for stage, bar in self.bars.items():
            if stage != keep:
                bar.close()

    def __exit__(self, *exc: object) -> None:
        self._close()


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``timeout``), raised in the main thread so that the run unwinds
    as for Ctrl-C: workers stopped, temporary files removed, the job left resumable."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the command runs (in the main thread), SIGTERM raises :class:`_Terminated`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(exc: KeyboardInterrupt) -> str:
    return "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"


def _interrupt_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a process the signal ended: 143 for
    SIGTERM, 130 for Ctrl-C."""
    return 128 + (signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 internal error, 2 bad input,
    130 interrupted, 143 terminated)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # OpenMP threads that spin while ffmpeg works cost more than they save; the policy is read
    # when torch loads, which happens below, once the command is known.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format=f"{PROG}: %(levelname)s: %(message)s",
    )
    try:
        with _sigterm_as_interrupt():
            return int(args.handler(args))
    except DeoldifyError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"{PROG}: {_stopped(exc)}", file=sys.stderr)
        return _interrupt_code(exc)
