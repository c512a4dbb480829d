"""The photo set manifest, perceptual hashes and the test-domain guard.

``tools/build_photo_set.py`` builds training photos from open packages and records each one
in a manifest CSV: where it came from, its licence, its subject and its ``split``:

- ``train``: photos to train on;
- ``val-source``: whole packages held out of training, to choose checkpoints on photos from
  sources the model never saw;
- ``test-domain``: the independent test domain (``opencv-doc``, ``palapeli-data``,
  ``scikit-image``, ``scikit-learn`` and matplotlib's sample data), never trained on and never
  used to choose a checkpoint.

The training loader leaves out, with a warning, any image whose perceptual hash matches an
image of a test-domain package, photograph or not, in the test split or not
(:func:`find_test_domain_copy`), wherever the file lies and whatever it is called: the hashes
ship with the package in ``test_domain_hashes.txt``. (A perceptual hash can also match an
unrelated image: one of Tux Paint's cut-outs, a dandelion clock on black, matches opencv-doc's
motion blur kernel, a bright streak on black; it is left out too.)
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .. import atomic
from ..errors import UsageError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val-source", "test-domain")
TEST_DOMAIN_PACKAGES = ("opencv-doc", "palapeli-data", "scikit-image", "scikit-learn", "matplotlib")
# Two pHashes this close (of 64 bits) are the same photograph: resized, recompressed, turned
# grey, or lightly cropped. Different photographs differ in about 32 bits.
SAME_PHOTO_BITS = 8
TEST_DOMAIN_HASHES = Path(__file__).with_name("test_domain_hashes.txt")


# ---------------------------------------------------------------------------------------------
# Perceptual hashes


def _grey(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32 luminance in ``[0, 255]`` of an RGB or grey, uint8 or float image."""
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got {image.shape}")
    img = image.astype(np.float32)
    if image.dtype != np.uint8:
        img = img * 255.0
    if img.ndim == 3 and img.shape[2] == 3:
        img = img @ np.array([0.299, 0.587, 0.114], np.float32)
    elif img.ndim == 3:
        img = img[:, :, 0]
    return img


