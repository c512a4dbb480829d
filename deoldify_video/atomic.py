"""Writing a file safely: under a temporary name, then renamed over the final one.

A file is written as ``<name>.<pid>.part`` beside its final name, flushed to the disk, renamed
over ``<name>`` (an atomic step on one file system) and the folder's entry flushed too. A crash
at any moment leaves either the old file or the new one, never half of one, under the final
name; a failure removes the ``.part``. The process id in the temporary name keeps two
processes (a run and a stray encoder of a killed one) off each other's files.

Every module that writes a file others rely on goes through :func:`writing` (or
:func:`commit` for a file that must outlive a failure, such as a resumable download).
Standard library only.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> with writing(folder / "notes.txt") as part:
...     _ = part.write_text("done")
>>> sorted(p.name for p in folder.iterdir()), (folder / "notes.txt").read_text()
(['notes.txt'], 'done')
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PART_SUFFIX = ".part"


def part_path(path: Path, tag: str | None = None) -> Path:
    """The temporary name a process writes ``path`` under: ``<name>.<tag>.part``, the tag
    being this process's id unless given (a cluster worker's names its node and process)."""
    return path.with_name(f"{path.name}.{tag or os.getpid()}{PART_SUFFIX}")


def sync_file(path: Path) -> None:
    """Flush a finished file's data to the disk (before it is renamed into place)."""
    with path.open("rb") as f:
        os.fsync(f.fileno())


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to the disk, where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(part: Path, path: Path, sync_dir: bool = True) -> None:
    """Put a finished temporary file in place: flush it, rename it over ``path`` and, unless
    ``sync_dir`` is False (a caller renaming many files flushes their folder once), flush the
    folder."""
    sync_file(part)
    os.replace(part, path)
    if sync_dir:
        sync_folder(path.parent)


@contextlib.contextmanager
def writing(path: Path, tag: str | None = None) -> Iterator[Path]:
    """Write ``path`` safely: yields the temporary path to write (by any means: Python, Pillow,
    torch, an ffmpeg process); when the block ends without an error the file is committed
    (:func:`commit`); in every case no ``.part`` is left behind."""
    part = part_path(path, tag)
    try:
        yield part
        commit(part, path)
    finally:
        part.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` safely (see :func:`writing`)."""
    with writing(path) as part:
        part.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` safely, as UTF-8 (see :func:`writing`)."""
    write_bytes(path, text.encode("utf-8"))


def remove_parts(folder: Path, name: str = "") -> None:
    """Delete every ``<name>*.part`` file in ``folder``: leftovers of killed runs."""
    escaped = "".join(f"[{c}]" if c in "*?[" else c for c in name)
    for part in folder.glob(f"{escaped}*{PART_SUFFIX}"):
        part.unlink(missing_ok=True)
