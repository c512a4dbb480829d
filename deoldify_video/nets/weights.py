"""Weight files: where they live, how they are fetched, and how they are loaded safely.

The only module of :mod:`deoldify_video.nets` that touches the disk or the network.

* Shipped weights live in :func:`~deoldify_video.nets.registry.shipped_models_dir`; downloadable
  ones in :func:`cache_dir` (``$DEOLDIFY_VIDEO_HOME``, else ``$XDG_CACHE_HOME/deoldify-video``,
  else ``~/.cache/deoldify-video``).
* :func:`download_weights` writes ``<file>.part``, resumes it with an HTTP ``Range`` request
  after an interruption, checks it (size and sha256 when pinned, then keys and shapes against
  the architecture) and only then renames it to its final name. A copy the user already holds
  (a local path or ``file://`` URL) goes through the same checks into the cache.
* Files are read with ``torch.load(weights_only=True)`` (memory-mapped when the file is in the
  zip format), so no code from a weights file ever runs. Accepted layouts: a bare state dict, or
  fastai's learner save ``{"model": state_dict, "opt": optimizer_state}`` as DeOldify writes
  it. Float tensors are cast to the model's dtype (fp16 files load into float32 models).
* Every failure is a :class:`~deoldify_video.errors.WeightsError` that says what is wrong: an
  HTML page saved instead of the file, a truncated file, a file of another architecture (with
  the missing and unexpected keys by name), a checksum mismatch.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import logging
import os
import pickle
import re
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import atomic
from ..checksum import sha256_of
from ..errors import ModelNotFoundError, WeightsError
from ..types import ProgressCallback, ProgressEvent
from . import registry
from .registry import ModelSpec

logger = logging.getLogger(__name__)

ByteCount = Callable[[int, int | None], None]  # (bytes done, bytes in all or None)

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80
_CHUNK = 1 << 20
_ATTEMPTS = 4
_TIMEOUT_S = 60.0
_USER_AGENT = "deoldify-video (+https://github.com/jantic/DeOldify weights)"
_LIST_LIMIT = 8
# File extensions of weights files, by which a --model value is known to be a path.
WEIGHTS_SUFFIXES = (".pth", ".pt", ".pkl", ".bin", ".ckpt", ".safetensors")


def cache_dir() -> Path:
    """Folder for downloaded weights (not created here)."""
    home = os.environ.get("DEOLDIFY_VIDEO_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "deoldify-video"


def weights_location(spec: ModelSpec) -> Path:
    """Where ``spec``'s weights file is expected: the shipped folder or the cache."""
    folder = registry.shipped_models_dir() if spec.shipped else cache_dir()
    return folder / spec.weights_file


def installed_weights() -> list[tuple[ModelSpec, Path, int]]:
    """Every registered model whose weights file is present: (spec, path, size in bytes)."""
    found = []
    for name in registry.list_models():
        spec = registry.get_spec(name)
        path = weights_location(spec)
        if path.is_file():
            found.append((spec, path, path.stat().st_size))
    return found


# --------------------------------------------------------------------------- reading files


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file safely and return its state dict (tensors on the CPU).

    Raises:
        WeightsError: missing, empty, an HTML page, truncated or corrupt, holding Python
            objects other than tensors and containers, or not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head:
        raise WeightsError(f"weights file {path} is empty")
    is_zip = head.startswith(_ZIP_MAGIC)
    if not is_zip and head[0] != _PICKLE_PROTO:
        if _looks_like_html(head):
            raise WeightsError(
                f"{path} is an HTML page, not a weights file (a web page, such as an error, "
                "sign-in or preview page, was saved instead of the file)"
            )
        raise WeightsError(f"{path} is not a PyTorch weights file (unknown format)")
    try:
        with torch.serialization.safe_globals([slice]):
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise WeightsError(
                f"{path} holds Python objects besides tensors; it is not loaded, because "
                "loading it could run code from the file"
            ) from exc
        raise WeightsError(f"{path} is truncated or corrupt ({_first_line(exc)})") from exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, struct.error) as exc:
        # a legacy (non-zip) file cut short fails inside the unpickler, as any of these
        raise WeightsError(f"{path} is truncated or corrupt ({_first_line(exc)})") from exc
    return unwrap_learner_save(obj, str(path))


