"""The ``deoldify-video`` command line. The only module that prints or draws progress bars."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from . import __version__
from .errors import DeoldifyError
from .types import ProgressEvent, RenderConfig

log = logging.getLogger("deoldify_video")

PROG = "deoldify-video"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Colorize black-and-white film and photos."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("colorize", help="colorize a video file")
    p.add_argument("input", metavar="INPUT", help="video file")
    p.add_argument("-o", "--output", help="output file (default: INPUT_colorized.EXT beside it)")
    _add_model_options(p)
    p.add_argument("--batch-size", type=int, default=8, help="frames per model call (default 8)")
    p.add_argument("--codec", default="libx264", choices=["libx264", "libx265", "ffv1", "prores"])
    p.add_argument("--crf", type=int, default=17, help="libx264/libx265 quality, 0-51 (default 17)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_colorize)

    p = sub.add_parser("image", help="colorize photos")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files")
    p.add_argument("-o", "--output-dir", help="folder for the results (default: beside each input)")
    _add_model_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=cmd_image)
    return parser


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="model name or weights file (default: lite)")
    p.add_argument("--render-factor", type=int, default=None,
                   help="model input size in units of 16 px (default: the model's own)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")


def cmd_colorize(args: argparse.Namespace) -> int:
    from .inference import load_colorizer
    from .pipeline import configure_threads, plan_video, run_video

    configure_threads(args.threads)
    config = RenderConfig(
        model=args.model,
        render_factor=args.render_factor,
        batch_size=args.batch_size,
        device=args.device,
        codec=args.codec,
        crf=args.crf,
    )
    job = plan_video(args.input, args.output, config, overwrite=args.overwrite)
    colorizer = load_colorizer(args.model, args.device, args.render_factor, args.batch_size)
    with _ProgressBars(disabled=args.quiet) as bars:
        result = run_video(job, colorizer, progress=bars)
    if not args.quiet:
        print(f"{result.output}: {result.frames} frames colorized")
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    from .images import colorize_image, default_image_output
    from .inference import load_colorizer

    colorizer = load_colorizer(args.model, args.device, args.render_factor, batch_size=1)
    if args.output_dir is not None:
        out_dir = Path(args.output_dir)
        if not out_dir.is_dir():
            raise DeoldifyError(f"{out_dir}: the output folder does not exist")
    for name in args.inputs:
        output = colorize_image(name, default_image_output(name, args.output_dir), colorizer,
                                overwrite=args.overwrite)  # fmt: skip
        if not args.quiet:
            print(output)
    return 0


class _ProgressBars:
    """Turns the library's ProgressEvents into one tqdm bar per stage."""

    UNITS = {"download": ("B", True), "colorize": ("frame", False), "mux": ("step", False)}

    def __init__(self, disabled: bool) -> None:
        self.disabled = disabled
        self.bars: dict[str, tqdm] = {}

    def __enter__(self) -> Callable[[ProgressEvent], None]:
        return self

    def __call__(self, event: ProgressEvent) -> None:
        if self.disabled:
            return
        bar = self.bars.get(event.stage)
        if bar is None:
            unit, scale = self.UNITS.get(event.stage, ("", False))
            bar = tqdm(total=event.total, desc=event.stage, unit=unit, unit_scale=scale,
                       dynamic_ncols=True, file=sys.stderr)  # fmt: skip
            self.bars[event.stage] = bar
        bar.update(event.done - bar.n)

    def __exit__(self, *exc: object) -> None:
        for bar in self.bars.values():
            bar.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0, 1 internal error, 2 bad input, 130 Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format=f"{PROG}: %(levelname)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except DeoldifyError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
