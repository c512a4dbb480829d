"""Online inputs through yt-dlp, against an HTTP server on 127.0.0.1 that each test starts."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yt_dlp

from deoldify_video.errors import SourceError
from deoldify_video.media import source
from deoldify_video.media.source import (
    check_url,
    fetch,
    is_url,
    safe_filename,
    ytdlp_options,
)
from deoldify_video.types import ProgressEvent

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")

HTML_PAGE = b"<html><head><title>Archive</title></head><body><p>No film here.</p></body></html>"


@dataclass
class Site:
    """What the test server serves and what it was asked.

    Attributes:
        files: URL path -> (body, content type).
        drop_at: when set, every response body stops at this absolute byte offset and the
            connection is closed (a dropped download).
        requests: (path, Range header or "") of every request, in order.
    """

    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    drop_at: int | None = None
    requests: list[tuple[str, str]] = field(default_factory=list)


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the test reads ``site.requests`` instead."""

        def do_GET(self) -> None:
            site.requests.append((self.path, self.headers.get("Range", "")))
            if self.path not in site.files:
                self.send_error(404)
                return
            body, ctype = site.files[self.path]
            start, end = _byte_range(self.headers.get("Range", ""), len(body))
            self.send_response(206 if self.headers.get("Range") else 200)
            self.send_header("Content-Type", ctype)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start))
            if self.headers.get("Range"):
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(body)}")
            self.end_headers()
            stop = end if site.drop_at is None else max(start, min(end, site.drop_at))
            try:
                self.wfile.write(body[start:stop])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            if stop < end:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """``[start, end)`` asked for by a ``Range: bytes=A-`` or ``bytes=A-B`` header."""
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", header.strip())
    if match is None:
        return 0, size
    start = int(match.group(1))
    end = int(match.group(2)) + 1 if match.group(2) else size
    return start, min(end, size)


@dataclass
class Server:
    site: Site
    base: str


@pytest.fixture
def server() -> Iterator[Server]:
    site = Site()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Server(site, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 2 s H.264 + AAC mp4 (testsrc2 in black and white + a sine tone), as bytes."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y"]
        + ["-f", "lavfi", "-i", "testsrc2=size=128x96:rate=10:duration=2,hue=s=0"]
        + ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]
        + ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )
    return path.read_bytes()


@pytest.fixture(scope="module")
def hls(clip: bytes, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The clip as HLS with video and audio in separate renditions: file name -> bytes.

    ``master.m3u8`` names the video codec, so yt-dlp knows the video rendition has no audio and
    picks the audio rendition to merge with it.
    """
    folder = tmp_path_factory.mktemp("hls")
    (folder / "clip.mp4").write_bytes(clip)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(folder / "clip.mp4")]
        + ["-map", "0:v", "-map", "0:a", "-c", "copy", "-f", "hls", "-hls_time", "1"]
        + ["-hls_playlist_type", "vod", "-hls_segment_type", "fmp4"]
        + ["-var_stream_map", "v:0,agroup:aud,name:video a:0,agroup:aud,name:audio"]
        + ["-hls_segment_filename", str(folder / "s%v_%03d.m4s"), str(folder / "p%v.m3u8")],
        check=True,
    )
    (folder / "clip.mp4").unlink()
    files = {path.name: path.read_bytes() for path in folder.iterdir()}
    files["master.m3u8"] = (
        b"#EXTM3U\n#EXT-X-VERSION:7\n"
        b'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="audio",DEFAULT=YES,URI="paudio.m3u8"\n'
        b'#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=128x96,CODECS="avc1.64000b",AUDIO="aud"\n'
        b"pvideo.m3u8\n"
    )
    return files


def _stream_md5(path: Path, stream: str) -> str:
    """md5 of the packets of ``stream`` ("a" or "v"), copied without decoding."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-map", f"0:{stream}", "-c", "copy"]
        + ["-f", "md5", "-"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _ranges(site: Site, path: str) -> list[str]:
    return [rng for req_path, rng in site.requests if req_path == path]


# ---------------------------------------------------------------- pure functions


def test_options_use_real_ytdlp_names(tmp_path: Path) -> None:
    def hook(status: dict[str, Any]) -> None:
        """Unused."""

    logger = object()
    opts = ytdlp_options(tmp_path, hook, logger, allow_playlist=False)
    doc = yt_dlp.YoutubeDL.__doc__ or ""
    documented = set(re.findall(r"^ {4}(\w+)", doc, re.MULTILINE))
    downloader_part = doc.split("used by\n    the downloader")[1].split("\n\n")[0]
    documented |= set(re.findall(r"\w+", downloader_part))
    assert {"retries", "continuedl", "progress_hooks"} <= documented
    assert set(opts) <= documented, set(opts) - documented
    assert opts["format"] == "bestvideo*+bestaudio/best"
    assert opts["merge_output_format"].split("/")[0] == "mp4"
    assert opts["paths"] == {"home": str(tmp_path)}
    assert opts["retries"] == opts["fragment_retries"] == source.RETRIES > 0
    assert opts["continuedl"] is True and opts["nopart"] is False
    assert opts["noplaylist"] is True
    assert ytdlp_options(tmp_path, hook, logger, allow_playlist=True)["noplaylist"] is False
    assert opts["quiet"] is True and opts["noprogress"] is True
    assert opts["logger"] is logger and opts["progress_hooks"] == [hook]
    assert opts["enable_file_urls"] is False and opts["ignoreerrors"] is False


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Newsreel 1936", "Newsreel 1936"),
        ("a/b\\c", "a_b_c"),
        ('What? "Really" <no>: yes|no*', "What_ _Really_ _no_ yes_no"),
        ("  ..hidden.  ", "hidden"),
        ("--rm -rf", "rm -rf"),
        ("tab\tand\nnewline", "tab and newline"),
        ("bell\x07", "bell"),
        ("", "video"),
        ("???", "video"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("Přehled týdne 1945", "Přehled týdne 1945"),
        ("東京 1964", "東京 1964"),
    ],
)
def test_safe_filename(title: str, expected: str) -> None:
    assert safe_filename(title) == expected


