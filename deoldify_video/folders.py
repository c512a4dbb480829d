"""Finding the files a folder given as input stands for (standard library only)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

OUTPUT_STEM_SUFFIX = "_colorized"  # what a default output's name adds to its input's stem


def find_files(
    folder: Path, suffixes: Collection[str], recursive: bool = False, skip_stem: str = ""
) -> list[Path]:
    """The files in ``folder`` (its sub-folders too when ``recursive``) whose lower-case
    suffix is in ``suffixes``, sorted; hidden files and, when ``skip_stem`` is given, files
    whose stem ends with it (this tool's own outputs) are left out.

    >>> find_files(Path("/nonexistent-folder"), {".mkv"})
    []
    """
    if not folder.is_dir():
        return []
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        path
        for path in candidates
        if path.suffix.lower() in suffixes
        and path.is_file()
        and not path.name.startswith(".")
        and not (skip_stem and path.stem.endswith(skip_stem))
    )
