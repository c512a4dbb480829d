"""Encode colour frames fed as raw YUV planes through the encoder's stdin."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import subprocess
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from ..errors import EncodeError, UsageError
from ..types import VideoInfo
from .ffmpeg import STDERR_KEEP, StderrReader, last_line, no_space, run, tool

log = logging.getLogger(__name__)

_CHUNK = 1 << 16

CODECS = ("libx264", "libx265", "ffv1", "prores", "h264_nvenc", "hevc_nvenc")
# NVIDIA's hardware encoders: listed by many ffmpeg builds, usable only with a GPU that has a
# video encoder and its driver, so they are tried out before a job starts.
NVENC = ("h264_nvenc", "hevc_nvenc")
# The ffmpeg encoder behind each --codec.
_ENCODERS = {codec: codec for codec in CODECS} | {"prores": "prores_ks"}
# The encoders that take a quality (--crf) and a speed preset (--preset).
TUNABLE_CODECS = ("libx264", "libx265")
DEFAULT_CRF = 17
DEFAULT_PRESET = "medium"
# The deepest samples each codec stores (ffmpeg's libx264 builds stop at 10 bits, libx265 at 12,
# ProRes and NVENC at 10; FFV1 is lossless up to 16).
MAX_DEPTH = {"libx264": 10, "libx265": 12, "ffv1": 16, "prores": 10, "h264_nvenc": 10,
             "hevc_nvenc": 10}  # fmt: skip
# Speed presets of libx264 and libx265, fastest first: a faster one spends less CPU per frame
# and gives a slightly lower quality at the same CRF.
PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
)  # fmt: skip
# NVENC's presets p1 (fastest) to p7 for the x264 names.
_NVENC_PRESETS = dict(
    zip(PRESETS, ("p1", "p1", "p2", "p3", "p3", "p4", "p5", "p6", "p7"), strict=True)
)


@dataclass(frozen=True)
class EncodeSettings:
    """Everything the encoder needs to know about the frames it receives.

    Attributes:
        width, height: upright frame size in pixels (any size, odd included).
        fps: nominal frame rate (frames are re-timed afterwards for variable-rate sources).
        sar: sample aspect ratio of the upright frames.
        depth: bits per sample of the planes written to stdin (8, 10, 12 or 16: the source's
            own, see :attr:`~deoldify_video.types.VideoInfo.plane_depth`).
        full_range: the planes use the "pc" range.
        color_space, color_primaries, color_transfer: tags to write ("" = leave unset).
        codec: one of :data:`CODECS`.
        crf: quality for libx264/libx265; NVENC's constant quality ``-cq`` (1 at the least).
        preset: speed preset for libx264/libx265, one of :data:`PRESETS`; mapped to NVENC's
            p1 to p7.
        b_frames: let libx264/libx265 use B-frames; off for AVI, which stores no presentation
            times, so that a frame's decoding time is its presentation time.
        field_order: the source's interlacing (see :class:`VideoInfo`), "" for progressive;
            interlaced frames are encoded as such (libx264, prores) and tagged.
        full_chroma: encode 4:4:4 whatever the size (the lossless intermediate of an image
            sequence output, whose RGB frames take full-size chroma).
    """

    width: int
    height: int
    fps: Fraction
    sar: Fraction
    depth: int
    full_range: bool
    color_space: str
    color_primaries: str
    color_transfer: str
    codec: str = "libx264"
    crf: int = DEFAULT_CRF
    preset: str = DEFAULT_PRESET
    b_frames: bool = True
    field_order: str = ""
    full_chroma: bool = False

    @property
    def chroma_subsampled(self) -> bool:
        """The encoded chroma is 4:2:0, so the frames are fed as 4:2:0 too (half the data)."""
        return self.output_pix_fmt.startswith(("yuv420p", "p010"))

    @property
    def chroma_size(self) -> tuple[int, int]:
        """(height, width) of the U and V planes written to stdin."""
        if self.chroma_subsampled:
            return self.height // 2, self.width // 2
        return self.height, self.width

    @property
    def input_pix_fmt(self) -> str:
        layout = "420" if self.chroma_subsampled else "444"
        return yuv_pix_fmt(layout, self.depth)

    @property
    def output_depth(self) -> int:
        """Bits per sample in the encoded stream: the planes' own, as far as the codec goes
        (:data:`MAX_DEPTH`); only then are the source's luminance samples kept bit for bit."""
        return min(self.depth, MAX_DEPTH[self.codec])

    @property
    def output_pix_fmt(self) -> str:
        """4:2:0 where the size allows it (H.264/H.265 4:2:0 needs even sides), else 4:4:4;
        NVENC takes 10-bit samples as P010 (4:2:0) or 16-bit 4:4:4."""
        if self.codec == "prores":
            return "yuv422p10le"
        even = self.width % 2 == 0 and self.height % 2 == 0
        if self.codec in NVENC and self.output_depth > 8:
            return "p010le" if even else "yuv444p16le"
        layout = "420" if even and not self.full_chroma else "444"
        return yuv_pix_fmt(layout, self.output_depth)