def test_safe_filename_is_cut_without_splitting_a_character() -> None:
    name = safe_filename("é" * 400)
    assert len(name.encode("utf-8")) <= source.MAX_NAME_BYTES
    assert name == "é" * (source.MAX_NAME_BYTES // 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://example.org/newsreel.mp4", True),
        ("HTTP://example.org/a", True),
        ("file:///etc/passwd", True),
        ("ftp://example.org/a.mp4", True),
        ("data:video/mp4;base64,AAAA", True),
        ("film.mp4", False),
        ("/films/a:b.mp4", False),
        ("C:\\films\\a.mp4", False),
        ("reel:1.mp4", False),
    ],
)
def test_is_url(text: str, expected: bool) -> None:
    assert is_url(text) is expected


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "data:video/mp4;base64,AAAA",
        "ftp://example.org/a.mp4",
        "javascript:alert(1)",
        "http:///no-host.mp4",
    ],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(SourceError) as info:
        check_url(url)
    assert url.split(":")[0] in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["http://[::1/a.mp4", "http://example.org:99999/a.mp4"])
def test_check_url_refuses_malformed(url: str) -> None:
    with pytest.raises(SourceError, match="not a valid URL"):
        check_url(url)


def test_progress_hook_maps_ytdlp_status() -> None:
    events: list[ProgressEvent] = []
    hook = source._progress_hook(events.append)
    hook({"status": "downloading", "downloaded_bytes": 10, "total_bytes": None, "filename": "/x/a"})
    hook({"status": "downloading", "downloaded_bytes": 20, "total_bytes_estimate": 99.5})
    hook({"status": "error"})
    hook({"status": "something new"})
    hook({"status": "finished", "downloaded_bytes": 30, "filename": "/x/a.mp4"})
    assert events == [
        ProgressEvent("download", 10, None, "a"),
        ProgressEvent("download", 20, 99, ""),
        ProgressEvent("download", 30, 30, "a.mp4"),
    ]
    source._progress_hook(None)({"status": "finished", "downloaded_bytes": 1})


def test_check_url_accepts_http_and_https() -> None:
    check_url("http://127.0.0.1:8000/a.mp4")
    check_url("https://example.org/watch?v=1")


# ---------------------------------------------------------------- downloads


