"""Colorize one film with the Python API.

    python examples/colorize_film.py examples/bigbuckbunny_bw.mp4 -o bunny_colour.mp4

The work is a resumable job: interrupt it (Ctrl-C) and run the same command again to go on
where it stopped.
"""

from __future__ import annotations

import argparse
import sys

from deoldify_video import DeoldifyError, JobOptions, RenderConfig, colorize_video, load_colorizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Colorize one film.")
    parser.add_argument("film", help="a black-and-white video file")
    parser.add_argument("-o", "--output", help="default: FILM_colorized.EXT beside the film")
    parser.add_argument("--model", default="default", help="a model name or a weights file")
    parser.add_argument("--render-factor", type=int, help="model input size in units of 16 px")
    parser.add_argument("--crf", type=int, help="H.264 quality (default 17; lower is better)")
    args = parser.parse_args(argv)
    try:
        colorizer = load_colorizer(args.model, device="auto", render_factor=args.render_factor)
        result = colorize_video(
            args.film,
            args.output,
            colorizer,
            config=RenderConfig(crf=args.crf),
            options=JobOptions(keep_job=False),
        )
    except DeoldifyError as exc:  # bad input, a damaged film, a missing model...
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    info = result.info
    print(f"{result.output}: {result.frames} frames, {info.width}x{info.height} at {info.fps} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