def unwrap_learner_save(obj: Any, source: str = "weights") -> dict[str, torch.Tensor]:
    """The model state dict inside a loaded weights object.

    Accepts a bare state dict or fastai's ``Learner.save`` layout ``{"model": ..., "opt": ...}``
    (the optimizer part is ignored).

    Raises:
        WeightsError: ``obj`` is neither.
    """
    if isinstance(obj, Mapping) and "model" in obj and set(obj) <= {"model", "opt"}:
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{source} does not hold a state dict (found {type(obj).__name__})")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise WeightsError(
            f"{source} is not a state dict: entries that are not named tensors: {_names(bad)}"
        )
    return dict(obj)


def check_structure(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], source: str
) -> None:
    """Compare a state dict's keys and shapes with a model's.

    Args:
        state: the loaded state dict.
        expected: the model's ``state_dict()`` (meta tensors are fine).
        source: what to call ``state`` in the message.

    Raises:
        WeightsError: naming the missing keys, the unexpected keys and the shape mismatches.
    """
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_names(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches: {_names(shapes)}")
    if problems:
        raise WeightsError(f"{source} does not fit this architecture: " + "; ".join(problems))


def expected_bytes(spec: ModelSpec) -> int:
    """Bytes of ``spec``'s tensors as the network holds them (float32): about the size of an
    unpinned weights file, which stores them so."""
    return sum(t.numel() * t.element_size() for t in expected_state(spec).values())


def expected_state(
    spec: ModelSpec, state: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """The keys, shapes and dtypes of ``spec``'s network, as meta tensors (no memory used):
    of the network ``state`` loads into (:meth:`ModelSpec.builder_for`) when given."""
    return _layout(spec.builder if state is None else spec.builder_for(state))


@functools.cache
def _layout(builder: Callable[[], nn.Module]) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return dict(builder().state_dict())


def identify_weights(
    path: str | Path, state: Mapping[str, torch.Tensor] | None = None
) -> ModelSpec:
    """The registered model whose architecture fits a weights file.

    Specs sharing an architecture (DeOldify's video and stable generators) are told apart by
    the file name (``ColorizeVideo_gen`` in it); when the name says nothing the caller must say
    which (their input sizes differ, so taking either would be a guess).

    Raises:
        WeightsError: the file is unreadable, fits no registered architecture, or fits several
            and its name does not tell which (the message shows ``--model NAME --weights``).
    """
    path = Path(path)
    state = read_state_dict(path) if state is None else state
    specs = [registry.get_spec(name) for name in registry.list_models()]
    matches = []
    for spec in specs:
        expected = expected_state(spec, state)
        if set(expected) == set(state) and all(
            state[k].shape == v.shape for k, v in expected.items()
        ):
            matches.append(spec)
    if not matches:
        known = ", ".join(spec.name for spec in specs)
        raise WeightsError(f"{path} fits none of the known architectures ({known})")
    named = [m for m in matches if Path(m.weights_file).stem.lower() in path.name.lower()]
    if len(named) == 1 or len(matches) == 1:
        return (named or matches)[0]
    choices = " or ".join(f"--model {spec.name} --weights {path}" for spec in matches)
    raise WeightsError(
        f"{path} fits {' and '.join(spec.name for spec in matches)} (one architecture, "
        f"different input sizes) and its name does not tell which; say it: {choices}"
    )


# --------------------------------------------------------------------------- loading models


def load_network(
    name_or_path: str | Path,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> tuple[ModelSpec, nn.Module]:
    """Build a registered network and load its weights; see :func:`load_model`.

    Returns:
        (the model's spec, the network in eval mode on ``device``).
    """
    spec, path, state = _resolve(name_or_path, weights)
    check_structure(state, expected_state(spec, state), str(path))
    model = _materialise(spec, state)
    logger.info("loaded %s weights from %s", spec.name, path)
    return spec, model.to(device).eval()


def load_model(
    name_or_path: str, weights: str | Path | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """A network with its weights, in eval mode.

    Args:
        name_or_path: a registry name (``"video"``, ``"stable"``, ``"artistic"``, ``"lite"``,
            ``"default"``) or the path of a weights file whose architecture is recognised
            from its keys.
        weights: a weights file to use instead of the registered one (for a registry name).
        device: torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).

    Returns:
        The network; for the DeOldify generators ``(N, 3, S, S)`` normalised grey in,
        ``(N, 3, S, S)`` normalised RGB out (see :mod:`deoldify_video.deoldify_policy`).

    Raises:
        ModelNotFoundError: the name is neither registered nor an existing file.
        WeightsError: the weights are missing, unreadable, of another architecture or fail
            their checksum.
    """
    return load_network(name_or_path, weights, device)[1]


def _resolve(
    name_or_path: str | Path, weights: str | Path | None
) -> tuple[ModelSpec, Path, dict[str, torch.Tensor]]:
    name = str(name_or_path)
    registered = name in registry.list_models() or name == "default"
    if weights is not None and not registered:
        known = ", ".join(registry.list_models())
        raise ModelNotFoundError(
            f"--weights {weights} goes with a model name ({known}), not with {name!r}"
        )
    if not registered and _looks_like_path(name):
        path = Path(name).expanduser()
        if path.is_dir():
            raise WeightsError(f"{path}: is a folder, not a weights file")
        if not path.is_file():
            raise WeightsError(f"{path}: no such file")
        state = read_state_dict(path)
        return identify_weights(path, state), path, state
    if registered or not Path(name).is_file():
        spec = registry.get_spec(name)
        if weights is not None:
            path = Path(weights)
            return spec, path, read_state_dict(path)
        path = weights_location(spec)
        if not path.is_file():
            hint = (
                f"run `deoldify-video models download {spec.name}`"
                if not spec.shipped
                else "the installation is incomplete"
            )
            raise WeightsError(f"weights of model {spec.name!r} not found at {path}: {hint}")
        if spec.sha256:
            digest = sha256_of(path)
            if digest != spec.sha256:
                raise WeightsError(
                    f"{path} fails its checksum (sha256 {digest}, expected {spec.sha256}); "
                    "delete it and download it again"
                )
        return spec, path, read_state_dict(path)
    path = Path(name)
    state = read_state_dict(path)
    return identify_weights(path, state), path, state


def _looks_like_path(name: str) -> bool:
    """A ``--model`` value that names a file rather than a model: it has a folder part, starts
    with ``~`` or ends like a weights file."""
    return (
        "/" in name
        or os.sep in name
        or name.startswith("~")
        or Path(name).suffix.lower() in WEIGHTS_SUFFIXES
    )


def _materialise(spec: ModelSpec, state: dict[str, torch.Tensor]) -> nn.Module:
    """Build ``spec``'s network directly on ``state``'s tensors (no random initialisation)."""
    builder = spec.builder_for(state)
    expected = _layout(builder)
    state = {
        k: v.to(expected[k].dtype) if v.is_floating_point() and v.dtype != expected[k].dtype else v
        for k, v in state.items()
    }
    with torch.device("meta"):
        model = builder()
    model.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        # A tensor outside the state dict (a non-persistent buffer) needs a real build.
        model = builder()
        model.load_state_dict(state, strict=True)
    return model


def weights_digest(model: nn.Module) -> str:
    """sha256 of a network's state: every tensor's name, dtype, shape and bytes, in name order.

    The same weights give the same digest whatever file, device or memory layout they came
    from.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{data.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- downloading


class _Interrupted(Exception):
    """The connection ended before the whole file arrived; the .part file can be resumed."""


class _Unreachable(Exception):
    """The server could not be reached at all (no network, unknown host, refused)."""


def download_weights(
    spec: ModelSpec, progress: ProgressCallback | None = None, url: str | None = None
) -> Path:
    """Fetch ``spec``'s weights into :func:`cache_dir` and return the file's path.

    An existing complete file is returned as is. The download goes to ``<file>.part`` and
    resumes it (HTTP ``Range``) when a previous attempt was cut off, in this call or an earlier
    one. The finished file is checked (size and sha256 when the spec pins them, then keys and
    shapes) before it is renamed into place; a bad file is deleted.

    Args:
        spec: the model to fetch.
        progress: receives ``ProgressEvent("download", bytes_done, bytes_total_or_None,
            weights_file)`` as data arrives.
        url: fetch from here instead of ``spec.url``: a mirror, or the path (or ``file://``
            URL) of a copy the user already holds, which is copied into the cache.

    A shipped model's weights are already in place: their path is returned.

    Raises:
        WeightsError: a ``url`` for a shipped model, an unreachable host (the message says
            how to place the file by hand), an HTTP error, repeated interruptions, or a bad
            file.
    """
    if spec.shipped:
        if url is not None:
            raise WeightsError(f"model {spec.name!r} ships with the package; nothing to fetch")
        logger.info("%s ships with the package: %s", spec.name, weights_location(spec))
        return weights_location(spec)
    source = url or spec.url
    dest = cache_dir() / spec.weights_file
    if dest.is_file():
        logger.info("%s is already downloaded: %s", spec.name, dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    local = _local_path(source)
    count = _byte_count(progress, spec.weights_file)
    if local is not None:
        _copy_local(local, part, count)
    else:
        try:
            _fetch_with_retries(source, part, spec.size_bytes or None, count)
        except _Unreachable as exc:
            host = urllib.parse.urlsplit(source).hostname or source
            raise WeightsError(
                f"cannot reach {host}: no network? ({exc}). Download {source} by hand and put "
                f"it at {dest}, or give it as --model {spec.name} --weights FILE"
            ) from exc
    try:
        _verify_download(spec, part)
    except WeightsError as exc:
        part.unlink(missing_ok=True)
        raise WeightsError(f"{source} did not give usable weights (removed): {exc}") from exc
    atomic.commit(part, dest)
    logger.info("stored %s weights at %s", spec.name, dest)
    return dest


def _local_path(source: str) -> Path | None:
    """The file a source names when it is a local path or a ``file://`` URL, else None."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme in ("http", "https", "ftp"):
        return None
    return Path(source).expanduser()


def _byte_count(progress: ProgressCallback | None, name: str) -> ByteCount | None:
    """Report bytes as ``ProgressEvent("download", ...)`` to ``progress``."""
    if progress is None:
        return None
    return lambda done, total: progress(ProgressEvent("download", done, total, name))


def _copy_local(source: Path, part: Path, progress: ByteCount | None) -> None:
    if not source.is_file():
        raise WeightsError(f"weights file {source} does not exist")
    total = source.stat().st_size
    done = 0
    with open(source, "rb") as src, open(part, "wb") as out:
        while chunk := src.read(_CHUNK):
            out.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)


def _fetch_with_retries(
    source: str, part: Path, size_hint: int | None, progress: ByteCount | None
) -> None:
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            _fetch(source, part, size_hint, progress)
            return
        except _Interrupted as exc:
            if attempt == _ATTEMPTS:
                raise WeightsError(
                    f"download of {source} was interrupted {attempt} times ({exc}); "
                    f"run the download again to resume {part}"
                ) from exc
            logger.warning("download of %s interrupted (%s); resuming", source, exc)
            time.sleep(min(2.0 ** (attempt - 1), 10.0))


def _fetch(source: str, part: Path, size_hint: int | None, progress: ByteCount | None) -> None:
    """Append the missing bytes of ``source`` to ``part`` (one HTTP request)."""
    start = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": _USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(source, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to send: the .part file is complete
            return
        raise WeightsError(f"download of {source} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise _Unreachable(_os_reason(exc)) from exc

    with response:
        if response.headers.get_content_type() == "text/html":
            part.unlink(missing_ok=True)
            raise WeightsError(
                f"{source} returned an HTML page, not a weights file "
                "(a broken link, a sign-in or a preview page)"
            )
        length = response.headers.get("Content-Length")
        if response.status == 206:
            resumed_at, total = _parse_content_range(response.headers.get("Content-Range", ""))
            if resumed_at != start:
                raise _Interrupted(f"server resumed at byte {resumed_at}, not {start}")
            mode = "ab"
        else:
            start, mode = 0, "wb"
            total = int(length) if length else None
        total = total or size_hint
        done = start
        if progress:
            progress(done, total)
        try:
            with open(part, mode) as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
            raise _Interrupted(_first_line(exc)) from exc
    if total is not None and done < total:
        raise _Interrupted(f"got {done} of {total} bytes")


def _parse_content_range(value: str) -> tuple[int, int | None]:
    """``"bytes 100-199/200"`` -> (100, 200); an unknown total (``*``) gives None."""
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", value.strip())
    if not match:
        raise _Interrupted(f"unusable Content-Range {value!r}")
    total = None if match.group(2) == "*" else int(match.group(2))
    return int(match.group(1)), total


def _verify_download(spec: ModelSpec, part: Path) -> None:
    size = part.stat().st_size if part.is_file() else 0
    if spec.size_bytes and size != spec.size_bytes:
        raise WeightsError(
            f"downloaded {spec.weights_file} has {size} bytes, expected {spec.size_bytes}"
        )
    if spec.sha256:
        digest = sha256_of(part)
        if digest != spec.sha256:
            raise WeightsError(
                f"downloaded {spec.weights_file} fails its checksum "
                f"(sha256 {digest}, expected {spec.sha256})"
            )
    state = read_state_dict(part)
    check_structure(state, expected_state(spec, state), f"downloaded {spec.weights_file}")


# --------------------------------------------------------------------------- small utilities


def _looks_like_html(head: bytes) -> bool:
    text = head.lstrip().lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head")) or b"<html" in text


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    more = len(items) - _LIST_LIMIT
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def _os_reason(exc: BaseException) -> str:
    """The operating system's words for a network failure ("Connection refused"), else the
    error's first line (urllib wraps them as ``<urlopen error [Errno 111] ...>``)."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror)
    return _first_line(reason) if isinstance(reason, BaseException) else str(reason)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