def yuv_pix_fmt(layout: str, depth: int) -> str:
    """``yuv420p``, ``yuv444p12le``...: planar YUV of ``depth`` bits (little-endian above 8)."""
    return f"yuv{layout}p" + ("" if depth == 8 else f"{depth}le")


def encode_settings(
    info: VideoInfo,
    codec: str = "libx264",
    crf: int | None = None,
    preset: str | None = None,
    b_frames: bool = True,
) -> EncodeSettings:
    """Settings that reproduce the source's geometry, range and colour tags.

    Args:
        crf, preset: for :data:`TUNABLE_CODECS` only; None for the defaults (17, medium).

    Raises:
        UsageError: an unknown codec or preset, a crf outside 0-51, a crf or preset given
            for a codec that takes none, an encoder this ffmpeg lacks or cannot open (see
            :func:`check_encoder`), or 10-bit video for h264_nvenc.
    """
    if codec not in CODECS:
        raise UsageError(f"unknown codec {codec!r} (choose from {', '.join(CODECS)})")
    for option, value in (("--crf", crf), ("--preset", preset)):
        if value is not None and codec not in TUNABLE_CODECS:
            raise UsageError(
                f"{option} applies to {' and '.join(TUNABLE_CODECS)}, not to {codec}; "
                f"leave it out with --codec {codec}"
            )
    crf = DEFAULT_CRF if crf is None else crf
    preset = DEFAULT_PRESET if preset is None else preset
    if not 0 <= crf <= 51:
        raise UsageError(f"--crf must be between 0 and 51, got {crf}")
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    if codec == "h264_nvenc" and info.plane_depth > 8:
        raise UsageError(
            f"{info.path}: h264_nvenc cannot encode its {info.bit_depth}-bit video; "
            "use --codec hevc_nvenc or libx264"
        )
    check_encoder(codec)
    width, height = info.display_size
    sar = 1 / info.sar if info.rotation in (90, 270) else info.sar
    rgb = info.is_rgb_source
    return EncodeSettings(
        width=width,
        height=height,
        fps=info.fps,
        sar=sar,
        depth=info.plane_depth,
        full_range=info.full_range,
        color_space="smpte170m" if rgb else info.color_space,
        color_primaries=info.color_primaries,
        color_transfer=info.color_transfer,
        codec=codec,
        crf=crf,
        preset=preset,
        b_frames=b_frames,
        field_order=info.field_order if not info.rotation else "",
    )


def writer_command(settings: EncodeSettings, muxer: str = "nut") -> list[str]:
    """ffmpeg call that reads raw planes (:attr:`EncodeSettings.input_pix_fmt`) from stdin
    and writes a video-only stream to stdout, in a container that can be written as a stream
    without losing anything (NUT, the default, keeps exact frame timestamps)."""
    s = settings
    rng = "pc" if s.full_range else "tv"
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y"]
    cmd += ["-f", "rawvideo", "-pix_fmt", s.input_pix_fmt, "-s", f"{s.width}x{s.height}"]
    cmd += ["-framerate", f"{s.fps.numerator}/{s.fps.denominator}", "-color_range", rng]
    cmd += ["-i", "pipe:0", "-map", "0:v"]
    filters = f"setsar=sar={s.sar.numerator}/{s.sar.denominator}:max=65535"
    if s.field_order:  # the field displayed first: top for tt and bt
        filters += ",setfield=" + ("tff" if s.field_order in ("tt", "bt") else "bff")
    cmd += ["-vf", filters]
    cmd += codec_args(s)
    if s.field_order:
        cmd += ["-field_order", s.field_order]
        if s.codec in ("libx264", "prores"):
            cmd += ["-flags", "+ildct+ilme"]
    cmd += ["-pix_fmt", s.output_pix_fmt, *colour_args(s)]
    return [*cmd, "-f", muxer, "pipe:1"]


def encoders_command() -> list[str]:
    """ffmpeg call that lists the encoders it was built with."""
    return ["ffmpeg", "-nostdin", "-hide_banner", "-encoders"]