def test_direct_mp4_keeps_audio_bit_identical(
    server: Server, clip: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.site.files["/newsreel.mp4"] = (clip, "video/mp4")
    url = f"{server.base}/newsreel.mp4"
    events: list[ProgressEvent] = []

    with caplog.at_level(logging.INFO, logger="deoldify_video.media.source"):
        clips = fetch(url, tmp_path / "job", events.append)

    assert len(clips) == 1
    got = clips[0]
    assert got.path.parent == tmp_path / "job"
    assert got.path.read_bytes() == clip
    assert _stream_md5(got.path, "a") == _stream_md5(_write(tmp_path / "orig.mp4", clip), "a")
    assert got.title == "newsreel" and got.safe_name == "newsreel"
    info = json.loads(got.info_path.read_text(encoding="utf-8"))
    assert info["title"] == "newsreel" and info["webpage_url"] == url
    assert any(r.getMessage().startswith("[generic] Extracting URL") for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert events and all(e.stage == "download" for e in events)
    assert [e.done for e in events] == sorted(e.done for e in events)
    assert events[-1].done == events[-1].total == len(clip)

    asked = len(server.site.requests)
    again = fetch(url, tmp_path / "job")
    assert again == clips
    assert len(server.site.requests) == asked, "a completed download is not fetched again"


def test_separate_video_and_audio_are_merged_without_reencoding(
    server: Server, clip: bytes, hls: dict[str, bytes], tmp_path: Path
) -> None:
    for name, data in hls.items():
        ctype = "application/vnd.apple.mpegurl" if name.endswith(".m3u8") else "video/mp4"
        server.site.files[f"/hls/{name}"] = (data, ctype)
    job = tmp_path / "job"

    clips = fetch(f"{server.base}/hls/master.m3u8", job)

    assert len(clips) == 1
    merged = clips[0].path
    original = _write(tmp_path / "orig.mp4", clip)
    assert _stream_md5(merged, "a") == _stream_md5(original, "a")
    assert _stream_md5(merged, "v") == _stream_md5(original, "v")
    info = json.loads(clips[0].info_path.read_text(encoding="utf-8"))
    assert "+" in info["format_id"], "video and audio came from two formats"
    media = sorted(p.name for p in job.iterdir() if not p.name.endswith(".json"))
    assert media == [merged.name], "only the merged file is left"


def test_live_stream_is_refused(server: Server, hls: dict[str, bytes], tmp_path: Path) -> None:
    for name, data in hls.items():
        server.site.files[f"/hls/{name}"] = (data, "video/mp4")
    # A media playlist without #EXT-X-ENDLIST is still growing: a live stream.
    live = hls["pvideo.m3u8"].replace(b"#EXT-X-ENDLIST", b"").replace(b"VOD", b"EVENT")
    server.site.files["/hls/live.m3u8"] = (live, "application/vnd.apple.mpegurl")
    url = f"{server.base}/hls/live.m3u8"

    with pytest.raises(SourceError, match="is a live stream") as info:
        fetch(url, tmp_path / "job")
    assert str(info.value).startswith(f"{url}: ")
    assert list((tmp_path / "job").iterdir()) == []


def test_dropped_download_resumes_with_range(server: Server, clip: bytes, tmp_path: Path) -> None:
    server.site.files["/reel.mp4"] = (clip, "video/mp4")
    server.site.drop_at = len(clip) // 2
    url = f"{server.base}/reel.mp4"
    job = tmp_path / "job"

    with pytest.raises(SourceError) as info:
        fetch(url, job)
    assert str(info.value).startswith(f"{url}: ")
    assert str(info.value).endswith("run again to resume")
    assert "\n" not in str(info.value) and "\r" not in str(info.value)
    part = job / "reel.mp4.part"
    kept = part.stat().st_size
    assert 0 < kept <= len(clip) // 2
    assert part.read_bytes() == clip[:kept]
    assert not (job / "reel.mp4").exists()

    server.site.drop_at = None
    server.site.requests.clear()
    clips = fetch(url, job)

    assert clips[0].path == job / "reel.mp4"
    assert clips[0].path.read_bytes() == clip
    assert not part.exists()
    assert f"bytes={kept}-" in _ranges(server.site, "/reel.mp4")


def test_http_404_is_one_line(server: Server, tmp_path: Path) -> None:
    url = f"{server.base}/missing.mp4"
    with pytest.raises(SourceError) as info:
        fetch(url, tmp_path / "job")
    assert str(info.value) == f"{url}: HTTP 404 Not Found"
    assert info.value.exit_code == 2
    assert isinstance(info.value.__cause__, yt_dlp.utils.YoutubeDLError)


def test_html_page_without_video(server: Server, tmp_path: Path) -> None:
    server.site.files["/archive.html"] = (HTML_PAGE, "text/html; charset=utf-8")
    url = f"{server.base}/archive.html"
    with pytest.raises(SourceError) as info:
        fetch(url, tmp_path / "job")
    assert str(info.value).startswith(f"{url}: no video found")
    assert "\n" not in str(info.value)


def test_unreachable_host(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/reel.mp4"
    with pytest.raises(SourceError) as info:
        fetch(url, tmp_path / "job")
    assert str(info.value) == f"{url}: cannot reach the host: Connection refused"


def test_file_url_is_refused_before_any_download(clip: bytes, tmp_path: Path) -> None:
    local = _write(tmp_path / "local.mp4", clip)
    with pytest.raises(SourceError, match="only http and https"):
        fetch(local.as_uri(), tmp_path / "job")
    assert not (tmp_path / "job").exists()


def test_playlist_needs_allow_playlist(server: Server, clip: bytes, tmp_path: Path) -> None:
    server.site.files["/a/reel.mp4"] = (clip, "video/mp4")
    server.site.files["/b/reel.mp4"] = (clip[:-1] + b"\0", "video/mp4")
    items = "".join(
        f'<item><title>{title}</title><enclosure url="{server.base}{path}" type="video/mp4"/>'
        "</item>"
        for title, path in [("First: reel", "/a/reel.mp4"), ("Second reel", "/b/reel.mp4")]
    )
    feed = f'<?xml version="1.0"?><rss version="2.0"><channel><title>Reels</title>{items}'
    server.site.files["/feed.xml"] = ((feed + "</channel></rss>").encode(), "application/rss+xml")
    url = f"{server.base}/feed.xml"

    with pytest.raises(SourceError) as info:
        fetch(url, tmp_path / "job")
    assert str(info.value) == f"{url}: a playlist of 2 videos; pass --playlist to colorize each one"

    clips = fetch(url, tmp_path / "job", allow_playlist=True)

    assert [c.title for c in clips] == ["First: reel", "Second reel"]
    assert [c.safe_name for c in clips] == ["First_ reel", "Second reel"]
    assert [c.path.name for c in clips] == ["001-reel.mp4", "002-reel.mp4"]
    assert clips[0].path.read_bytes() == clip
    assert clips[1].path.read_bytes() == clip[:-1] + b"\0"
    with pytest.raises(SourceError, match="--playlist"):
        fetch(url, tmp_path / "job")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- through the command line


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "deoldify_video", "colorize", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )


def test_cli_colorizes_a_url_and_keeps_its_audio(
    server: Server, clip: bytes, tmp_path: Path, tiny_weights: Path
) -> None:
    server.site.files["/newsreel.mp4"] = (clip, "video/mp4")
    source = tmp_path / "source.mp4"
    source.write_bytes(clip)
    work = tmp_path / "work"
    work.mkdir()
    url = f"{server.base}/newsreel.mp4"
    proc = _cli(work, url, "--model", str(tiny_weights), "--render-factor", "4", "-q")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in work.iterdir()) == ["newsreel.mp4"]  # the download is gone
    output = work / "newsreel.mp4"
    assert _stream_md5(output, "a") == _stream_md5(source, "a")
    count = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(output)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert count.stdout.strip() == "20"


@pytest.mark.parametrize(
    ("path", "message"),
    [("/missing.mp4", "HTTP 404"), ("/page.html", "no video found")],
)
def test_cli_url_errors_are_one_line(
    server: Server, tmp_path: Path, tiny_weights: Path, path: str, message: str
) -> None:
    server.site.files["/page.html"] = (
        b"<html><body><p>No film here.</p></body></html>",
        "text/html",
    )
    proc = _cli(tmp_path, f"{server.base}{path}", "--model", str(tiny_weights))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and path in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_file_urls(tmp_path: Path) -> None:
    proc = _cli(tmp_path, "file:///etc/passwd")
    assert proc.returncode == 2
    assert "only http and https" in proc.stderr
