"""deoldify-video: colorize black-and-white film and photos.

>>> from deoldify_video import RenderConfig, colorize_video, load_colorizer  # doctest: +SKIP
>>> colorizer = load_colorizer("default")                                  # doctest: +SKIP
>>> colorize_video("film.mkv", None, colorizer, RenderConfig(crf=14))      # doctest: +SKIP

Everything a caller needs is importable from here: the entry points (:func:`colorize_video`,
:func:`colorize_image`, :func:`load_colorizer`, :func:`load_model`), their options
(:class:`RenderConfig`, :class:`JobOptions`), what they return and report
(:class:`VideoResult`, :class:`VideoInfo`, :class:`ProgressEvent`), the models
(:func:`list_models`, :func:`register_model`) and the error tree rooted at
:class:`DeoldifyError`.

Importing the package is cheap: the errors and records load at once (standard library only);
torch, OpenCV and Pillow load when a name that needs them is first used, so that
``deoldify-video --help`` answers at once. Nothing is set in the environment.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

from .errors import (
    ClusterError,
    DamagedError,
    DecodeError,
    DeoldifyError,
    DiskFullError,
    EncodeError,
    FFmpegError,
    InferenceError,
    InternalError,
    JobStateError,
    ModelNotFoundError,
    ProbeError,
    SourceError,
    ToolMissingError,
    UsageError,
    WeightsError,
)
from .types import (
    STAGES,
    ProgressCallback,
    ProgressEvent,
    RenderConfig,
    Stage,
    StreamInfo,
    VideoInfo,
)

if TYPE_CHECKING:
    from .batch import BatchResult, colorize_videos
    from .images import colorize_image
    from .inference import Colorizer, load_colorizer
    from .jobs import JobOptions, JobStatus, job_status
    from .media.probe import probe
    from .nets.registry import (
        InputPolicy,
        ModelSpec,
        get_spec,
        list_models,
        register_model,
        unregister_model,
    )
    from .nets.weights import download_weights, load_model
    from .pipeline import VideoResult, colorize_video
    from .stages import Cancelled

try:
    __version__ = importlib.metadata.version("deoldify-video")
except importlib.metadata.PackageNotFoundError:  # a checkout that was not installed
    __version__ = "unknown"

# public name -> the module that defines it, imported on first use
_LAZY = {
    "BatchResult": ".batch",
    "Cancelled": ".stages",
    "Colorizer": ".inference",
    "InputPolicy": ".nets.registry",
    "JobOptions": ".jobs",
    "JobStatus": ".jobs",
    "ModelSpec": ".nets.registry",
    "VideoResult": ".pipeline",
    "colorize_image": ".images",
    "colorize_video": ".pipeline",
    "colorize_videos": ".batch",
    "download_weights": ".nets.weights",
    "get_spec": ".nets.registry",
    "job_status": ".jobs",
    "list_models": ".nets.registry",
    "load_colorizer": ".inference",
    "load_model": ".nets.weights",
    "probe": ".media.probe",
    "register_model": ".nets.registry",
    "unregister_model": ".nets.registry",
}

__all__ = [
    "BatchResult",
    "Cancelled",
    "ClusterError",
    "Colorizer",
    "DamagedError",
    "DecodeError",
    "DeoldifyError",
    "DiskFullError",
    "EncodeError",
    "FFmpegError",
    "InferenceError",
    "InputPolicy",
    "InternalError",
    "JobOptions",
    "JobStateError",
    "JobStatus",
    "ModelNotFoundError",
    "ModelSpec",
    "ProbeError",
    "ProgressCallback",
    "ProgressEvent",
    "RenderConfig",
    "STAGES",
    "SourceError",
    "Stage",
    "StreamInfo",
    "ToolMissingError",
    "UsageError",
    "VideoInfo",
    "VideoResult",
    "WeightsError",
    "colorize_image",
    "colorize_video",
    "colorize_videos",
    "download_weights",
    "get_spec",
    "job_status",
    "list_models",
    "load_colorizer",
    "load_model",
    "probe",
    "register_model",
    "unregister_model",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
