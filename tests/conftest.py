"""Shared fixtures: synthetic clips made with ffmpeg's lavfi sources, a random-weight model."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from deoldify_video.inference import Colorizer
from deoldify_video.nets.lite import lite
from deoldify_video.nets.registry import InputPolicy, ModelSpec
from deoldify_video.types import VideoInfo

# Small real photos and clips, with their sources and licences in data/README.md.
DATA = Path(__file__).resolve().parent / "data"

torch.set_num_threads(2)


def _picture(size: str, rate: int | str) -> list[str]:
    """ffmpeg input options of a lavfi test pattern, in black and white (a colour input would
    be refused)."""
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate},hue=s=0"]


def _tone(frequency: int, sample_rate: int) -> list[str]:
    """ffmpeg input options of a lavfi sine tone."""
    return ["-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate={sample_rate}"]


# name -> ffmpeg arguments after "ffmpeg -v error -y" and before the output path.
_CLIPS: dict[str, tuple[str, list[str]]] = {
    "basic.mp4": (
        "mp4",
        [
            *_picture("320x240", 25),
            *_tone(440, 48000),
            "-t",
            "1.2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ],
    ),
    "odd.mkv": (
        "mkv",
        [
            *_picture("322x242", 25),
            "-t",
            "0.8",
            "-vf",
            "scale=321:241",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv444p",
        ],
    ),
    "tenbit.mkv": (
        "mkv",
        [
            *_picture("320x240", 24),
            *_tone(300, 44100),
            "-t",
            "0.8",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p10le",
            "-c:a",
            "flac",
            "-shortest",
        ],
    ),
    "vfr.mkv": (
        "mkv",
        [
            *_picture("320x240", 25),
            *_tone(500, 48000),
            "-t",
            "2",
            "-vf",
            "select='not(mod(n\\,3))+eq(mod(n\\,7)\\,1)'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-c:a",
            "libopus",
            "-shortest",
        ],
    ),
    "anamorphic.mp4": (
        "mp4",
        [
            *_picture("320x240", "30000/1001"),
            "-t",
            "0.8",
            "-vf",
            "setsar=4/3",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-colorspace",
            "bt709",
            "-color_primaries",
            "bt709",
            "-color_trc",
            "bt709",
        ],
    ),
    "multi.mkv": (
        "mkv",
        [
            *_picture("320x240", 25),
            *_tone(440, 48000),
            *_tone(660, 48000),
            "-i",
            "{srt}",
            "-i",
            "{chapters}",
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "2:a",
            "-map",
            "3:s",
            "-map_chapters",
            "4",
            "-t",
            "1.2",
            "-c:v",
            "libx264",
            "-c:a:0",
            "aac",
            "-c:a:1",
            "libopus",
            "-c:s",
            "srt",
            "-metadata:s:a:0",
            "language=eng",
            "-metadata:s:a:1",
            "language=fra",
            "-metadata",
            "title=Test reel",
            "-shortest",
        ],
    ),
    # AVI stores no presentation times for H.264 with B-frames: only decoding times
    "bframes.avi": (
        "avi",
        [
            *_picture("320x240", 25),
            *_tone(440, 48000),
            "-t",
            "1.2",
            "-c:v",
            "libx264",
            "-bf",
            "3",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "pcm_s16le",
        ],
    ),
    # a frame missing from an AVI (as a capture drops it): a gap of two ticks
    "dropped.avi": (
        "avi",
        [
            *_picture("320x240", 25),
            *_tone(440, 48000),
            "-t",
            "1.2",
            "-vf",
            "select='not(eq(n,5))'",
            "-fps_mode:v",
            "passthrough",
            "-c:v",
            "mpeg4",
            "-c:a",
            "pcm_s16le",
        ],
    ),
    # interlaced PAL-size MPEG-2, top field first
    "interlaced.mpg": (
        "mpg",
        [
            *_picture("720x576", 50),
            *_tone(440, 48000),
            "-t",
            "1",
            "-vf",
            "tinterlace=4,setfield=tff",
            "-c:v",
            "mpeg2video",
            "-flags",
            "+ilme+ildct",
            "-top",
            "1",
            "-c:a",
            "mp2",
        ],
    ),
    "audio-only.m4a": ("m4a", ["-f", "lavfi", "-i", "sine", "-t", "1", "-c:a", "aac"]),
    "silent.mp4": (
        "mp4",
        [
            *_picture("176x144", 15),
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    ),
}


@dataclass(frozen=True)
class ClipFacts:
    """What probing a synthetic clip must find, worked out from the ffmpeg arguments that made
    it (not from a probe), so that a probe that miscounts the input and the output alike fails.

    Attributes:
        frames: decodable frames: the frames of the duration kept, less those selected out.
        fps: the nominal frame rate.
        size: coded (width, height), before rotation.
        sar: sample aspect ratio.
        rotation: display rotation in degrees clockwise.
    """

    frames: int
    fps: Fraction
    size: tuple[int, int]
    sar: Fraction = Fraction(1)
    rotation: int = 0

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown: what the pipeline writes, upright."""
        width, height = self.size
        return (height, width) if self.rotation in (90, 270) else (width, height)

    @property
    def display_sar(self) -> Fraction:
        """The SAR of the upright picture."""
        return 1 / self.sar if self.rotation in (90, 270) else self.sar


