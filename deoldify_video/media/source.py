"""Online inputs: an http(s) URL is downloaded with yt-dlp into the job folder.

The best video and the best audio are merged without re-encoding (yt-dlp's ffmpeg merger
copies the streams). Downloads are resumable: an interrupted file stays as ``NAME.part`` and the
next :func:`fetch` into the same folder continues it with an HTTP Range request. When a fetch
completes, a small record (``download.json``) lists the files, so a later fetch of the same URL
into the same folder returns at once without touching the network.

Only http and https URLs are accepted; ``file://``, ``data:`` and every other scheme are refused
before yt-dlp sees them. Every yt-dlp failure becomes a one-line :class:`SourceError`.
"""

from __future__ import annotations

import http
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yt_dlp
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import UnsupportedError, YoutubeDLError

from .. import atomic
from ..errors import SourceError
from ..types import ProgressCallback, ProgressEvent

log = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("http", "https")
# Schemes written without "//" that a user may still paste as an input.
OPAQUE_SCHEMES = ("data", "javascript", "blob")
RETRIES = 10
SOCKET_TIMEOUT_S = 30
RECORD_NAME = "download.json"
# Room is left for the suffix the caller adds ("_colorized.mp4") under the usual 255-byte limit.
MAX_NAME_BYTES = 150
FALLBACK_NAME = "video"
WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)

# yt-dlp warnings that describe normal operation here, logged at info level: its retries of
# a failing request ("... Retrying (1/3)...") end in the error itself when they all fail.
BENIGN_WARNINGS = ("Falling back on generic information extractor", "Retrying")

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_UNSAFE_RE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
_SPACE_RE = re.compile(r"\s+")
_URL_SHOWN = 120
# yt-dlp's "ERROR: " and "[extractor] " prefixes at the start of a message.
_TAG_RE = re.compile(r"^\s*(ERROR:\s*)?(\[[\w:]+\]\s*)?")


@dataclass(frozen=True)
class FetchedClip:
    """One downloaded video.

    Attributes:
        path: the downloaded media file (video and audio in one container).
        title: the clip's title as the site gives it.
        safe_name: ``title`` made safe for a file name (see :func:`safe_filename`).
        info_path: yt-dlp's sanitized info JSON saved beside ``path``.
    """

    path: Path
    title: str
    safe_name: str
    info_path: Path


def is_url(text: str) -> bool:
    """True when ``text`` names a URL rather than a local path.

    ``scheme://...`` and the opaque schemes ``data:``, ``javascript:`` and ``blob:`` count as
    URLs, whatever the scheme (so that a refused scheme is reported, not looked up as a file).
    A Windows drive letter (``C:\\film.mp4``) and ``name:with:colons.mp4`` do not.
    """
    match = _SCHEME_RE.match(text)
    if match is None:
        return False
    return text[match.end() :].startswith("//") or match.group(1).lower() in OPAQUE_SCHEMES


