"""Colorize black-and-white photos.

    python examples/colorize_photos.py tests/data/photos-bw/camera.jpg -o colour/

Each photo becomes ``colour/NAME_colorized.EXT``, upright, with its own luminance at full
resolution and its transparency kept (PNG, WebP, TIFF). A colour photo is refused unless
``--recolor`` is given; a photo that fails gets an error line and the others go on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deoldify_video import DeoldifyError, colorize_image, load_colorizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Colorize photos.")
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("-o", "--output-dir", type=Path, required=True)
    parser.add_argument("--model", default="default", help="a model name or a weights file")
    parser.add_argument("--render-factor", type=int, help="model input size in units of 16 px")
    parser.add_argument("--recolor", action="store_true", help="colour photos too")
    args = parser.parse_args(argv)
    colorizer = load_colorizer(args.model, render_factor=args.render_factor, batch_size=1)
    failed = 0
    for photo in args.photos:
        output = args.output_dir / f"{photo.stem}_colorized{photo.suffix}"
        try:
            colorize_image(photo, output, colorizer, overwrite=True, recolor=args.recolor)
        except DeoldifyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(output)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
