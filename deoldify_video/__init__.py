"""deoldify-video: colorize black-and-white film and photos.

>>> from deoldify_video import load_colorizer, colorize_video   # doctest: +SKIP
>>> colorize_video("film.mkv", None, load_colorizer())           # doctest: +SKIP

Importing the package is cheap: torch, OpenCV and Pillow load when one of the names below is
first used, so that ``deoldify-video --help`` answers at once.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .images import colorize_image
    from .inference import Colorizer, load_colorizer
    from .nets.weights import load_model
    from .pipeline import colorize_video

try:
    __version__ = importlib.metadata.version("deoldify-video")
except importlib.metadata.PackageNotFoundError:  # a checkout that was not installed
    __version__ = "unknown"

# public name -> the module that defines it, imported on first use
_LAZY = {
    "Colorizer": ".inference",
    "colorize_image": ".images",
    "colorize_video": ".pipeline",
    "load_colorizer": ".inference",
    "load_model": ".nets.weights",
}

__all__ = ["Colorizer", "colorize_image", "colorize_video", "load_colorizer", "load_model"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
