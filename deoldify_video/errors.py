"""One error tree for the whole package.

Every error the library raises on purpose is a :class:`DeoldifyError`. Errors caused by the
user's input (a missing file, a corrupt video, an unknown model) carry ``exit_code = 2``; the
CLI prints their message on one line and exits with that code. Faults of the run itself (a
worker process died, a broken invariant, a full disk) carry ``exit_code = 1``, as does any
other exception, which is a bug.
"""

from __future__ import annotations


class DeoldifyError(Exception):
    """Base of every error raised by deoldify-video."""

    exit_code = 2


class UsageError(DeoldifyError):
    """A bad option value or a bad combination of paths (output equals input, ...)."""


class ToolMissingError(DeoldifyError):
    """ffmpeg or ffprobe is not installed or not on PATH."""


class FFmpegError(DeoldifyError):
    """An ffmpeg or ffprobe process failed.

    Attributes:
        command: the argument list that was run.
        stderr: what the process wrote to stderr (decoded, possibly truncated).
    """

    def __init__(self, message: str, command: list[str] | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.command = list(command or [])
        self.stderr = stderr


class ProbeError(DeoldifyError):
    """The input is not a readable video (missing, empty, not media, audio-only, truncated)."""


class DamagedError(ProbeError):
    """The input's container is truncated or damaged: its data ends before its stated length,
    its video ends long before its audio, or its demuxer reports errors."""


class DecodeError(FFmpegError):
    """Decoding stopped early or failed: the input is corrupt or truncated."""


class EncodeError(FFmpegError):
    """The encoder or the muxer failed."""


class SourceError(DeoldifyError):
    """An input URL could not be fetched (refused scheme, 404, unsupported site, ...)."""


class WeightsError(DeoldifyError):
    """A weights file is missing, corrupt, of the wrong architecture or fails its checksum."""


class ModelNotFoundError(DeoldifyError):
    """A model name is not in the registry and is not a path to a weights file."""


class InferenceError(DeoldifyError):
    """The model could not run, e.g. out of memory even with a batch of one frame."""

    exit_code = 1


class JobStateError(DeoldifyError):
    """An existing job folder does not match the requested job, or is locked by another run."""


class ClusterError(DeoldifyError):
    """A cluster cannot do the work: no address, unreachable, no node with the resources the
    work needs, or a node that does not see the shared input or job folder."""


class InternalError(DeoldifyError):
    """A fault of the run, not of its input: a worker process died, an invariant broke."""

    exit_code = 1


class DiskFullError(DeoldifyError):
    """A disk filled up (or a quota ran out) while a file was written.

    Attributes:
        folder: the folder that was being written to ("" if unknown).
    """

    exit_code = 1

    def __init__(self, message: str, folder: str = "") -> None:
        super().__init__(message)
        self.folder = folder