def check_url(url: str) -> None:
    """Refuse any URL that is not http(s) with a host name.

    Raises:
        SourceError: the scheme is not http or https (``file://``, ``data:``, ``ftp://``...),
            there is no host, or the URL cannot be parsed.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what validates it
    except ValueError as exc:
        raise SourceError(f"{_shorten(url)}: not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"{scheme}:" if scheme else "no scheme"
        raise SourceError(f"{_shorten(url)}: only http and https URLs are accepted, not {shown}")
    if not parts.hostname:
        raise SourceError(f"{_shorten(url)}: the URL has no host name")


def safe_filename(title: str) -> str:
    """``title`` made safe as a file name on Linux, macOS and Windows.

    Runs of white space become one space; path separators, other control characters and
    ``<>:"|?*`` become ``_``; leading and trailing spaces, dots, dashes and underscores are
    dropped (no hidden files, nothing that reads as a command-line option); the result is cut to
    ``MAX_NAME_BYTES`` bytes of UTF-8 without splitting a character; Windows device names get a
    ``_`` prefix. Letters of every script are kept. An empty result becomes ``"video"``.
    """
    text = unicodedata.normalize("NFC", title)
    text = _SPACE_RE.sub(" ", text)
    text = _UNSAFE_RE.sub("_", text).strip(" ._-")
    text = text.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", errors="ignore").strip(" ._-")
    if not text:
        return FALLBACK_NAME
    if text.split(".")[0].upper() in WINDOWS_RESERVED:
        return "_" + text
    return text


def ytdlp_options(
    dest_dir: Path,
    progress_hook: Callable[[dict[str, Any]], None],
    logger: Any,
    allow_playlist: bool,
) -> dict[str, Any]:
    """Every option given to ``yt_dlp.YoutubeDL``, with yt-dlp's own key names.

    yt-dlp ignores unknown keys silently, so this is the one place they are spelled (and a test
    checks them). Files go to ``dest_dir`` named by the clip id (stable across re-runs, which a
    resume needs); playlist items are prefixed with their 1-based position.

    Args:
        dest_dir: folder that receives the media files and their ``.part`` files.
        progress_hook: called by yt-dlp with its progress dicts.
        logger: object with ``debug``, ``info``, ``warning`` and ``error`` methods.
        allow_playlist: False makes yt-dlp prefer the single video when a URL names both a
            video and a playlist.
    """
    return {
        "format": "bestvideo*+bestaudio/best",
        "merge_output_format": "mp4/webm/mkv",
        "paths": {"home": str(dest_dir)},
        "outtmpl": {"default": "%(playlist_autonumber&{:03d}-|)s%(id)s.%(ext)s"},
        "windowsfilenames": True,
        "trim_file_name": MAX_NAME_BYTES,
        "noplaylist": not allow_playlist,
        "extract_flat": "in_playlist",
        "retries": RETRIES,
        "fragment_retries": RETRIES,
        "extractor_retries": 3,
        "file_access_retries": 3,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "continuedl": True,
        "nopart": False,
        "overwrites": False,
        "updatetime": False,
        "enable_file_urls": False,
        "ignoreerrors": False,
        "cachedir": False,
        "quiet": True,
        "noprogress": True,
        "color": "no_color",
        "logger": logger,
        "progress_hooks": [progress_hook],
    }


def fetch(
    url: str,
    dest_dir: Path,
    progress: ProgressCallback | None = None,
    allow_playlist: bool = False,
) -> list[FetchedClip]:
    """Download the clip (or, with ``allow_playlist``, every clip) behind ``url`` into ``dest_dir``.

    A re-run into the same ``dest_dir`` continues a partial download, and returns at once when
    the previous run completed.

    Args:
        url: an http or https URL of a video file or of a page on a site yt-dlp supports.
        dest_dir: the job's download folder (created if missing).
        progress: receives ``ProgressEvent("download", bytes_done, bytes_total_or_None)``.
        allow_playlist: download every item of a playlist instead of refusing it.

    Returns:
        One :class:`FetchedClip` per video, in playlist order.

    Raises:
        SourceError: refused scheme, HTTP error, unreachable host, no video at the URL, a
            playlist without ``allow_playlist``, or any other yt-dlp failure.
    """
    check_url(url)
    dest_dir.mkdir(parents=True, exist_ok=True)
    recorded = _load_record(dest_dir, url, allow_playlist)
    if recorded is not None:
        log.info("%s: already downloaded to %s", _shorten(url), dest_dir)
        return recorded
    opts = ytdlp_options(dest_dir, _progress_hook(progress), _YtdlpLogger(), allow_playlist)
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=False)
            is_playlist = info.get("_type") in ("playlist", "multi_video")
            if not is_playlist:
                clips = [_download(ydl, url, info)]
            else:
                entries = list(info.get("entries") or [])
                _check_playlist(url, len(entries), allow_playlist)
                clips = [
                    _download(ydl, url, _resolve(ydl, entry, index))
                    for index, entry in enumerate(entries, start=1)
                ]
    except YoutubeDLError as exc:
        kept = any(dest_dir.glob("*.part"))
        resume = "; the partial download is kept, run again to resume" if kept else ""
        raise SourceError(f"{_shorten(url)}: {_describe(exc)}{resume}") from exc
    _save_record(dest_dir, url, is_playlist, clips)
    return clips


def _check_playlist(url: str, count: int, allow_playlist: bool) -> None:
    if count == 0:
        raise SourceError(f"{_shorten(url)}: the playlist has no videos")
    if not allow_playlist:
        raise SourceError(
            f"{_shorten(url)}: a playlist of {count} videos; pass --playlist to colorize each one"
        )


def _resolve(ydl: yt_dlp.YoutubeDL, entry: dict[str, Any], index: int) -> dict[str, Any]:
    """The full video info of playlist item ``index`` (1-based), extracted but not downloaded."""
    video: dict[str, Any] = ydl.process_ie_result(
        entry, download=False, extra_info={"playlist_autonumber": index}
    )
    return video


def _download(ydl: yt_dlp.YoutubeDL, url: str, video: dict[str, Any]) -> FetchedClip:
    """Download one extracted video and save its sanitized info JSON beside it.

    Raises:
        SourceError: the item is itself a playlist, or a live stream (which never ends).
    """
    title = str(video.get("title") or video.get("id") or "")
    if video.get("_type", "video") != "video":
        raise SourceError(
            f"{_shorten(url)}: {title!r} is a nested playlist, which is not supported"
        )
    if video.get("is_live") or video.get("live_status") in ("is_live", "is_upcoming"):
        raise SourceError(
            f"{_shorten(url)}: {title!r} is a live stream; only recorded videos can be colorized"
        )
    result = ydl.process_ie_result(video, download=True)
    downloads = result.get("requested_downloads") or []
    if not downloads:
        raise SourceError(f"{_shorten(url)}: {title!r}: nothing was downloaded")
    path = Path(downloads[0]["filepath"])
    title = str(result.get("title") or path.stem)
    info_path = path.with_name(path.stem + ".info.json")
    _write_json(info_path, ydl.sanitize_info(result, remove_private_keys=True))
    log.info("downloaded %s to %s", title, path)
    return FetchedClip(path, title, safe_filename(title), info_path)


def _progress_hook(
    progress: ProgressCallback | None,
) -> Callable[[dict[str, Any]], None]:
    """A yt-dlp progress hook that turns its dicts into ``ProgressEvent("download", ...)``."""

    def hook(status: dict[str, Any]) -> None:
        state = status.get("status")
        if progress is None or state not in ("downloading", "finished"):
            return
        done = int(status.get("downloaded_bytes") or 0)
        total = status.get("total_bytes") or status.get("total_bytes_estimate")
        total_bytes = int(total) if total else (done if state == "finished" else None)
        name = Path(status.get("filename") or "").name
        progress(ProgressEvent("download", done, total_bytes, name))

    return hook


class _YtdlpLogger:
    """Routes yt-dlp's messages to this module's logger.

    yt-dlp sends both info and ``[debug] `` messages to ``debug``. Its errors are logged at
    debug level only: each one is also raised, and reaches the user as a SourceError. Warnings
    listed in ``BENIGN_WARNINGS`` (its retries among them) are logged at info level, so that a
    failing download ends in one line.
    """

    def debug(self, message: str) -> None:
        if message.startswith("[debug] "):
            log.debug("%s", message[len("[debug] ") :])
        else:
            log.info("%s", message)

    def info(self, message: str) -> None:
        log.info("%s", message)

    def warning(self, message: str) -> None:
        if any(note in message for note in BENIGN_WARNINGS):
            log.info("%s", message)
        else:
            log.warning("%s", message)

    def error(self, message: str) -> None:
        log.debug("%s", message)


def _describe(exc: BaseException) -> str:
    """One line saying why yt-dlp failed: HTTP status, unreachable host, no video, or its text."""
    for cause in _causes(exc):
        if isinstance(cause, HTTPError):
            return f"HTTP {cause.status} {_status_phrase(cause.status, cause.reason)}"
        if isinstance(cause, UnsupportedError):
            return "no video found (a web page without video, or a site yt-dlp does not support)"
        if isinstance(cause, TransportError):
            return f"cannot reach the host: {_os_reason(cause)}"
    return _first_line(_TAG_RE.sub("", str(exc).replace("\r", "")))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps, outermost first (yt-dlp's exc_info and cause included)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        exc_info = getattr(current, "exc_info", None)
        linked = [
            exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None,
            getattr(current, "cause", None),
            current.__cause__,
            current.__context__,
        ]
        pending.extend(item for item in linked if isinstance(item, BaseException))


def _os_reason(exc: BaseException) -> str:
    """The operating system's words for a network failure ("Connection refused"), if any."""
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return str(cause.strerror)
    return _first_line(str(exc))


