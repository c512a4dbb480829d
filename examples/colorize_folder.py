"""Colorize every film of a folder (and its sub-folders with -r), loading the model once.

    python examples/colorize_folder.py reels/ -o colour/

Each film becomes ``colour/NAME_colorized.EXT``. A film that fails gets an error line and the
others go on. Running the command again skips the films that are done and resumes the one
that was interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deoldify_video import DeoldifyError, colorize_videos, load_colorizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Colorize every film of a folder.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("-o", "--output-dir", type=Path, required=True)
    parser.add_argument("-r", "--recursive", action="store_true", help="sub-folders too")
    parser.add_argument("--model", default="default", help="a model name or a weights file")
    parser.add_argument("--render-factor", type=int, help="model input size in units of 16 px")
    args = parser.parse_args(argv)
    colorizer = load_colorizer(args.model, render_factor=args.render_factor)
    try:
        result = colorize_videos(
            [args.folder],
            args.output_dir,
            colorizer,
            recursive=args.recursive,
            on_failed=lambda film, error: print(f"error: {error}", file=sys.stderr),
        )
    except DeoldifyError as exc:  # the output folder cannot be made
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for video in result.colorized:
        print(f"{video.output}: {video.frames} frames")
    for output in result.already_done:
        print(f"{output}: done before, skipped")
    print(result.summary())
    return 2 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
