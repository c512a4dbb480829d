"""Colorize every film of a folder, loading the model once.

    python examples/colorize_folder.py reels/ -o colour/

Each film becomes ``colour/NAME_colorized.mkv`` (Matroska holds every stream). A film that
fails gets an error line and the others go on. Running the command again skips the films
that are done and resumes the one that was interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deoldify_video import DeoldifyError, colorize_video, load_colorizer

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Colorize every film of a folder.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("-o", "--output-dir", type=Path, required=True)
    parser.add_argument("--model", default="default", help="a model name or a weights file")
    parser.add_argument("--render-factor", type=int, help="model input size in units of 16 px")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder}: not a folder", file=sys.stderr)
        return 2
    films = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not films:
        print(f"error: {args.folder}: no video files", file=sys.stderr)
        return 2
    colorizer = load_colorizer(args.model, render_factor=args.render_factor)
    failed = 0
    for film in films:
        output = args.output_dir / f"{film.stem}_colorized.mkv"
        if output.exists():
            print(f"{output}: done before, skipped")
            continue
        try:
            result = colorize_video(film, output, colorizer)
        except DeoldifyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{result.output}: {result.frames} frames")
    print(f"{len(films) - failed} of {len(films)} films colorized")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
