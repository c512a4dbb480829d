"""deoldify-video: colorize black-and-white film and photos.

>>> from deoldify_video import load_colorizer, colorize_video   # doctest: +SKIP
>>> colorize_video("film.mkv", None, load_colorizer())           # doctest: +SKIP
"""

from __future__ import annotations

import os

# OpenMP threads that spin while ffmpeg works cost more than they save; set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from .images import colorize_image  # noqa: E402
from .inference import Colorizer, load_colorizer  # noqa: E402
from .nets.weights import load_model  # noqa: E402
from .pipeline import colorize_video  # noqa: E402

__all__ = ["Colorizer", "colorize_image", "colorize_video", "load_colorizer", "load_model"]
