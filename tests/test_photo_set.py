"""The photo set: filters, perceptual hashes, package readers, the manifest and the
test-domain guard of the training loader. Synthetic images only; no network."""

from __future__ import annotations

import csv
import json
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from deoldify_video.errors import UsageError
from deoldify_video.train import photoset
from deoldify_video.train.data import ColorizationData, list_images, load_image
from deoldify_video.train.nogan import TrainConfig, train
from deoldify_video.train.photoset import (
    SAME_PHOTO_BITS,
    SPLITS,
    TEST_DOMAIN_PACKAGES,
    PhotoRecord,
    hamming,
    phash,
    read_manifest,
    select,
    write_manifest,
)
from tools import build_photo_set as builder
from tools.package_files import (
    Package,
    debian_licence,
    download_command,
    read_debian_copyright,
    read_rcc,
    wheel_licence,
)
from tools.photo_filters import Thresholds, measure, reject_reason

REPO = Path(__file__).resolve().parents[1]


def fake_photo(seed: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A photo-like ``(H, W, 3)`` uint8 image: smooth random colour fields, texture, noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(3):
        field = cv2.resize(rng.uniform(0, 1, (6, 8)).astype(np.float32), (w, h))
        texture = cv2.GaussianBlur(rng.uniform(0, 1, (h, w)).astype(np.float32), (0, 0), 1)
        layers.append(0.75 * field + 0.25 * texture)
    rgb = np.stack(layers, axis=-1) * 255.0 + rng.normal(0.0, 5.0, (h, w, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def clip_art(size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """Flat colour shapes on a flat mid-grey background, like a drawing or a diagram."""
    w, h = size
    img = np.full((h, w, 3), 150, np.uint8)
    cv2.rectangle(img, (20, 20), (150, 120), (200, 40, 40), -1)
    cv2.circle(img, (230, 150), 60, (40, 60, 200), -1)
    cv2.rectangle(img, (40, 150), (140, 220), (250, 220, 30), -1)
    return img


def save(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


# --- filters ---------------------------------------------------------------------------------


def test_a_photo_passes_every_filter() -> None:
    assert reject_reason(measure(fake_photo(0))) is None


def test_each_filter_names_its_reason() -> None:
    photo = fake_photo(1)
    assert reject_reason(measure(cv2.resize(photo, (240, 150)))) == "tiny"
    alpha = np.full(photo.shape[:2], 255, np.uint8)
    alpha[:60] = 0
    assert reject_reason(measure(photo, alpha)) == "cut-out"
    grey = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    assert reject_reason(measure(grey)) == "near-grey"
    ycc = cv2.cvtColor(photo, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    ycc[:, :, 0] = 128.0 + (ycc[:, :, 0] - 128.0) / 8.0
    low_contrast = cv2.cvtColor(ycc.round().astype(np.uint8), cv2.COLOR_YCrCb2RGB)
    assert reject_reason(measure(low_contrast)) == "near-flat"
    assert reject_reason(measure(clip_art())) == "clip-art"
    assert reject_reason(measure(clip_art()), clip_art=False) is None


def test_white_studio_background_is_not_a_flat_fill() -> None:
    photo = np.full((240, 320, 3), 255, np.uint8)
    photo[60:180, 80:240] = fake_photo(2, (160, 120))
    stats = measure(photo)
    assert stats.flat < Thresholds().max_flat
    assert reject_reason(stats) is None


def test_measure_refuses_what_is_not_rgb_uint8() -> None:
    with pytest.raises(ValueError, match="uint8"):
        measure(np.zeros((8, 8, 3), np.float32))


# --- perceptual hash -------------------------------------------------------------------------


def test_phash_sees_copies_and_tells_photos_apart(tmp_path: Path) -> None:
    photo = fake_photo(3, (640, 480))
    small = cv2.resize(photo, (200, 150), interpolation=cv2.INTER_AREA)
    jpeg = tmp_path / "copy.jpg"
    Image.fromarray(small).save(jpeg, quality=40)
    copy = np.asarray(Image.open(jpeg))
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    brighter = np.clip(photo.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    value = phash(photo)
    for twin in (copy, grey, brighter, photo.astype(np.float32) / 255.0):
        assert hamming(value, phash(twin)) <= SAME_PHOTO_BITS
    others = [hamming(value, phash(fake_photo(seed, (640, 480)))) for seed in range(10, 20)]
    assert min(others) > SAME_PHOTO_BITS
    assert 0 <= value < 2**64


def test_phash_refuses_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"got \(8, 8, 4\)"):
        phash(np.zeros((8, 8, 4), np.uint8))


# --- package readers -------------------------------------------------------------------------


def make_rcc(entries: dict[str, tuple[bytes, bool]]) -> bytes:
    """A version-2 Qt resource bundle: ``{"dir/name": (content, compress)}``, one level deep."""
    names = bytearray()
    name_offsets: dict[str, int] = {}

    def name(text: str) -> int:
        if text not in name_offsets:
            name_offsets[text] = len(names)
            encoded = text.encode("utf-16-be")
            names.extend(struct.pack(">HI", len(text), 0) + encoded)
        return name_offsets[text]

    data = bytearray()
    folders: dict[str, list[tuple[str, int, int]]] = {}
    for path, (content, compress) in entries.items():
        folder, _, leaf = path.rpartition("/")
        blob = struct.pack(">I", len(content)) + zlib.compress(content) if compress else content
        folders.setdefault(folder, []).append((leaf, len(data), 1 if compress else 0))
        data.extend(struct.pack(">I", len(blob)) + blob)
    top = [f for f in folders if f]
    root_files = folders.get("", [])
    # Node 0 is the root; its children (the folders, then its files) follow; then the files
    # of each folder, each folder's children contiguous.
    nodes = [struct.pack(">IHII", 0, 2, len(top) + len(root_files), 1) + bytes(8)]
    child = 1 + len(top) + len(root_files)
    for folder in top:
        nodes.append(struct.pack(">IHII", name(folder), 2, len(folders[folder]), child) + bytes(8))
        child += len(folders[folder])
    for leaf, offset, flags in root_files + [leaf for f in top for leaf in folders[f]]:
        nodes.append(struct.pack(">IHHHI", name(leaf), flags, 0, 0, offset) + bytes(8))
    tree = b"".join(nodes)
    header = 20
    return (
        b"qres"
        + struct.pack(">IIII", 2, header, header + len(tree), header + len(tree) + len(data))
        + tree
        + bytes(data)
        + bytes(names)
    )


def test_read_rcc_lists_files_and_inflates_compressed_ones() -> None:
    png = b"\x89PNG fake" * 20
    bundle = make_rcc(
        {"top.txt": (b"hello", False), "img/a.png": (png, True), "img/b.jpg": (b"jpeg", False)}
    )
    assert dict(read_rcc(bundle)) == {"top.txt": b"hello", "img/a.png": png, "img/b.jpg": b"jpeg"}
    with pytest.raises(ValueError, match="qres"):
        list(read_rcc(b"not a bundle"))


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: the authors
License: GPL-3+

Files: src/activities/images/fish1.jpg
Copyright: someone
License: CC-BY-SA-3.0
 Comment on the licence.

Files: 16.04/Bridge_by_someone.jpg
License: CC0-1.0

Files: debian/*
License: GPL-3+
"""


def test_debian_copyright_gives_each_installed_file_its_licence() -> None:
    stanzas = read_debian_copyright(COPYRIGHT)
    bundle = "usr/share/game/rcc/x.rcc!/game/src/activities/images/fish1.webp"
    assert debian_licence(stanzas, bundle) == "CC-BY-SA-3.0"  # a tail, converted to webp
    assert debian_licence(stanzas, "usr/share/backgrounds/Bridge_by_someone.jpg") == "CC0-1.0"
    assert debian_licence(stanzas, "usr/share/game/images/fish10.webp") == "GPL-3+"
    assert read_debian_copyright("This package was debianized by someone.\n") == []


def test_wheel_licence_reads_the_metadata(tmp_path: Path) -> None:
    info = tmp_path / "pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.4\nName: pkg\nLicense-Expression: MIT\n")
    assert wheel_licence(tmp_path) == "MIT"
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: pkg\n"
        "Classifier: License :: OSI Approved :: BSD License\n"
        "Classifier: Programming Language :: Python\n"
    )
    assert wheel_licence(tmp_path) == "BSD License"


def test_download_commands_pin_the_version(tmp_path: Path) -> None:
    deb = download_command(Package("deb", "mate-backgrounds", "1.26.0-1"), tmp_path)
    assert deb == ["apt-get", "download", "-q", "mate-backgrounds=1.26.0-1"]
    wheel = download_command(Package("pypi", "imgaug", "0.4.0"), tmp_path)
    assert wheel[1:4] == ["-m", "pip", "download"] and wheel[-1] == "imgaug==0.4.0"
    assert "--no-deps" in wheel and str(tmp_path) in wheel
    with pytest.raises(ValueError, match="kind"):
        download_command(Package("npm", "x", "1"), tmp_path)


def test_output_names_are_short_and_unique() -> None:
    taken: set[str] = set()
    first = builder.out_name("usr/share/a/images/cat.webp", taken)
    taken.add(first)
    second = builder.out_name("usr/share/b/images/cat.png", taken)
    assert first == "cat.jpg" and second == "b_cat.jpg"
    assert builder.out_name("x.rcc!/bg washington.jpg", set()) == "bg_washington.jpg"


# --- building from a folder ------------------------------------------------------------------


def test_build_keeps_photos_drops_the_rest_and_is_idempotent(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    folder = shared / "pkg"
    photo = fake_photo(4, (1024, 768))
    save(folder / "a_photo.png", photo)
    save(folder / "b_copy.png", cv2.resize(photo, (400, 300), interpolation=cv2.INTER_AREA))
    save(folder / "c_grey.png", cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
    save(folder / "d_tiny.png", fake_photo(5, (150, 100)))
    save(folder / "e_drawing.png", clip_art())
    save(folder / "f_other.webp", fake_photo(6))
    save(folder / "skip_me.png", fake_photo(7))
    source = builder.Source(
        Package("deb", "pkg", "1.0-1"),
        "train",
        include=("*",),
        exclude=("skip_*",),
        subjects=(("*other*", "plants"),),
        subject="objects",
        licence="CC0-1.0",
        shared="pkg",
    )
    out = tmp_path / "out"
    records, rejected, guarded = builder.build((source,), out, tmp_path / "cache", shared)
    assert guarded == []  # no test-domain source

    assert [r.path for r in records] == ["a_photo.png", "f_other.webp"]
    assert {r.path: r.reason.split(" ")[0] for r in rejected} == {
        "b_copy.png": "duplicate",
        "c_grey.png": "near-grey",
        "d_tiny.png": "tiny",
        "e_drawing.png": "clip-art",
    }
    first = records[0]
    assert first.file == "train/pkg/a_photo.jpg" and first.split == "train"
    assert (first.width, first.height, first.licence) == (1024, 768, "CC0-1.0")
    assert [r.subject for r in records] == ["objects", "plants"]
    with Image.open(out / first.file) as img:
        assert img.format == "JPEG" and img.size == (512, 384)

    manifest = tmp_path / "set.csv"
    write_manifest(manifest, records)
    stamp = (out / first.file).stat().st_mtime_ns
    again, _, _ = builder.build((source,), out, tmp_path / "cache", shared)
    assert again == records
    assert (out / first.file).stat().st_mtime_ns == stamp  # not written again
    save(out / "train" / "pkg" / "stale.jpg", photo)
    assert builder.prune(out, again) == [out / "train" / "pkg" / "stale.jpg"]


def test_test_domain_images_never_reach_training(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    photo, other = fake_photo(8, (640, 480)), fake_photo(11, (640, 480))
    save(shared / "train_pkg" / "copy.jpg", photo)
    save(shared / "train_pkg" / "other_copy.png", cv2.resize(other, (320, 240)))
    save(shared / "train_pkg" / "own.png", fake_photo(12))
    save(shared / "test_pkg" / "orig.png", photo)
    save(shared / "test_pkg" / "left_out.png", other)  # not in the test split, still guarded
    save(shared / "test_pkg" / "icon.png", fake_photo(13, (48, 48)))
    save(shared / "test_pkg" / "blank.png", np.full((100, 100, 3), 255, np.uint8))
    sources = (
        builder.Source(
            Package("deb", "train_pkg", "1"), "train", ("*",), licence="MIT", shared="train_pkg"
        ),
        builder.Source(
            Package("pypi", "test_pkg", "1"),
            "test-domain",
            ("*",),
            exclude=("*left_out*",),
            licence="MIT",
            shared="test_pkg",
        ),
    )
    records, rejected, guarded = builder.build(
        sources, tmp_path / "out", tmp_path / "cache", shared
    )
    assert [(r.split, r.path) for r in records] == [
        ("test-domain", "orig.png"),
        ("train", "own.png"),
    ]
    reasons = {r.path: r.reason for r in rejected}
    assert reasons["copy.jpg"] == "copy of the test-domain image test_pkg: orig.png"
    assert reasons["other_copy.png"] == "copy of the test-domain image test_pkg: left_out.png"
    # The icon is too small and the blank page has no content to recognise.
    assert [g.path for g in guarded] == ["left_out.png", "orig.png"]
    hashes = tmp_path / "hashes.txt"
    builder.write_test_domain_hashes(guarded, hashes)
    assert hashes.read_text().splitlines()[1] == f"{phash(other):016x} test_pkg: left_out.png"


# --- manifest, loader and guard --------------------------------------------------------------


def record(file: str, split: str, source: str) -> PhotoRecord:
    return PhotoRecord(file, split, source, source, "1.0", "p/" + file, "MIT", 640, 480, "", "")


def test_manifest_round_trip_and_selection(tmp_path: Path) -> None:
    rows = [
        record("train/a/1.jpg", "train", "a"),
        record("val-source/b/2.jpg", "val-source", "b"),
        record("val-source/c/3.jpg", "val-source", "c"),
        record("test-domain/d/4.jpg", "test-domain", "d"),
    ]
    manifest = tmp_path / "set.csv"
    write_manifest(manifest, rows)
    assert read_manifest(manifest) == rows
    assert [r.source for r in select(rows, ("val-source",))] == ["b", "c"]
    assert [r.source for r in select(rows, ("val-source",), ["c"])] == ["c"]
    with pytest.raises(UsageError, match="unknown split"):
        select(rows, ("validation",))
    with pytest.raises(UsageError, match="no photo"):
        select(rows, ("train",), ["b"])
    root = tmp_path / "photos"
    assert list_images(manifest, root) == [root / "train/a/1.jpg"]
    assert list_images(manifest, root, splits=("test-domain",)) == [root / "test-domain/d/4.jpg"]


def test_manifest_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("file,split\nx.jpg,train\n")
    with pytest.raises(UsageError, match=r"bad\.csv: not a photo set manifest"):
        read_manifest(bad)
    wrong = tmp_path / "wrong.csv"
    write_manifest(wrong, [record("x.jpg", "train", "a")])
    wrong.write_text(wrong.read_text().replace(",train,", ",holdout,"))
    with pytest.raises(UsageError, match=r"wrong\.csv:2: unknown split"):
        read_manifest(wrong)
    with pytest.raises(UsageError, match="cannot read"):
        read_manifest(tmp_path / "missing.csv")


@pytest.fixture
def registered_photo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[np.ndarray]:
    """A synthetic photo registered as the only test-domain photo; returns it."""
    photo = fake_photo(9, (480, 360))
    hashes = tmp_path / "hashes.txt"
    hashes.write_text(f"# test\n{phash(photo):016x} opencv-doc: examples/data/fake.png\n")
    monkeypatch.setattr(photoset, "TEST_DOMAIN_HASHES", hashes)
    photoset._test_domain.cache_clear()
    yield photo
    photoset._test_domain.cache_clear()


def test_loader_leaves_out_a_renamed_copy_of_a_test_domain_photo(
    tmp_path: Path, registered_photo: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "mine"
    good = save(folder / "good.png", fake_photo(10))
    grey_copy = cv2.cvtColor(cv2.resize(registered_photo, (300, 225)), cv2.COLOR_RGB2GRAY)
    copy = save(folder / "holiday.jpg", grey_copy)
    flat = save(folder / "flat.png", np.full((64, 64, 3), 128, np.uint8))
    assert photoset.find_test_domain_copy(np.asarray(Image.open(flat))) is None
    data = ColorizationData([good, copy], max_side=128)
    assert len(data.photos) == 1 and np.array_equal(data.photos[0], load_image(good, 128)[0])
    assert re.search(r"holiday\.jpg: left out, a copy of the test-domain image opencv", caplog.text)
    # a folder of nothing but the copy (and a grey image) leaves nothing to train on
    alone = tmp_path / "alone"
    save(alone / "holiday.jpg", grey_copy)
    with pytest.raises(UsageError, match="no opaque colour photo"):
        train(TrainConfig(data=alone, out=tmp_path / "x.pt", steps=1))
    # nor to choose the checkpoint with: the copy is not scored
    listing = tmp_path / "good.txt"
    listing.write_text(f"{good}\n")
    val = tmp_path / "val.txt"
    val.write_text(f"{copy}\n{good}\n")
    caplog.clear()
    out = tmp_path / "x.pt"
    train(TrainConfig(data=listing, val=val, out=out, steps=1, size=64, batch_size=2))
    history = (Path(f"{out}.train") / "history.jsonl").read_text().splitlines()
    assert history and all(json.loads(line)["count"] == 1 for line in history)
    assert "holiday.jpg: left out" in caplog.text


def test_shipped_test_domain_hashes_cover_the_test_split() -> None:
    manifest = read_manifest(REPO / "tools" / "photo_set.csv")
    test = [r for r in manifest if r.split == "test-domain"]
    lines = [
        line.split(" ", 1)
        for line in photoset.TEST_DOMAIN_HASHES.read_text().splitlines()
        if not line.startswith("#")
    ]
    shipped = {(h, name) for h, name in lines}
    assert {r.phash for r in test} <= {h for h, _ in shipped}
    assert len(shipped) > len(test)  # every image of those packages, not only the photos
    assert {name.split(":")[0] for _, name in shipped} == set(TEST_DOMAIN_PACKAGES)
    assert {r.package for r in test} == set(TEST_DOMAIN_PACKAGES)
    assert {r.split for r in manifest} == set(SPLITS)
    held_out = [r for r in manifest if r.split == "val-source"]
    assert len({r.source for r in held_out}) >= 3
    assert not {r.source for r in held_out} & {r.source for r in manifest if r.split == "train"}
    for r in manifest:  # and no photo of the other splits is a copy of one of them
        if r.split != "test-domain":
            assert photoset.find_test_domain_hash(int(r.phash, 16)) is None, r.file


def test_evaluate_a_manifest_split_by_source(tmp_path: Path) -> None:
    root = tmp_path / "set"
    rows = []
    for i, (split, source) in enumerate(
        [("val-source", "a"), ("val-source", "b"), ("train", "c"), ("val-source", "b")]
    ):
        file = f"{split}/{source}/{i}.jpg"
        save(root / file, fake_photo(20 + i, (160, 120)))
        rows.append(record(file, split, source))
    manifest = tmp_path / "set.csv"
    write_manifest(manifest, rows)
    proc = subprocess.run(
        [sys.executable, "-m", "deoldify_video", "evaluate", "--images", str(manifest)]
        + ["--root", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["count"] == 3
    assert {k: v["count"] for k, v in summary["by_source"].items()} == {"a": 1, "b": 2}
    assert [i["source"] for i in summary["images"]] == ["a", "b", "b"]
    one = subprocess.run(
        [sys.executable, "-m", "deoldify_video", "evaluate", "--images", str(manifest)]
        + ["--root", str(root), "--split", "train", "--source", "x"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 2 and "no photo in split train of source x" in one.stderr
    assert "Traceback" not in one.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "deoldify_video", "evaluate", "--images", str(manifest)]
        + ["--root", str(root), "--split", "holdout"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "unknown split 'holdout'" in bad.stderr
    unbuilt = subprocess.run(
        [sys.executable, "-m", "deoldify_video", "evaluate", "--images", str(manifest)]
        + ["--root", str(tmp_path / "elsewhere")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert unbuilt.returncode == 2 and "3 listed photos not found" in unbuilt.stderr
    assert "tools/build_photo_set.py" in unbuilt.stderr


def test_manifest_rows_are_csv_with_the_documented_columns() -> None:
    with open(REPO / "tools" / "photo_set.csv", newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == photoset.MANIFEST_FIELDS
