"""Decode the luminance of a video through a rawvideo pipe.

Only the Y plane is read: the colorizer needs nothing else, and keeping the source's own Y
samples is what makes the output's luminance identical to the input's. Frames come upright
(ffmpeg applies the display rotation), one per decoded frame (no frame-rate conversion).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from types import TracebackType

import numpy as np

from ..errors import DecodeError
from ..types import VideoInfo
from .ffmpeg import STDERR_KEEP, StderrReader, component, last_line, path_arg, repeats, tool

log = logging.getLogger(__name__)


def gray_pix_fmt(depth: int) -> str:
    """ffmpeg's name of a one-plane format of ``depth`` bits (little-endian when above 8)."""
    return "gray" if depth == 8 else f"gray{depth}le"


def reader_command(
    info: VideoInfo,
    start_time: float | None = None,
    count: int | None = None,
    rgb: bool = False,
    yuv444: bool = False,
) -> list[str]:
    """ffmpeg call writing the Y plane of each frame to stdout.

    Args:
        info: the probed source.
        start_time: seek (exactly, decoding from the previous key frame) to this time in
            seconds from the start of the file; None reads from the first frame.
        count: stop after this many frames; None reads to the end.
        rgb: deliver 8-bit RGB pictures instead of the Y plane (for measuring, not colorizing).
        yuv444: deliver the Y, U and V planes at full size (planar 4:4:4, at the planes'
            depth) instead of the Y plane alone.

    Output: ``height * width`` samples per frame (of the upright frame), ``gray`` (uint8) for
    8-bit sources, ``gray10le``/``gray12le``/``gray16le`` (uint16) for deeper ones (see
    :attr:`~deoldify_video.types.VideoInfo.plane_depth`); ``rgb24`` when ``rgb``; three such
    planes per frame when ``yuv444``.
    """
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error"]
    if start_time is not None:
        cmd += ["-ss", f"{start_time:.6f}"]
    cmd += [*info.input_options, "-i", path_arg(info.path)]
    cmd += ["-map", f"0:{info.video_index}", "-an", "-sn", "-dn"]
    depth = info.plane_depth
    if rgb:
        planes = "null"
    elif yuv444:
        planes = "format=" + ("yuv444p" if depth == 8 else f"yuv444p{depth}le")
    elif info.is_rgb_source:
        to_yuv = "yuv444p" if depth == 8 else f"yuv444p{depth}le"
        planes = f"scale=out_color_matrix=bt601:out_range=tv,format={to_yuv},extractplanes=y"
    else:
        planes = "extractplanes=y"
    # Frames keep their timestamps in the source's own time base: in a coarser one (1/fps of a
    # variable-rate source) two of them can round to one tick, which the muxer reports as an
    # error, and every error the reader sees counts as damage.
    cmd += ["-vf", planes, "-fps_mode", "passthrough", "-enc_time_base", "-1"]
    if count is not None:
        cmd += ["-frames:v", str(count)]
    pix_fmt = "rgb24" if rgb else planes[7:] if yuv444 else gray_pix_fmt(depth)
    return [*cmd, "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]


class FrameReader:
    """Iterate over batches of Y planes (or RGB pictures) of a video, checking that every
    frame arrived and that the decoder reported no damage.

    Use as a context manager; the ffmpeg process is killed and reaped on exit. Its stderr is
    read while it runs (a damaged film makes it write a line per damaged spot, more than a
    pipe holds), and every line it writes at ``-v error`` counts as damage: a
    :class:`DecodeError` at the end unless ``allow_damage``, which logs a warning instead.

    >>> with FrameReader(info) as reader:            # doctest: +SKIP
    ...     for batch in reader.batches(8):         # (n <= 8, H, W) uint8 or uint16
    ...         ...
    """

    def __init__(
        self,
        info: VideoInfo,
        start_time: float | None = None,
        count: int | None = None,
        rgb: bool = False,
        yuv444: bool = False,
        allow_damage: bool = False,
    ) -> None:
        self.info = info
        self.width, self.height = info.display_size
        self.channels = 3 if rgb or yuv444 else 1
        self.planar = yuv444
        deep = info.plane_depth > 8 and not rgb
        self.dtype = np.dtype("<u2") if deep else np.dtype(np.uint8)
        self.expected = count if count is not None else info.frame_count
        self.command = reader_command(info, start_time, count, rgb, yuv444)
        self.allow_damage = allow_damage
        self.frames_read = 0
        self._start = start_time or 0.0
        self._errors = 0
        self._counting = True  # the line before counted (for "Last message repeated")
        self._last_message = ""
        self._first_error: int | None = None  # frames read when the first error came
        self._last_error = 0  # ... and the last
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: StderrReader | None = None

    def __enter__(self) -> FrameReader:
        cmd = [tool("ffmpeg"), *self.command[1:]]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # see media.ffmpeg: Ctrl-C reaches this process alone
        )
        assert self._proc.stderr is not None
        self._stderr = StderrReader(self._proc.stderr, self._note_error)
        return self

    def _note_error(self, line: str) -> None:
        """Count a line of ffmpeg's stderr as damage (called in the stderr thread), noting how
        many frames had been read when it came.

        The demuxer's lines are left out: the probe read the whole container and judged it. So
        are those of the raw output muxer (timestamps it does not store), which say nothing of
        the picture.
        """
        count = repeats(line)
        if not count:
            container = self.info.container
            self._counting = component(line) not in (container or "-", "rawvideo")
            count = 1
            if self._counting:
                self._last_message = line
        if not self._counting:
            return
        self._errors += count
        if self._first_error is None:
            self._first_error = self.frames_read
        self._last_error = self.frames_read

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> str:
        """Stop ffmpeg (if it still runs) and return the tail of what it wrote to stderr."""
        proc = self._proc
        if proc is None:
            return ""
        self._proc = None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        stderr = self._stderr.text() if self._stderr is not None else ""
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
        return stderr

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Yield arrays ``(n, H, W)`` (``(n, H, W, 3)`` for RGB, ``(n, 3, H, W)`` for
        ``yuv444``) with ``1 <= n <= batch_size``
        until the expected count.

        Raises:
            DecodeError: ffmpeg failed, the stream ended before the expected frame count (a
                truncated or corrupt file), or the decoder reported damage (unless
                ``allow_damage``).
        """
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise RuntimeError("FrameReader.batches() needs the reader to be open")
        frame_bytes = self.width * self.height * self.channels * self.dtype.itemsize
        shape: tuple[int, ...] = (self.height, self.width)
        if self.channels == 3:
            shape = (3, *shape) if self.planar else (*shape, 3)
        while self.frames_read < self.expected:
            n = min(batch_size, self.expected - self.frames_read)
            data = _read_exact(proc.stdout, n * frame_bytes)
            got = len(data) // frame_bytes
            if got:
                self.frames_read += got
                yield np.frombuffer(data[: got * frame_bytes], self.dtype).reshape(got, *shape)
            if got < n:
                break
        self._finish()

    def _finish(self) -> None:
        proc = self._proc
        assert proc is not None
        complete = self.frames_read >= self.expected
        # With every frame read, the rest of the file is not needed: close() kills ffmpeg.
        code = None if complete else proc.wait()
        stderr = self.close()
        if not complete:
            detail = last_line(stderr) if stderr.strip() else f"ffmpeg exited with code {code}"
            raise DecodeError(
                f"{self.info.path}: decoding stopped after {self.frames_read} of "
                f"{self.expected} frames; the file is truncated or corrupt ({detail})",
                command=self.command,
                stderr=stderr[-STDERR_KEEP:],
            )
        if not self._errors:
            return
        message = self._damage_message()
        if not self.allow_damage:
            raise DecodeError(
                f"{message}; --allow-truncated colorizes it as the decoder conceals the damage",
                command=self.command,
                stderr=stderr[-STDERR_KEEP:],
            )
        log.warning("%s; the frames are colorized as the decoder concealed the damage", message)

    def _damage_message(self) -> str:
        """One line: how many errors, about where, and the last one."""
        count = self._errors
        frames = (self._first_error or 0, self._last_error)
        first, until = (f"{self._start + float(n / self.info.fps):.1f}" for n in frames)
        where = f"at about {first} s"
        if first != until:
            where = f"between about {first} s and {until} s"
        errors = "error" if count == 1 else "errors"
        last = last_line(self._last_message)
        return f"{self.info.path}: damaged: {count} decode {errors} {where} ({last})"


def _read_exact(stream: object, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at end of stream."""
    chunks = []
    remaining = size
    read = stream.read  # type: ignore[attr-defined]
    while remaining:
        chunk = read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_all(info: VideoInfo, rgb: bool = False, count: int | None = None) -> np.ndarray:
    """Every Y plane ``(N, H, W)`` (or RGB picture ``(N, H, W, 3)``) of a short video, or its
    first ``count`` frames, in one array; for tests and measurements."""
    with FrameReader(info, count=count, rgb=rgb) as reader:
        return np.concatenate(list(reader.batches(64)))