def _status_phrase(status: int, reason: str | None) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return reason or ""


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


def _shorten(url: str) -> str:
    return url if len(url) <= _URL_SHOWN else url[: _URL_SHOWN - 3] + "..."


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    atomic.write_text(path, json.dumps(data, indent=1, ensure_ascii=False))


def _save_record(dest_dir: Path, url: str, playlist: bool, clips: list[FetchedClip]) -> None:
    record = {
        "url": url,
        "playlist": playlist,
        "clips": [
            {"path": clip.path.name, "title": clip.title, "info": clip.info_path.name}
            for clip in clips
        ],
    }
    _write_json(dest_dir / RECORD_NAME, record)


def _load_record(dest_dir: Path, url: str, allow_playlist: bool) -> list[FetchedClip] | None:
    """The clips of a completed earlier fetch of ``url`` into ``dest_dir``, or None."""
    try:
        record = json.loads((dest_dir / RECORD_NAME).read_text(encoding="utf-8"))
        if record["url"] != url:
            return None
        clips = [
            FetchedClip(
                dest_dir / item["path"],
                item["title"],
                safe_filename(item["title"]),
                dest_dir / item["info"],
            )
            for item in record["clips"]
        ]
        playlist = bool(record["playlist"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all(clip.path.is_file() and clip.info_path.is_file() for clip in clips):
        return None
    if playlist:
        _check_playlist(url, len(clips), allow_playlist)
    return clips
