"""Text labels drawn with Pillow's built-in font (no font file to ship or find)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Label text is this fraction of the picture height it labels, within these bounds (px).
TEXT_SHARE = 1 / 16
MIN_TEXT, MAX_TEXT = 10, 48


def text_size_for(height: int) -> int:
    """Text height in pixels for a label on a picture ``height`` pixels high."""
    return int(min(MAX_TEXT, max(MIN_TEXT, round(height * TEXT_SHARE))))


def label(text: str, size: int) -> np.ndarray:
    """``text`` in white on a translucent black box, as RGBA ``(h, w, 4)`` uint8, to be laid
    over a picture.

    Args:
        text: one line.
        size: the text height in pixels (the box adds a margin of a quarter of it).

    >>> label("original", 20).shape[2]
    4
    """
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    pad = max(2, size // 4)
    box = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 160))
    ImageDraw.Draw(box).text((pad - left, pad - top), text, font=font, fill=(255, 255, 255, 255))
    return np.asarray(box)


def draw_text(picture: np.ndarray, text: str, size: int, x: int, y: int) -> np.ndarray:
    """A copy of the RGB ``picture`` ``(H, W, 3)`` uint8 with a :func:`label` at ``(x, y)``
    (its top-left corner; the part outside the picture is cut off)."""
    image = Image.fromarray(picture).convert("RGBA")
    image.alpha_composite(Image.fromarray(label(text, size)), (x, y))
    return np.asarray(image.convert("RGB"))
