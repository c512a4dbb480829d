"""Frozen records passed between the layers. Standard library only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from .timecode import TimeSpan


@dataclass(frozen=True)
class StreamInfo:
    """A non-video stream of the source (audio, subtitle, attachment, data).

    Attributes:
        index: the stream's index in the container (ffprobe's ``index``).
        kind: ``"audio"``, ``"subtitle"``, ``"attachment"`` or ``"data"``.
        codec: ffprobe's ``codec_name`` (``"aac"``, ``"opus"``, ``"subrip"``...), "" if unknown.
        language: the ``language`` tag, "" if absent.
        channels: audio channel count, 0 for other kinds.
    """

    index: int
    kind: str
    codec: str
    language: str = ""
    channels: int = 0


# Bits per sample of the planes the pipeline works with (see VideoInfo.plane_depth).
PLANE_DEPTHS = (8, 10, 12, 16)
# Pixel formats (ffmpeg's names, by prefix) that the decoder delivers as YUV or grey planes.
_YUV_PREFIXES = ("yuv", "yuvj", "gray", "nv", "p010", "p016", "p210", "p216", "y2", "yuyv", "uyvy")


@dataclass(frozen=True)
class VideoInfo:
    """What ffprobe says about a video file, normalised.

    Attributes:
        path: the probed file.
        width, height: coded frame size in pixels (before rotation).
        fps: the nominal frame rate as an exact fraction (``Fraction(30000, 1001)``).
        frame_count: number of decodable frames (counted by decoding when the container has none).
        duration: seconds, 0.0 if unknown.
        vfr: True when the frame timestamps are not evenly spaced.
        rotation: display rotation in degrees clockwise, one of 0, 90, 180, 270.
        sar: sample (pixel) aspect ratio, ``Fraction(1)`` for square pixels.
        pix_fmt: the decoder's pixel format (``"yuv420p"``, ``"yuv420p10le"``...).
        bit_depth: bits per luma sample (8, 10, 12...).
        color_range: ``"tv"``, ``"pc"`` or "" (unknown, treated as tv).
        color_space, color_primaries, color_transfer: ffprobe's tags, "" if unknown.
        codec: the video codec name.
        video_index: the container index of the video stream used.
        field_order: ``"tt"``, ``"bb"``, ``"tb"`` or ``"bt"`` for interlaced video (ffprobe's
            names: which field is coded, then displayed, first), "" for progressive or unknown.
        start_time: the video stream's first timestamp in seconds.
        format_start_time: the container's earliest timestamp in seconds (any stream).
        streams: every other stream (audio, subtitles, attachments).
        has_chapters: the container holds chapters.
        input_options: ffmpeg options that go before ``-i path`` to read it (an image
            sequence's ``-f image2 -framerate ... -start_number ...``); empty for a file.
        streams_path: the file that holds ``streams`` when it is not ``path`` (the sound given
            beside an image sequence); "" otherwise.
        container: the demuxer that reads the file (ffprobe's ``format_name``, such as
            ``"matroska,webm"``), "" if unknown.
        decode_delay: seconds that the decoder adds to the frame times the packets give (a
            stream without presentation times whose decoder reorders frames, as AVI with
            B-frames): a seek aims that much later. 0.0 for most files.
        key_times: the presentation times in seconds (the file's clock) of the video's key
            frames, where a decoder can start without decoding the frames before; empty when
            not known (an image sequence, whose every frame is one).
    """

    path: str
    width: int
    height: int
    fps: Fraction
    frame_count: int
    duration: float
    vfr: bool
    rotation: int
    sar: Fraction
    pix_fmt: str
    bit_depth: int
    color_range: str
    color_space: str
    color_primaries: str
    color_transfer: str
    codec: str
    video_index: int
    field_order: str = ""
    start_time: float = 0.0
    format_start_time: float = 0.0
    streams: tuple[StreamInfo, ...] = ()
    has_chapters: bool = False
    container: str = ""
    input_options: tuple[str, ...] = ()
    streams_path: str = ""
    decode_delay: float = 0.0
    key_times: tuple[float, ...] = field(default=(), repr=False)

    @property
    def is_sequence(self) -> bool:
        """The source is a numbered image sequence (``path`` is its ffmpeg pattern)."""
        return bool(self.input_options)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of the frames as the reader delivers them (rotation applied)."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height

    @property
    def plane_depth(self) -> int:
        """Bits per sample of the planes the pipeline works with: the source's own depth,
        rounded up to one of :data:`PLANE_DEPTHS` (a 14-bit scan is read as 16 bits,
        losslessly)."""
        return next(d for d in PLANE_DEPTHS if self.bit_depth <= d or d == PLANE_DEPTHS[-1])

    @property
    def is_rgb_source(self) -> bool:
        """True when the decoder delivers RGB (or palette) pictures rather than YUV planes.

        Such frames are converted to BT.601 "tv"-range YUV before the Y plane is taken.
        """
        return not self.pix_fmt.startswith(_YUV_PREFIXES)

    @property
    def full_range(self) -> bool:
        """True when the Y plane the reader delivers uses the full ("pc") range: never for an
        RGB source (converted to "tv" range), else as tagged (``yuvj`` formats are full)."""
        if self.is_rgb_source:
            return False
        return self.color_range == "pc" or self.pix_fmt.startswith("yuvj")

    @property
    def audio_streams(self) -> tuple[StreamInfo, ...]:
        return tuple(s for s in self.streams if s.kind == "audio")

    @property
    def subtitle_streams(self) -> tuple[StreamInfo, ...]:
        return tuple(s for s in self.streams if s.kind == "subtitle")


@dataclass(frozen=True)
class RenderConfig:
    """How a video is colorized and encoded.

    Attributes:
        model: registry name or path of a weights file.
        render_factor: model input size in units of 16 px (DeOldify's render_factor), or None
            for the model's default.
        batch_size: frames per model call (halved automatically on out-of-memory).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        codec: ``"libx264"``, ``"libx265"``, ``"ffv1"``, ``"prores"``, or NVIDIA's
            ``"h264_nvenc"`` / ``"hevc_nvenc"``.
        crf: constant rate factor for libx264/libx265 (0-51); None for their default (17).
            Refused with the other codecs.
        preset: libx264/libx265 speed preset (``"ultrafast"`` ... ``"veryslow"``); None for
            their default (``"medium"``). Refused with the other codecs.
        smooth: apply temporal smoothing.
        smooth_strength: from 0 to 0.95, the largest weight given to the previous frame's
            colour (see :class:`deoldify_video.temporal.SmoothingConfig`); None for the
            default (0.6). Refused when ``smooth`` is off.
        allow_truncated: colorize a truncated or damaged input as far as it goes (the frames
            that are there, as the decoder conceals damage), with a warning, instead of
            stopping. Frames are never dropped or duplicated either way.
        recolor: colorize a colour source too, replacing its colours; by default a colour
            source is refused.
        excerpt: colorize only this part of the video (see :mod:`deoldify_video.excerpt`);
            None for all of it.
        compare: also write a before/after video beside the output: ``"side"`` (the original
            and the colour video side by side) or ``"split"`` (one picture, the original on
            the left of a split line); None for none.
    """

    model: str = "default"
    render_factor: int | None = None
    batch_size: int = 8
    device: str = "auto"
    codec: str = "libx264"
    crf: int | None = None
    preset: str | None = None
    smooth: bool = True
    smooth_strength: float | None = None
    allow_truncated: bool = False
    recolor: bool = False
    excerpt: TimeSpan | None = None
    compare: str | None = None


@dataclass(frozen=True)
class Segment:
    """A range of frames ``[start, end)`` by frame index, encoded to one file."""

    index: int
    start: int
    end: int

    @property
    def frame_count(self) -> int:
        return self.end - self.start


Stage = Literal[
    "download",
    "batch",
    "colorize",
    "mux",
    "preview",
    "frames",
    "score",
    "evaluate",
    "train-gen",
    "train-critic",
    "train-gan",
]
"""The long operations that report progress, and the stages they go through."""

STAGES: tuple[Stage, ...] = get_args(Stage)


@dataclass(frozen=True)
class ProgressEvent:
    """A progress report sent to the caller's callback, by every long operation.

    Attributes:
        stage: what is being done (one of :data:`STAGES`):

            - ``"download"``: an online clip or a model's weights arriving (bytes);
            - ``"colorize"``: a video's frames through the model (frames);
            - ``"mux"``: the colour video joined with the source's other streams (0, then 1);
            - ``"frames"``: numbered image files written for an image-sequence output (frames);
            - ``"score"``: frames compared by ``evaluate --video`` (frames);
            - ``"evaluate"``: photos colorized and scored by ``evaluate --images`` (photos);
            - ``"train-gen"``, ``"train-critic"``, ``"train-gan"``: training steps of a phase.
        done: units finished so far.
        total: units in all, or None when unknown.
        message: optional human-readable detail (a file name, the current losses).

    Raises:
        ValueError: an unknown ``stage``.
    """

    stage: Stage
    done: int
    total: int | None
    message: str = ""

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown progress stage {self.stage!r} (stages: {STAGES})")


ProgressCallback = Callable[[ProgressEvent], None]
"""What receives a long operation's progress events; an exception it raises stops the
operation."""
