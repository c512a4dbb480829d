"""Run a colorization network on batches of frames: luminance in, chroma out.

The :class:`Colorizer` hides each model family's input policy (see
:class:`~deoldify_video.nets.registry.InputPolicy`): the caller gives luminance at any size
and gets BT.601 chroma at the model's render size, ready to be upsampled to the frame.

On a GPU the work stays there: :meth:`Colorizer.colorize_planes` sends the decoder's integer
planes through pinned memory with a non-blocking copy, and converts, resizes and normalises
them on the device; its results stay on the device for the chroma upsampling
(:func:`~deoldify_video.color.chroma_to_planes`), so that only integer planes cross the bus.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .color import luma_to_unit, rgb_to_ycbcr
from .errors import InferenceError, UsageError
from .nets.registry import InputPolicy, ModelSpec
from .nets.weights import load_network

log = logging.getLogger(__name__)

MAX_RENDER_FACTOR = 100
# Arithmetic the network can run in: float32, or float16 / bfloat16 under torch.autocast.
PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
# A model input more than this many times the picture's size gains no detail, only cost.
MAX_UPSCALE = 2.0


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA if present, else Apple MPS if present, else CPU; others as given.

    Raises:
        UsageError: an unknown device name, or one that is not available on this machine.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r} requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise UsageError(f"device {name!r} requested but only {count} CUDA device(s) exist")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError("device 'mps' requested but Apple MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unsupported device {name!r} (use auto, cpu, cuda, cuda:N or mps)")
    return device


def render_size(
    policy: InputPolicy, render_factor: int, height: int, width: int
) -> tuple[int, int]:
    """(height, width) of the model input for a frame of ``height`` x ``width``.

    ``"deoldify-rgb"`` stretches every frame to a square of side ``render_base * render_factor``.
    ``"luma-chroma"`` keeps the aspect ratio: the long side is ``render_base * render_factor``
    and both sides are rounded to the nearest multiple of ``size_multiple`` (halves up, at
    least one multiple).
    """
    check_render_factor(render_factor)
    side = policy.render_base * render_factor
    if policy.kind == "deoldify-rgb":
        return side, side
    m = policy.size_multiple

    def nearest_multiple(value: float) -> int:
        return max(m, int(value / m + 0.5) * m)

    long_side = nearest_multiple(side)
    scale = long_side / max(height, width)
    return nearest_multiple(height * scale), nearest_multiple(width * scale)


def oversize_note(colorizer: Colorizer, height: int, width: int) -> str:
    """A warning when the model input for a ``height`` x ``width`` picture is more than
    :data:`MAX_UPSCALE` times the picture on a side (it costs time and memory and adds no
    detail), else ""."""
    size = colorizer.render_size(height, width)
    ratio = max(size[0] / height, size[1] / width)
    if ratio <= MAX_UPSCALE:
        return ""
    fitting = max(1, max(height, width) // colorizer.policy.render_base)
    return (
        f"render factor {colorizer.render_factor} makes the model input {size[1]}x{size[0]}, "
        f"{ratio:.1f} times the {width}x{height} picture: slower and more memory for no more "
        f"detail (--render-factor {fitting} matches the picture)"
    )


def check_render_factor(render_factor: int) -> None:
    if not 1 <= render_factor <= MAX_RENDER_FACTOR:
        raise UsageError(
            f"bad render factor {render_factor}: use a whole number from 1 to {MAX_RENDER_FACTOR}"
        )


class Colorizer:
    """A network plus its input policy, on a device, colorizing batches of luminance.

    Args:
        model: the network (moved to ``device`` and put in eval mode here).
        spec: the model's registry record (for its input policy).
        device: where to run it.
        render_factor: model input size in units of ``policy.render_base`` px; None for the
            model's default.
        batch_size: frames per forward pass; halved automatically on out-of-memory.
        precision: ``"fp32"``, or ``"fp16"`` / ``"bf16"`` autocast; None for fp16 on CUDA and
            fp32 elsewhere.
    """

    def __init__(
        self,
        model: nn.Module,
        spec: ModelSpec,
        device: torch.device | str = "cpu",
        render_factor: int | None = None,
        batch_size: int = 8,
        precision: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        self.spec = spec
        self.policy = spec.policy
        self.device = torch.device(device)
        self.render_factor = render_factor or self.policy.default_render_factor
        check_render_factor(self.render_factor)
        self.batch_size = batch_size
        self.precision = precision or ("fp16" if self.device.type == "cuda" else "fp32")
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown precision {self.precision!r} (use {', '.join(PRECISIONS)})")
        self.model = model.to(self.device).eval()
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        channels = len(self.policy.mean)
        self._mean = torch.tensor(self.policy.mean, device=self.device).view(1, channels, 1, 1)
        self._std = torch.tensor(self.policy.std, device=self.device).view(1, channels, 1, 1)

    def render_size(self, height: int, width: int) -> tuple[int, int]:
        """Model input size for frames of ``height`` x ``width``."""
        return render_size(self.policy, self.render_factor, height, width)

    def to_render_size(self, luma: torch.Tensor) -> torch.Tensor:
        """Resize full-size luminance ``(N, 1, H, W)`` to the render size (area averaging when
        shrinking, bilinear when growing)."""
        height, width = luma.shape[-2:]
        size = self.render_size(height, width)
        if size == (height, width):
            return luma
        mode = "area" if size[0] <= height and size[1] <= width else "bilinear"
        kwargs = {} if mode == "area" else {"align_corners": False}
        return F.interpolate(luma, size=size, mode=mode, **kwargs).clamp_(0.0, 1.0)

    def predict(self, luma: torch.Tensor) -> torch.Tensor:
        """Chroma for luminance already at render size.

        Args:
            luma: ``(N, 1, h, w)`` float in ``[0, 1]``, any device.

        Returns:
            ``(N, 2, h, w)`` float32 BT.601 (Cb, Cr) in ``[-0.5, 0.5]``, on the CPU.

        Raises:
            InferenceError: the model fails, or runs out of memory even with one frame.
        """
        return self.predict_on_device(luma).cpu()

    @torch.inference_mode()
    def predict_on_device(self, luma: torch.Tensor) -> torch.Tensor:
        """:meth:`predict`, with the chroma left on the model's device."""
        if luma.ndim != 4 or luma.shape[1] != 1:
            raise ValueError(f"luma must have shape (N, 1, h, w), got {tuple(luma.shape)}")
        outputs = []
        start = 0
        while start < luma.shape[0]:
            chunk = luma[start : start + self.batch_size]
            try:
                outputs.append(self._forward(chunk))
                start += chunk.shape[0]
                continue
            except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
                if not _is_out_of_memory(exc):
                    raise
                if self.batch_size == 1:
                    raise InferenceError(
                        f"out of memory on {self.device} even with one frame at render factor "
                        f"{self.render_factor}; lower --render-factor or use --device cpu"
                    ) from exc
            # Out of the except block, the failed pass's traceback (and the activations its
            # frames hold) is gone, so the memory can be handed back before the retry.
            self._halve_batch()
        return torch.cat(outputs)

    def _halve_batch(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.batch_size //= 2
        log.warning("out of memory on %s: batch size lowered to %d", self.device, self.batch_size)

    @torch.inference_mode()
    def run_network(self, x: torch.Tensor) -> torch.Tensor:
        """The bare network on an already normalised input (on the device, in the colorizer's
        precision); returns float32 on the device.

        A mixed-precision pass that overflows (an infinite or NaN output, which would become a
        wrong frame) is run again in float32, with a warning.
        """
        x = x.to(self.device, torch.float32)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            out = self.model(x).float()
        if self.precision != "fp32" and not bool(torch.isfinite(out).all()):
            log.warning(
                "model %r overflowed in %s on a batch of %d: redone in fp32",
                self.spec.name,
                self.precision,
                x.shape[0],
            )
            out = self.model(x).float()
        return out

    def _forward(self, luma: torch.Tensor) -> torch.Tensor:
        x = luma.to(self.device, torch.float32)
        if self.policy.kind == "deoldify-rgb":
            x = x.expand(-1, 3, -1, -1)
        out = self.run_network((x - self._mean) / self._std)
        if self.policy.kind == "deoldify-rgb":
            rgb = (out * self._std + self._mean).clamp(0.0, 1.0)
            chroma = rgb_to_ycbcr(rgb)[:, 1:]
        else:
            chroma = out.clamp(-0.5, 0.5)
        if chroma.shape[-2:] != luma.shape[-2:]:
            raise InferenceError(
                f"model {self.spec.name!r} returned {tuple(chroma.shape)} for input "
                f"{tuple(luma.shape)}: output size must equal input size"
            )
        return chroma

    @property
    def _channels_last(self) -> bool:
        """NHWC convolutions: faster on the CPU and on CUDA's tensor cores."""
        return self.device.type in ("cpu", "cuda")

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def colorize(self, luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-size luminance ``(N, 1, H, W)`` in ``[0, 1]`` -> (render-size luminance
        ``(N, 1, h, w)``, chroma ``(N, 2, h, w)`` on the CPU)."""
        small = self.to_render_size(luma)
        return small, self.predict(small)

    def colorize_planes(
        self, planes: np.ndarray, bit_depth: int, full_range: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's Y planes -> (render-size luminance, chroma), both on the model's device.

        Args:
            planes: ``(N, H, W)`` uint8, or uint16 holding ``bit_depth``-bit values.
            bit_depth: 8, 10, 12 or 16.
            full_range: the planes use the "pc" range.

        Returns:
            ``(N, 1, h, w)`` luminance in ``[0, 1]`` and ``(N, 2, h, w)`` BT.601 chroma in
            ``[-0.5, 0.5]``, float32. On the CPU the same values as :meth:`colorize` of
            :func:`~deoldify_video.color.luma_to_unit`.
        """
        source = planes if self.device.type == "cpu" else self._upload(planes)
        small = self.to_render_size(luma_to_unit(source, bit_depth, full_range))
        return small, self.predict_on_device(small)

    def _upload(self, planes: np.ndarray) -> torch.Tensor:
        """Integer planes to the device: through pinned memory and a non-blocking copy on CUDA.

        16-bit samples travel as int16 (the same bits; :func:`luma_to_unit` reads them back
        as unsigned).
        """
        array = planes.view(np.int16) if planes.dtype == np.uint16 else planes
        pinned = self.device.type == "cuda"
        host = torch.empty(array.shape, dtype=_TORCH_INTS[array.dtype], pin_memory=pinned)
        host.numpy()[...] = array
        # The caching host allocator keeps the pinned block until the copy has completed.
        return host.to(self.device, non_blocking=pinned)


_TORCH_INTS = {np.dtype(np.uint8): torch.uint8, np.dtype(np.int16): torch.int16}


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def load_colorizer(
    model: str = "default",
    device: str = "auto",
    render_factor: int | None = None,
    batch_size: int = 8,
    weights: str | None = None,
    precision: str | None = None,
) -> Colorizer:
    """A ready :class:`Colorizer` for a registry name (``"default"`` = the shipped model) or a
    weights file, whose architecture is recognised from its keys (``precision``: see
    :class:`Colorizer`).

    Args:
        weights: a weights file for the registry name ``model``, instead of its own.

    Raises:
        ModelNotFoundError, WeightsError, UsageError: unknown model, bad weights, bad options.
    """
    if render_factor is not None:
        check_render_factor(render_factor)
    target = resolve_device(device)
    spec, network = load_network(model, weights, device=target)
    return Colorizer(network, spec, target, render_factor, batch_size, precision)
