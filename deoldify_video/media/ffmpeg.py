"""Locating and running the ffmpeg tools.

Every command is an argument list built by a pure function elsewhere in :mod:`media`; this
module only finds the executables and runs them with the return code checked.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

from ..errors import FFmpegError, ToolMissingError

log = logging.getLogger(__name__)

_FFMPEG_HINT = "install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg)"
INSTALL_HINT = {
    "ffmpeg": _FFMPEG_HINT,
    "ffprobe": _FFMPEG_HINT,
    "mkvmerge": "install MKVToolNix (Debian/Ubuntu: apt-get install mkvtoolnix; macOS: brew "
    "install mkvtoolnix)",
}

STDERR_KEEP = 4000


def tool(name: str) -> str:
    """Absolute path of ``name`` (ffmpeg, ffprobe, mkvmerge) or a ToolMissingError saying how to
    install it."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(f"{name} was not found on PATH: {INSTALL_HINT[name]}")
    return path


def run(
    cmd: list[str],
    error: type[FFmpegError] = FFmpegError,
    what: str = "",
    ok_codes: tuple[int, ...] = (0,),
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``cmd`` to completion, raising ``error`` (with command and stderr) on failure.

    ``cmd[0]`` is a tool name; it is resolved with :func:`tool`. Return codes in ``ok_codes``
    count as success (mkvmerge returns 1 for mere warnings). ``stdin`` is fed to the tool.
    """
    full = [tool(cmd[0]), *cmd[1:]]
    log.debug("running %s", subprocess.list2cmdline(full))
    feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    proc = subprocess.run(full, capture_output=True, check=False, **feed)  # type: ignore[call-overload]
    if proc.returncode not in ok_codes:
        stderr = proc.stderr.decode(errors="replace")
        message = (
            f"{what or cmd[0]} failed: {last_line(stderr or proc.stdout.decode(errors='replace'))}"
        )
        raise error(message, command=full, stderr=stderr[-STDERR_KEEP:])
    return proc


def last_line(text: str) -> str:
    """The last non-empty line of a tool's stderr, for a one-line message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"
