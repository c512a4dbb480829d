"""Locating and running the ffmpeg tools.

Every command is an argument list built by a pure function elsewhere in :mod:`media`; this
module finds the executables, runs them with the return code checked, reads their stderr
while they run, and holds the one rule for writing a file path into a command
(:func:`path_arg`).

Every tool runs in a session of its own, so a Ctrl-C (or a SIGTERM to the process group) in
the terminal reaches this process alone, which then stops its tools: an interrupted run always
ends as an interrupt, never as the decoding error of a tool that the signal ended first.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..errors import DiskFullError, FFmpegError, ToolMissingError

log = logging.getLogger(__name__)

_FFMPEG_HINT = "install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg)"
INSTALL_HINT = {
    "ffmpeg": _FFMPEG_HINT,
    "ffprobe": _FFMPEG_HINT,
    "mkvmerge": "install MKVToolNix (Debian/Ubuntu: apt-get install mkvtoolnix; macOS: brew "
    "install mkvtoolnix)",
}

STDERR_KEEP = 4000

# How ffmpeg (the operating system's strerror) and mkvmerge say that a disk is full.
# ffmpeg's prefix naming the component and its address: "[h264 @ 0x55d0c3a1e2c0] ".
_CONTEXT = re.compile(r"^\[([^\]@]+?) @ 0x[0-9a-fA-F]+\] ")
_REPEATED = re.compile(r"Last message repeated (\d+) times?")
_NO_SPACE = ("No space left on device", "No space left to write to", "Disk quota exceeded")


def tool(name: str) -> str:
    """Absolute path of ``name`` (ffmpeg, ffprobe, mkvmerge) or a ToolMissingError saying how to
    install it."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(f"{name} was not found on PATH: {INSTALL_HINT[name]}")
    return path


def path_arg(path: str | Path) -> str:
    """A file path as it is written into an ffmpeg, ffprobe or mkvmerge command: absolute.

    A relative name can be read as something else: ``-dash.mp4`` as an option, ``a:b.mkv`` as
    the protocol ``a``; and pathlib drops the ``./`` a user types to prevent that. An absolute
    path starts with ``/`` and is always a file to all three tools.

    >>> path_arg("/films/-dash.mp4")
    '/films/-dash.mp4'
    """
    return os.path.abspath(os.fspath(path))


def run(
    cmd: list[str],
    error: type[FFmpegError] = FFmpegError,
    what: str = "",
    ok_codes: tuple[int, ...] = (0,),
    writes: str | Path | None = None,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``cmd`` to completion, raising ``error`` (with command and stderr) on failure.

    ``cmd[0]`` is a tool name; it is resolved with :func:`tool`. Return codes in ``ok_codes``
    count as success (mkvmerge returns 1 for mere warnings). ``stdin`` is fed to the tool
    (without it, the tool reads an empty input).

    Raises:
        DiskFullError: the command failed for lack of disk space while writing ``writes``.
    """
    full = [tool(cmd[0]), *cmd[1:]]
    log.debug("running %s", subprocess.list2cmdline(full))
    proc = subprocess.run(
        full, input=stdin or b"", capture_output=True, check=False, start_new_session=True
    )
    if proc.returncode not in ok_codes:
        stderr = proc.stderr.decode(errors="replace")
        text = stderr or proc.stdout.decode(errors="replace")
        if writes is not None:
            check_no_space(text, Path(writes).parent)
        message = f"{what or cmd[0]} failed: {last_line(text)}"
        raise error(message, command=full, stderr=stderr[-STDERR_KEEP:])
    return proc


def check_no_space(text: str, folder: Path) -> None:
    """Raise DiskFullError when a tool's messages say that writing into ``folder`` failed
    for lack of space (or quota)."""
    if any(phrase in text for phrase in _NO_SPACE):
        raise no_space(folder)


def no_space(folder: Path) -> DiskFullError:
    """The error for a write into ``folder`` that failed for lack of space (or quota)."""
    return DiskFullError(f"no space left on the disk of {folder}", folder=str(folder))


def last_line(text: str) -> str:
    """The last non-empty line of a tool's stderr, for a one-line message, without ffmpeg's
    ``[h264 @ 0x55d0c3a1e2c0]`` prefix.

    >>> last_line("[h264 @ 0x55d0c3a1e2c0] error while decoding MB 3 4\\n")
    'h264: error while decoding MB 3 4'
    """
    lines = [line.strip() for line in text.splitlines() if line.strip() and not repeats(line)]
    return _CONTEXT.sub(r"\1: ", lines[-1]) if lines else "no error message"


def component(line: str) -> str:
    """The part of ffmpeg that wrote a stderr line: ``"h264"`` for ``[h264 @ 0x55d0c3a1e2c0]
    ...``, "" for a line without that prefix."""
    match = _CONTEXT.match(line.strip())
    return match[1] if match else ""


def repeats(line: str) -> int:
    """N for ffmpeg's ``Last message repeated N times`` line (which stands for N more copies
    of the line before it), 0 for any other line."""
    match = _REPEATED.fullmatch(line.strip())
    return int(match[1]) if match else 0


class StderrReader:
    """Read a running process's stderr in a thread, keeping its last :data:`STDERR_KEEP`
    characters.

    A pipe that nobody reads holds 64 KiB; a process that writes more (a damaged film makes
    ffmpeg write a line per damaged spot) then blocks for ever, and so does whoever waits for
    its other output. Every process we stream through (:class:`~.reader.FrameReader`,
    :class:`~.writer.FrameWriter`) has its stderr read by one of these; :func:`run` reads both
    pipes together (``subprocess.run``).

    Args:
        stream: the process's stderr (binary).
        on_line: called in the reading thread with each line (decoded, without its newline).
    """

    def __init__(self, stream: IO[bytes], on_line: Callable[[str], None] | None = None) -> None:
        self._stream = stream
        self._on_line = on_line
        self._tail: collections.deque[str] = collections.deque()
        self._size = 0
        self._thread = threading.Thread(target=self._read, name="stderr", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for raw in self._stream:
            line = raw.decode(errors="replace").rstrip("\r\n")
            self._tail.append(line)
            self._size += len(line) + 1
            while self._size > STDERR_KEEP and len(self._tail) > 1:
                self._size -= len(self._tail.popleft()) + 1
            if self._on_line is not None:
                self._on_line(line)

    def text(self) -> str:
        """Wait until the stream is closed (the process ended or was killed) and return the
        last :data:`STDERR_KEEP` characters or so that it carried."""
        self._thread.join()
        return "\n".join(self._tail)