def phash(image: np.ndarray) -> int:
    """64-bit perceptual hash (DCT of the 32x32 luminance; the signs of its 8x8 lowest
    frequencies against their median).

    Args:
        image: ``(H, W, 3)`` RGB or ``(H, W)`` grey; uint8 in ``[0, 255]`` or float in
            ``[0, 1]``.

    Returns:
        The hash as an int in ``[0, 2**64)``. Resizing, JPEG compression, turning the photo
        grey or small changes of brightness move it by a few bits; another photo is about 32
        bits away (:func:`hamming`).
    """
    small = cv2.resize(_grey(image), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def has_content(image: np.ndarray) -> bool:
    """Whether the image's 32x32 luminance varies by more than 4 levels (std, 0-255): the
    hash of a flat image is rounding noise and says nothing about it.

    Args:
        image: as for :func:`phash`.
    """
    small = cv2.resize(_grey(image), (32, 32), interpolation=cv2.INTER_AREA)
    return float(small.std()) > 4.0


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes.

    >>> hamming(0b1011, 0b0001)
    2
    """
    return bin(a ^ b).count("1")


# ---------------------------------------------------------------------------------------------
# The manifest


@dataclass(frozen=True)
class PhotoRecord:
    """One row of the photo set manifest.

    Attributes:
        file: the photo's path relative to the photo set folder.
        split: one of :data:`SPLITS`.
        source: the source's name (the package name, or a shared folder's name).
        package, version: the package the photo comes from and the version used.
        path: the photo's path inside the package (``bundle.rcc!inner/path`` for a file of a
            Qt resource bundle).
        licence: the licence of that file, from the package's copyright file or metadata.
        width, height: the original's size in pixels.
        subject: people, animals, food, plants, objects, vehicles, buildings and streets,
            landscapes or interiors.
        phash: the 64-bit perceptual hash (:func:`phash`) as 16 hex digits.
    """

    file: str
    split: str
    source: str
    package: str
    version: str
    path: str
    licence: str
    width: int
    height: int
    subject: str
    phash: str


MANIFEST_FIELDS = tuple(f.name for f in fields(PhotoRecord))


def read_manifest(path: Path) -> list[PhotoRecord]:
    """The rows of a manifest CSV.

    Raises:
        UsageError: the file is missing, lacks a column or has an unknown split.
    """
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [name for name in MANIFEST_FIELDS if name not in (reader.fieldnames or [])]
            if missing:
                raise UsageError(f"{path}: not a photo set manifest (no {', '.join(missing)})")
            rows = list(reader)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the manifest ({exc.strerror})") from exc
    records = []
    for line, row in enumerate(rows, start=2):
        if row["split"] not in SPLITS:
            raise UsageError(f"{path}:{line}: unknown split {row['split']!r}")
        records.append(
            PhotoRecord(
                **{k: row[k] for k in MANIFEST_FIELDS if k not in ("width", "height")},
                width=int(row["width"]),
                height=int(row["height"]),
            )
        )
    return records


def write_manifest(path: Path, records: Iterable[PhotoRecord]) -> None:
    """Write ``records`` as a manifest CSV (through a ``.part`` file, then renamed)."""
    with atomic.writing(path) as part, open(part, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(MANIFEST_FIELDS)
        for record in records:
            writer.writerow([getattr(record, name) for name in MANIFEST_FIELDS])


def select(
    records: Sequence[PhotoRecord], splits: Sequence[str], sources: Sequence[str] = ()
) -> list[PhotoRecord]:
    """The records of the given splits (and, when given, sources), in manifest order.

    Raises:
        UsageError: an unknown split, or nothing selected.
    """
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise UsageError(f"unknown split {unknown[0]!r} (choose from {', '.join(SPLITS)})")
    chosen = [r for r in records if r.split in splits and (not sources or r.source in sources)]
    if not chosen:
        where = f" of source {', '.join(sources)}" if sources else ""
        raise UsageError(f"the manifest has no photo in split {', '.join(splits)}{where}")
    return chosen


def manifest_photos(
    manifest: Path,
    root: Path | None = None,
    splits: Sequence[str] = ("train",),
    sources: Sequence[str] = (),
) -> list[tuple[Path, PhotoRecord]]:
    """The photo files of a manifest's splits (and sources), with their records.

    Args:
        manifest: the manifest CSV.
        root: the photo set folder its ``file`` paths start from (default: its own folder).
        splits, sources: as for :func:`select`.
    """
    base = manifest.parent if root is None else root
    return [(base / r.file, r) for r in select(read_manifest(manifest), splits, sources)]


# ---------------------------------------------------------------------------------------------
# The test-domain guard


@lru_cache(maxsize=1)
def _test_domain() -> tuple[np.ndarray, tuple[str, ...]]:
    hashes: list[int] = []
    names: list[str] = []
    for line in TEST_DOMAIN_HASHES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            value, name = line.split(maxsplit=1)
            hashes.append(int(value, 16))
            names.append(name)
    return np.array(hashes, dtype=np.uint64), tuple(names)


def find_test_domain_copy(image: np.ndarray) -> str | None:
    """The test-domain image that ``image`` is a copy of (``package: path``), or None (also
    for a flat image: see :func:`has_content`).

    Args:
        image: as for :func:`phash`.
    """
    return find_test_domain_hash(phash(image)) if has_content(image) else None


def find_test_domain_hash(value: int) -> str | None:
    """The test-domain image whose pHash is within :data:`SAME_PHOTO_BITS` of ``value``."""
    hashes, names = _test_domain()
    if not len(hashes):
        return None
    diff = np.bitwise_xor(hashes, np.uint64(value))
    bits = np.unpackbits(diff.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
    best = int(np.argmin(bits))
    return names[best] if bits[best] <= SAME_PHOTO_BITS else None


def is_test_domain_copy(path: Path, image: np.ndarray) -> bool:
    """Whether ``image`` (read from ``path``) is a copy of a test-domain image; a copy is
    logged as a warning that names the file and the image it copies, and is to be left out.

    >>> is_test_domain_copy(Path("flat.png"), np.full((64, 64, 3), 128, np.uint8))
    False
    """
    match = find_test_domain_copy(image)
    if match is None:
        return False
    logger.warning(
        "%s: left out, a copy of the test-domain image %s (the test domain, %s, is never "
        "trained on or used to pick a checkpoint)",
        path,
        match,
        ", ".join(TEST_DOMAIN_PACKAGES),
    )
    return True
