"""atomic: a file is written whole under its final name or not at all, and no .part stays."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from deoldify_video import atomic
from deoldify_video.train.photoset import PhotoRecord, read_manifest, write_manifest


def test_writing_puts_the_file_in_place_under_its_final_name(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with atomic.writing(target) as part:
        assert part.parent == tmp_path and part.name == f"out.bin.{os.getpid()}.part"
        part.write_bytes(b"whole")
        assert not target.exists()  # nothing under the final name before the block ends
    assert target.read_bytes() == b"whole"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_a_failure_keeps_the_old_file_and_removes_the_part(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError, match="disk gone"), atomic.writing(target) as part:
        part.write_text("half of the n")
        raise RuntimeError("disk gone")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["manifest.json"]


def test_a_block_that_writes_nothing_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic.writing(tmp_path / "never"):
        pass
    assert os.listdir(tmp_path) == []


def test_write_bytes_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "list.txt"
    atomic.write_bytes(target, b"one")
    atomic.write_bytes(target, b"two")
    assert target.read_bytes() == b"two"


def test_commit_keeps_its_name_and_data(tmp_path: Path) -> None:
    part = tmp_path / "frame.tif.part"
    part.write_bytes(b"pixels")
    atomic.commit(part, tmp_path / "frame.tif", sync_dir=False)
    assert os.listdir(tmp_path) == ["frame.tif"]


def test_remove_parts_takes_names_literally(tmp_path: Path) -> None:
    for name in ("a[1].mkv.7.part", "a1.mkv.7.part", "segment-00001.nut.3.part", "keep.mkv"):
        (tmp_path / name).write_bytes(b"")
    atomic.remove_parts(tmp_path, "a[1].mkv.")
    assert sorted(os.listdir(tmp_path)) == ["a1.mkv.7.part", "keep.mkv", "segment-00001.nut.3.part"]
    atomic.remove_parts(tmp_path)
    assert os.listdir(tmp_path) == ["keep.mkv"]


def _record(name: str) -> PhotoRecord:
    return PhotoRecord(
        **{
            **dict.fromkeys(PhotoRecord.__dataclass_fields__, name),
            "split": "train",
            "width": 4,
            "height": 3,
        }
    )


def test_a_photo_set_manifest_cut_short_leaves_the_old_one(tmp_path: Path) -> None:
    manifest = tmp_path / "photos.csv"
    old = [_record("a")]
    write_manifest(manifest, old)

    def records() -> Iterator[PhotoRecord]:
        yield _record("b")
        raise OSError("source vanished")

    with pytest.raises(OSError, match="source vanished"):
        write_manifest(manifest, records())
    assert read_manifest(manifest) == old
    assert os.listdir(tmp_path) == ["photos.csv"]
