"""The model registry: one explicit record per named model.

A :class:`ModelSpec` says how to build the network, where its weights come from, and the
input policy that turns video frames into the network's input and its output into chroma
(see :mod:`deoldify_video.inference`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..deoldify_policy import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ModelNotFoundError, UsageError
from .lite import head_of_state, lite, lite_bins
from .unet import deoldify_deep, deoldify_wide


@dataclass(frozen=True)
class InputPolicy:
    """How frames are fed to a network and how its output becomes chroma.

    Attributes:
        kind: ``"luma-chroma"``: input ``(N, 1, H, W)`` luminance scaled by ``mean``/``std``,
            output ``(N, 2, H, W)`` BT.601 (Cb, Cr) in ``[-0.5, 0.5]``; the render size keeps
            the frame's aspect ratio with its long side at ``render_base * render_factor``.
            ``"deoldify-rgb"``: DeOldify's policy: the frame is stretched to a square of side
            ``render_base * render_factor``, fed as 3 grey channels with ImageNet ``mean``/``std``,
            and the output is normalised RGB that is denormalised and clamped.
        default_render_factor: render factor used when the user gives none.
        render_base: pixels per render-factor unit (16, as in DeOldify).
        size_multiple: the network needs input sides divisible by this.
        mean, std: per-channel normalisation of the input.
    """

    kind: str
    default_render_factor: int
    render_base: int = 16
    size_multiple: int = 16
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)


@dataclass(frozen=True)
class ModelSpec:
    """A named model.

    Attributes:
        name: registry key (``"lite"``, ``"video"``...).
        builder: builds the network with random weights.
        policy: the input policy.
        weights_file: file name of the weights (in ``models/`` when shipped, else in the cache).
        url: where to download the weights, or "" for shipped weights.
        sha256: expected sha256 of the weights file, or "" when not pinned.
        size_bytes: expected size of the weights file, 0 when not pinned.
        licence: licence of the weights.
        card: file name of the model card in ``models/``.
        description: one line for ``models list``.
        state_builder: for a model whose weights files come with different heads: the builder
            of the network a state dict was saved from (None: ``builder`` for every file).
    """

    name: str
    builder: Callable[[], nn.Module]
    policy: InputPolicy
    weights_file: str
    url: str = ""
    sha256: str = ""
    size_bytes: int = 0
    licence: str = ""
    card: str = ""
    description: str = ""
    state_builder: Callable[[Mapping[str, torch.Tensor]], Callable[[], nn.Module]] | None = None

    @property
    def shipped(self) -> bool:
        return not self.url

    def builder_for(self, state: Mapping[str, torch.Tensor]) -> Callable[[], nn.Module]:
        """The builder of the network that ``state`` loads into: ``state_builder(state)``
        when the spec has one, else ``builder``."""
        return self.builder if self.state_builder is None else self.state_builder(state)


def _lite_builder(state: Mapping[str, torch.Tensor]) -> Callable[[], nn.Module]:
    """The lite network of a state dict's head: the shipped chroma head or the bins head."""
    return lite_bins if head_of_state(state) == "bins" else lite


DEFAULT_MODEL = "lite"

