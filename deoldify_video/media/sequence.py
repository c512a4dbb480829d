"""Numbered image sequences (film scans): finding them, and ffmpeg's view of them.

A scan of a reel is a folder of numbered frames (``reel1_086400.dpx`` ...), one file per frame.
It is named either by an ffmpeg pattern (``scans/reel1_%06d.dpx``) or by its folder
(``scans/``). Either way the numbering must be whole: a missing frame would shift everything
after it in time, so a gap is an error that names the missing numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import ProbeError

# Formats scanners write; ffmpeg reads each of them (EXR as half or float).
SEQUENCE_EXTENSIONS = (".dpx", ".tif", ".tiff", ".png", ".exr")
DEFAULT_FPS = Fraction(24)

_PATTERN = re.compile(r"%(0(\d+))?d")
_NUMBERED = re.compile(r"^(.*?)(\d+)(\.[A-Za-z0-9]+)$")


@dataclass(frozen=True)
class ImageSequence:
    """A whole run of numbered frames.

    Attributes:
        folder: where the frames are.
        prefix, suffix: the file name around the number (``"reel1_"``, ``".dpx"``).
        digits: the zero-padded width of the number, 0 for no padding.
        start: the first frame's number.
        count: how many frames (numbers ``start`` to ``start + count - 1``, all present).
    """

    folder: Path
    prefix: str
    suffix: str
    digits: int
    start: int
    count: int

    @property
    def pattern(self) -> str:
        """The ffmpeg pattern of the frames' paths (``scans/reel1_%06d.dpx``)."""
        number = f"%0{self.digits}d" if self.digits else "%d"
        return str(self.folder / f"{self.prefix}{number}{self.suffix}")

    def path(self, number: int) -> Path:
        """The file of frame ``number`` (a frame number, not an index from 0)."""
        return self.folder / f"{self.prefix}{number:0{self.digits}d}{self.suffix}"

    def files(self) -> list[Path]:
        """Every frame's file, in order."""
        return [self.path(self.start + i) for i in range(self.count)]


def is_sequence(path: str | Path) -> bool:
    """True for a folder, or a path whose file name holds an ffmpeg ``%d`` pattern."""
    return Path(path).is_dir() or bool(_PATTERN.search(Path(path).name))


def find_sequence(path: str | Path) -> ImageSequence:
    """The image sequence a folder or an ffmpeg pattern names.

    Raises:
        ProbeError: no numbered frames, several different numberings in one folder, or a gap
            in the numbering (the missing numbers are named).
    """
    path = Path(path)
    if path.is_dir():
        return _whole(path, _only_numbering(path))
    match = _PATTERN.search(path.name)
    if match is None:
        raise ProbeError(f"{path}: not a folder of frames or a %d pattern")
    prefix, suffix = path.name[: match.start()], path.name[match.end() :]
    digits = int(match[2]) if match[2] else 0
    if not path.parent.is_dir():
        raise ProbeError(f"{path}: the folder {path.parent} does not exist")
    numbers = _numbers(path.parent, prefix, suffix, digits)
    if not numbers:
        raise ProbeError(f"{path}: no file matches the pattern")
    return _whole(path.parent, (prefix, suffix, digits, numbers))


def input_options(sequence: ImageSequence, fps: Fraction) -> tuple[str, ...]:
    """ffmpeg options that go before ``-i PATTERN`` to read the sequence at ``fps``."""
    rate = f"{fps.numerator}/{fps.denominator}"
    return ("-f", "image2", "-framerate", rate, "-start_number", str(sequence.start))


def output_sequence(path: str | Path) -> tuple[str, str, int] | None:
    """(prefix, suffix, digits) of an output pattern such as ``out/reel1_%06d.tif``, or None
    when ``path`` is a plain file name."""
    name = Path(path).name
    match = _PATTERN.search(name)
    if match is None:
        return None
    return name[: match.start()], name[match.end() :], int(match[2]) if match[2] else 0


def holds_frames(folder: Path) -> bool:
    """True when ``folder`` holds numbered image files (of :data:`SEQUENCE_EXTENSIONS`)."""
    return any(_is_frame(entry) for entry in folder.iterdir())


def _is_frame(entry: Path) -> bool:
    match = _NUMBERED.match(entry.name)
    return match is not None and match[3].lower() in SEQUENCE_EXTENSIONS and entry.is_file()


def _only_numbering(folder: Path) -> tuple[str, str, int, list[int]]:
    """The one numbering of the image files in ``folder``."""
    groups: dict[tuple[str, str], list[str]] = {}
    for entry in folder.iterdir():
        if _is_frame(entry):
            match = _NUMBERED.match(entry.name)
            assert match is not None
            groups.setdefault((match[1], match[3]), []).append(match[2])
    if not groups:
        kinds = ", ".join(SEQUENCE_EXTENSIONS)
        raise ProbeError(f"{folder}: is a directory without numbered frames ({kinds})")
    if len(groups) > 1:
        names = ", ".join(f"{p}#{s}" for p, s in sorted(groups))
        raise ProbeError(
            f"{folder}: holds several numbered sequences ({names}); name one with a pattern "
            f"such as {folder / _pattern_name(*min(groups), 0)}"
        )
    (prefix, suffix), texts = next(iter(groups.items()))
    return prefix, suffix, _padding(folder, texts), [int(t) for t in texts]


def _padding(folder: Path, texts: list[str]) -> int:
    """The zero-padded width of a numbering (``0998``...``1000``...``10000`` is 4), 0 when
    the numbers are not padded."""
    width = min(len(t) for t in texts)
    padded = [t for t in texts if len(t) > 1 and t.startswith("0")]
    if any(len(t) != width for t in padded):
        raise ProbeError(f"{folder}: the frame numbers are padded to different widths")
    if padded or all(len(t) == width for t in texts):
        return width
    return 0


def _pattern_name(prefix: str, suffix: str, digits: int) -> str:
    return f"{prefix}{f'%0{digits}d' if digits else '%d'}{suffix}"


def _numbers(folder: Path, prefix: str, suffix: str, digits: int) -> list[int]:
    """The numbers of the files in ``folder`` that match a pattern."""
    width = rf"\d{{{digits},}}" if digits else r"[1-9]\d*|0"
    name = re.compile(rf"^{re.escape(prefix)}({width}){re.escape(suffix)}$")
    return [int(m[1]) for e in folder.iterdir() if (m := name.match(e.name)) and e.is_file()]


def _whole(folder: Path, numbering: tuple[str, str, int, list[int]]) -> ImageSequence:
    """The sequence, if its numbers run without a gap."""
    prefix, suffix, digits, numbers = numbering
    numbers = sorted(set(numbers))
    first, last = numbers[0], numbers[-1]
    if len(numbers) != last - first + 1:
        missing = _ranges(sorted(set(range(first, last + 1)) - set(numbers)))
        name = folder / _pattern_name(prefix, suffix, digits)
        raise ProbeError(
            f"{name}: frames {first} to {last} have gaps: {missing} missing "
            f"({last - first + 1 - len(numbers)} frames)"
        )
    return ImageSequence(folder, prefix, suffix, digits, first, len(numbers))


def _ranges(numbers: list[int], most: int = 6) -> str:
    """``12-14, 20, 31-40`` (at most ``most`` runs, then ``...``)."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:most]]
    return ", ".join(text) + (", ..." if len(runs) > most else "")