# Every video clip above (and the rotated one), with its facts. ffmpeg's -t keeps
# round(duration * rate) frames.
CLIP_FACTS: dict[str, ClipFacts] = {
    "basic.mp4": ClipFacts(30, Fraction(25), (320, 240)),  # 1.2 s at 25
    "odd.mkv": ClipFacts(20, Fraction(25), (321, 241)),  # 0.8 s at 25
    "tenbit.mkv": ClipFacts(19, Fraction(24), (320, 240)),  # 0.8 s at 24: 19.2 -> 19
    # 2 s at 25: n in 0..49 with n % 3 == 0 (17) or n % 7 == 1 (7), both for n = 15, 36
    "vfr.mkv": ClipFacts(22, Fraction(25), (320, 240)),
    # 0.8 s at 30000/1001: 23.98 -> 24
    "anamorphic.mp4": ClipFacts(24, Fraction(30000, 1001), (320, 240), Fraction(4, 3)),
    "multi.mkv": ClipFacts(30, Fraction(25), (320, 240)),  # 1.2 s at 25
    "bframes.avi": ClipFacts(30, Fraction(25), (320, 240)),  # 1.2 s at 25
    "dropped.avi": ClipFacts(29, Fraction(25), (320, 240)),  # 1.2 s at 25, frame 5 dropped
    "interlaced.mpg": ClipFacts(25, Fraction(25), (720, 576)),  # 50 frames/s woven in pairs
    "silent.mp4": ClipFacts(15, Fraction(15), (176, 144)),  # 1 s at 15
    # silent.mp4 tagged rotate=90: this ffmpeg stores a display matrix of 90 degrees
    # counter-clockwise, which is 270 clockwise
    "rotated.mp4": ClipFacts(15, Fraction(15), (176, 144), rotation=270),
}


def check_facts(info: VideoInfo, facts: ClipFacts) -> None:
    """Assert that a probe of a synthetic clip found its facts."""
    found = (info.frame_count, info.fps, (info.width, info.height), info.sar, info.rotation)
    assert found == (facts.frames, facts.fps, facts.size, facts.sar, facts.rotation)
    assert info.display_size == facts.display_size


_SRT = "1\n00:00:00,000 --> 00:00:00,800\nHello\n\n2\n00:00:00,800 --> 00:00:01,100\nWorld\n"
_CHAPTERS = (
    ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=600\ntitle=One\n"
    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=600\nEND=1200\ntitle=Two\n"
)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def make_clip(clip_dir: Path) -> Callable[[str], Path]:
    """Build (once per test session) and return the synthetic clip called ``name``."""

    def make(name: str) -> Path:
        out = clip_dir / name
        if not out.exists():
            srt = clip_dir / "subs.srt"
            srt.write_text(_SRT)
            chapters = clip_dir / "chapters.txt"
            chapters.write_text(_CHAPTERS)
            _, args = _CLIPS[name]
            args = [a.format(srt=srt, chapters=chapters) for a in args]
            ffmpeg(*args, str(out))
        return out

    return make


@pytest.fixture(scope="session")
def rotated_clip(make_clip: Callable[[str], Path], clip_dir: Path) -> Path:
    """A 320x240 clip with a 90-degree display rotation (shown as 240x320)."""
    out = clip_dir / "rotated.mp4"
    if not out.exists():
        plain = make_clip("silent.mp4")
        ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(out))
    return out


@pytest.fixture(scope="session")
def tiny_colorizer() -> Colorizer:
    """The lite architecture with fixed random weights at a 64 px render size: fast, not good."""
    torch.manual_seed(0)
    spec = ModelSpec("tiny", lite, InputPolicy("luma-chroma", 4, size_multiple=32), "tiny.pt")
    return Colorizer(lite(), spec, "cpu", batch_size=4)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory, tiny_colorizer: Colorizer) -> Path:
    """The tiny colorizer's random weights saved as a state dict, for ``--model PATH``."""
    path = tmp_path_factory.mktemp("weights") / "random-lite.pt"
    torch.save(tiny_colorizer.model.state_dict(), path)
    return path