# The registry: every named model, listed explicitly (built at the bottom of this module).
_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="lite",
        builder=lite,
        policy=InputPolicy(
            kind="luma-chroma", default_render_factor=16, size_multiple=32, mean=(0.5,), std=(0.5,)
        ),
        weights_file="lite.pt",
        sha256="9a2f5bcb694dfe2a075b87b6d6ddc7c0d6748d93cb6c994dc3ebc7fd28049e0e",
        licence="MIT; trained on CC-BY, CC-BY-SA, CC0 and GPL-2+ photos (see lite.md)",
        card="lite.md",
        description="Shipped lite NoGAN colorizer (EfficientNet-Lite0 U-Net, 8 MB): fast on CPU",
        state_builder=_lite_builder,
    ),
    ModelSpec(
        name="video",
        builder=deoldify_wide,
        policy=InputPolicy(
            kind="deoldify-rgb", default_render_factor=21, mean=IMAGENET_MEAN, std=IMAGENET_STD
        ),
        weights_file="ColorizeVideo_gen.pth",
        url="https://data.deepai.org/deoldify/ColorizeVideo_gen.pth",
        licence="MIT (DeOldify, Jason Antic and Dana Kelley)",
        card="video.md",
        description="DeOldify's video generator (ResNet-101 U-Net, 874 MB): steady colours",
    ),
    ModelSpec(
        name="stable",
        builder=deoldify_wide,
        policy=InputPolicy(
            kind="deoldify-rgb", default_render_factor=35, mean=IMAGENET_MEAN, std=IMAGENET_STD
        ),
        weights_file="ColorizeStable_gen.pth",
        url="https://www.dropbox.com/s/usf7uifrctqw9rl/ColorizeStable_gen.pth?dl=1",
        licence="MIT (DeOldify, Jason Antic and Dana Kelley)",
        card="stable.md",
        description="DeOldify's stable image generator (ResNet-101 U-Net, 874 MB): natural scenes",
    ),
    ModelSpec(
        name="artistic",
        builder=deoldify_deep,
        policy=InputPolicy(
            kind="deoldify-rgb", default_render_factor=35, mean=IMAGENET_MEAN, std=IMAGENET_STD
        ),
        weights_file="ColorizeArtistic_gen.pth",
        url="https://data.deepai.org/deoldify/ColorizeArtistic_gen.pth",
        licence="MIT (DeOldify, Jason Antic and Dana Kelley)",
        card="artistic.md",
        description="DeOldify's artistic generator (ResNet-34 U-Net, 255 MB): vivid, less steady",
    ),
)
_REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}
# input policy kinds the colorizer knows (see InputPolicy.kind)
POLICY_KINDS = ("luma-chroma", "deoldify-rgb")


def list_models() -> list[str]:
    """The names of every registered model, sorted (built-in ones and those registered with
    :func:`register_model`).

    >>> [name for name in list_models() if name in ("lite", "video")]
    ['lite', 'video']
    """
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The spec registered as ``name`` (``"default"`` means :data:`DEFAULT_MODEL`).

    Raises:
        ModelNotFoundError: no model is registered under ``name``.
    """
    key = DEFAULT_MODEL if name == "default" else name
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(list_models())
        raise ModelNotFoundError(f"unknown model {name!r} (known models: {known})") from None


def register_model(spec: ModelSpec, replace: bool = False) -> ModelSpec:
    """Make a model of one's own known by name, to every function that takes a model name
    (``load_colorizer(spec.name)``, ``load_model``, ``RenderConfig(model=...)``) and to the
    recognition of weights files by their keys.

    A spec with ``url=""`` is looked for as ``weights_file`` in the shipped models folder; load
    it with ``weights=PATH`` to use a file kept elsewhere.

    Args:
        spec: the model; its ``builder`` returns the network with random weights.
        replace: allow replacing a model registered under the same name (a built-in one
            included).

    Returns:
        ``spec``.

    Raises:
        UsageError: an empty or reserved name (``"default"``), an unknown ``policy.kind``, or
            a name already registered without ``replace``.
    """
    if not spec.name or spec.name == "default" or spec.name != spec.name.strip():
        raise UsageError(f"cannot register a model as {spec.name!r}: not a usable name")
    if spec.policy.kind not in POLICY_KINDS:
        raise UsageError(
            f"model {spec.name!r}: unknown input policy kind {spec.policy.kind!r} "
            f"(kinds: {', '.join(POLICY_KINDS)})"
        )
    if spec.name in _REGISTRY and not replace:
        raise UsageError(f"a model named {spec.name!r} is already registered (replace=True)")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_model(name: str) -> None:
    """Forget a model added with :func:`register_model`; a replaced built-in model gets its
    own spec back.

    Raises:
        ModelNotFoundError: no model is registered under ``name``.
    """
    if name not in _REGISTRY:
        known = ", ".join(list_models())
        raise ModelNotFoundError(f"no model registered as {name!r} (known models: {known})")
    builtin = next((spec for spec in _SPECS if spec.name == name), None)
    if builtin is not None:
        _REGISTRY[name] = builtin
    else:
        del _REGISTRY[name]


def shipped_models_dir() -> Path:
    """The folder holding shipped weights: inside the installed package, or the checkout's."""
    packaged = Path(__file__).resolve().parent.parent / "models"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "models"