def listed_encoders(text: str) -> set[str]:
    """Encoder names in the output of :func:`encoders_command` (the table below its legend)."""
    _, _, table = text.partition("------")
    return {fields[1] for fields in map(str.split, table.splitlines()) if len(fields) >= 2}


def encoder_trial_command(encoder: str) -> list[str]:
    """ffmpeg call that encodes one small grey frame with ``encoder`` and throws it away."""
    return ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error",
            "-f", "lavfi", "-i", "color=c=gray:size=256x256:duration=0.04",
            "-frames:v", "1", "-c:v", encoder, "-f", "null", "-"]  # fmt: skip


def check_encoder(codec: str) -> None:
    """Refuse a ``codec`` this ffmpeg cannot encode with, before any work.

    Every encoder must be listed by ``ffmpeg -encoders``; NVENC's are also tried on one frame,
    since builds list them where no NVIDIA GPU or driver is present. The answer is kept for
    the rest of the process.

    Raises:
        UsageError: one line naming the encoder and the reason.
    """
    problem = _encoder_problem(tool("ffmpeg"), _ENCODERS[codec])
    if problem:
        raise UsageError(f"--codec {codec}: {problem}; choose another --codec")


@functools.cache
def _encoder_problem(ffmpeg: str, encoder: str) -> str:
    """Why ``ffmpeg`` cannot encode with ``encoder``, or "" when it can."""
    listing = run([ffmpeg, *encoders_command()[1:]]).stdout.decode(errors="replace")
    if encoder not in listed_encoders(listing):
        return f"this ffmpeg ({ffmpeg}) has no {encoder} encoder"
    if encoder not in NVENC:
        return ""
    trial = subprocess.run(
        [ffmpeg, *encoder_trial_command(encoder)[1:]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if trial.returncode == 0:
        return ""
    reason = _encoder_message(trial.stderr.decode(errors="replace"), encoder)
    return (
        f"ffmpeg cannot open the {encoder} encoder here ({reason}); NVENC needs an NVIDIA GPU "
        "with a video encoder and its driver"
    )


def _encoder_message(stderr: str, encoder: str) -> str:
    """The encoder's own complaint in ffmpeg's stderr (``[h264_nvenc @ 0x...] Cannot load
    libcuda.so.1`` -> ``Cannot load libcuda.so.1``), else its last line."""
    for line in stderr.splitlines():
        if line.startswith(f"[{encoder} @") and "]" in line:
            return line.split("]", 1)[1].strip()
    return last_line(stderr)


def colour_args(settings: EncodeSettings) -> list[str]:
    """ffmpeg output options that tag a stream with the settings' range and colour tags (for
    an encoder, or for a stream copy into a container that stores them)."""
    s = settings
    cmd = ["-color_range", "pc" if s.full_range else "tv"]
    for flag, value in (
        ("-colorspace", s.color_space),
        ("-color_primaries", s.color_primaries),
        ("-color_trc", s.color_transfer),
    ):
        if value:
            cmd += [flag, value]
    return cmd


def codec_args(s: EncodeSettings) -> list[str]:
    """ffmpeg output options that choose and tune the settings' encoder."""
    no_b_frames = [] if s.b_frames else ["-bf", "0"]
    if s.codec == "libx264":
        # x264 holds its lookahead's frames: 40 of them at medium, 1.7 GB at 4K. Above 1080p
        # half of them keeps the whole run under 3 GB, at a small cost in compression.
        lookahead = ["-rc-lookahead", "20"] if s.width * s.height > 1920 * 1088 else []
        return ["-c:v", "libx264", "-preset", s.preset, "-crf", str(s.crf), *no_b_frames,
                *lookahead]  # fmt: skip
    if s.codec == "libx265":
        return ["-c:v", "libx265", "-preset", s.preset, "-crf", str(s.crf), *no_b_frames,
                "-x265-params", "log-level=error"]  # fmt: skip
    if s.codec in NVENC:
        return ["-c:v", s.codec, "-preset", _NVENC_PRESETS[s.preset], "-tune", "hq",
                "-rc", "vbr", "-cq", str(max(1, s.crf)), "-b:v", "0", *no_b_frames]  # fmt: skip
    if s.codec == "ffv1":
        return ["-c:v", "ffv1", "-level", "3"]
    return ["-c:v", "prores_ks", "-profile:v", "3"]


class FrameWriter:
    """Feed frames to an ffmpeg encoder; a context manager that checks the encoder's result.

    The encoder writes its stream to a pipe and this process writes it into ``out_path``, so
    that a failed write (a full disk) is seen: ffmpeg's NUT muxer ignores write errors and
    exits with 0 after writing part of the file. On a clean exit the encoder is closed and its
    return code checked; on an exception it is killed. The caller owns ``out_path`` (write to
    a temporary name and rename when done).
    """

    def __init__(self, settings: EncodeSettings, out_path: str | Path, muxer: str = "nut") -> None:
        self.settings = settings
        self.out_path = Path(out_path)
        self.command = writer_command(settings, muxer)
        self.frames_written = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: StderrReader | None = None
        self._copier: threading.Thread | None = None
        self._write_error: OSError | None = None
        self._stderr_text = ""

    def __enter__(self) -> FrameWriter:
        out = self.out_path.open("wb")
        try:
            cmd = [tool("ffmpeg"), *self.command[1:]]
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # see media.ffmpeg: Ctrl-C reaches this process alone
            )
        except BaseException:
            out.close()
            raise
        assert self._proc.stderr is not None
        self._stderr = StderrReader(self._proc.stderr)
        self._copier = threading.Thread(target=self._copy, args=(out,), name="copy", daemon=True)
        self._copier.start()
        return self

    def _copy(self, out: IO[bytes]) -> None:
        """Copy the encoder's stream into the file; on a write error, record it and stop the
        encoder (it would otherwise block on its full stdout pipe)."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        source = proc.stdout.fileno()
        try:
            with out:
                while chunk := os.read(source, _CHUNK):
                    out.write(chunk)
        except OSError as exc:
            self._write_error = exc
            proc.kill()

    def write(self, luma: np.ndarray, chroma: np.ndarray) -> None:
        """Encode frames.

        Args:
            luma: ``(n, H, W)`` Y planes (uint8, or uint16 holding 10-bit values).
            chroma: ``(n, 2, h, w)`` U and V planes of the same dtype, ``(h, w)`` being
                :attr:`EncodeSettings.chroma_size` (half the frame's sides for 4:2:0).

        Raises:
            DiskFullError: the file could not be written for lack of space.
            EncodeError: the encoder stopped.
        """
        s = self.settings
        if luma.ndim != 3 or luma.shape[1:] != (s.height, s.width):
            raise ValueError(f"luma must be (n, {s.height}, {s.width}), got {luma.shape}")
        if chroma.shape != (luma.shape[0], 2, *s.chroma_size) or chroma.dtype != luma.dtype:
            raise ValueError(f"chroma {chroma.shape} {chroma.dtype} does not match luma")
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise RuntimeError("FrameWriter.write() needs the writer to be open")
        n = luma.shape[0]
        frames = np.concatenate([luma.reshape(n, -1), chroma.reshape(n, -1)], axis=1)  # Y, U, V
        if frames.dtype != np.uint8:
            frames = frames.astype("<u2", copy=False)
        try:
            proc.stdin.write(frames.tobytes())
        except BrokenPipeError:
            self._fail("the encoder stopped accepting frames")
        self.frames_written += luma.shape[0]

    def kill(self) -> None:
        """Kill the encoder now, from any thread: a write in progress fails at once. For a
        run that is stopping; the output is incomplete."""
        proc = self._proc
        if proc is not None:
            proc.kill()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc = self._proc
        if proc is None:
            return
        if exc_type is not None:
            proc.kill()
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        code = proc.wait()
        self._join()
        if exc_type is None and (code != 0 or self._write_error is not None):
            self._fail(f"ffmpeg exited with code {code}")

    def _join(self) -> None:
        """Wait for the copying and stderr threads (the encoder has ended)."""
        if self._copier is not None:
            self._copier.join()
        proc = self._proc
        self._proc = None
        if proc is not None:
            assert proc.stdout is not None and proc.stderr is not None
            self._stderr_text = self._stderr.text() if self._stderr is not None else ""
            proc.stdout.close()
            proc.stderr.close()

    def _fail(self, reason: str) -> None:
        proc = self._proc
        if proc is not None:
            proc.kill()
            proc.wait()
            self._join()
        if self._write_error is not None:
            error = self._write_error
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise no_space(self.out_path.parent) from error
            raise EncodeError(
                f"{self.out_path}: cannot write ({error.strerror or error})", command=self.command
            ) from error
        stderr = self._stderr_text
        detail = last_line(stderr) if stderr.strip() else reason
        raise EncodeError(
            f"{self.out_path}: encoding failed ({detail})",
            command=self.command,
            stderr=stderr[-STDERR_KEEP:],
        )
