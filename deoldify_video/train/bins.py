"""The class-rebalanced bin loss of the lite bins head (Zhang et al., 2016).

The true chroma is downsampled (area) to the stride of the logits and soft-encoded on its
:data:`NEIGHBOURS` nearest bins with a Gaussian of :data:`SIGMA` (half the grid step, as the
paper's 5 for a grid of 10): a soft target tells the network that neighbouring bins are
nearly right, so its distributions, and the annealed mean read from them, vary smoothly
instead of jumping between grid points. Each pixel's cross-entropy is weighted by the
rebalancing weight of its nearest bin, so rare, saturated colours are not drowned by the
common greys and browns:

    w ∝ 1 / ((1 - λ) p̃ + λ / Q),  E_p̃[w] = 1,

``p̃`` being the empirical bin distribution of training crops smoothed with a Gaussian over
the grid (:func:`bin_prior`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from ..nets.lite import BIN_STEP

NEIGHBOURS = 5
SIGMA = BIN_STEP / 2.0
REBALANCE_LAMBDA = 0.5


def _sq_distances(chroma: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Squared distances ``(N, Q, h, w)`` from chroma ``(N, 2, h, w)`` to centres ``(Q, 2)``."""
    diff = chroma[:, None] - centres[None, :, :, None, None].to(chroma)
    return diff.square().sum(dim=2)


def nearest_bin(chroma: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index ``(N, h, w)`` int64 of the bin centre nearest to each pixel of ``chroma``
    ``(N, 2, h, w)``."""
    return _sq_distances(chroma, centres).argmin(dim=1)


def soft_encode(
    chroma: torch.Tensor,
    centres: torch.Tensor,
    neighbours: int = NEIGHBOURS,
    sigma: float = SIGMA,
) -> torch.Tensor:
    """Target distributions ``(N, Q, h, w)`` (summing to 1 over ``Q``) for chroma
    ``(N, 2, h, w)``: a Gaussian of ``sigma`` over the ``neighbours`` nearest centres."""
    d2 = _sq_distances(chroma, centres)
    near, index = d2.topk(neighbours, dim=1, largest=False)
    weights = torch.softmax(-near / (2.0 * sigma**2), dim=1)
    return torch.zeros_like(d2).scatter_(1, index, weights)


def bin_prior(
    chroma_batches: Iterable[torch.Tensor], centres: torch.Tensor, sigma: float = SIGMA
) -> torch.Tensor:
    """The smoothed empirical bin distribution ``p̃`` ``(Q,)`` float32 (sums to 1).

    Every pixel of every ``(N, 2, h, w)`` chroma batch counts for its nearest bin; the counts
    are then smoothed with a Gaussian of ``sigma`` over the distance between centres.
    """
    counts = torch.zeros(centres.shape[0], dtype=torch.float64)
    for chroma in chroma_batches:
        index = nearest_bin(chroma.float(), centres.float()).flatten().cpu()
        counts += torch.bincount(index, minlength=counts.numel()).double()
    if counts.sum() == 0:
        raise ValueError("no pixel to estimate the bin distribution from")
    c = centres.double().cpu()
    kernel = torch.exp(-torch.cdist(c, c).square() / (2.0 * sigma**2))
    smoothed = kernel @ (counts / counts.sum())
    return (smoothed / smoothed.sum()).float()


def rebalance_weights(prior: torch.Tensor, lam: float = REBALANCE_LAMBDA) -> torch.Tensor:
    """Per-bin weights ``(Q,)``: ``1 / ((1 - lam) p̃ + lam / Q)``, scaled so that
    ``sum(p̃ * w) = 1``; rare bins weigh more (up to ``1 / lam`` times the uniform weight)."""
    weights = 1.0 / ((1.0 - lam) * prior + lam / prior.numel())
    return weights / (prior * weights).sum()


def bins_cross_entropy(
    logits: torch.Tensor, chroma: torch.Tensor, centres: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """The rebalanced cross-entropy, averaged over pixels.

    Args:
        logits: ``(N, Q, h, w)`` bin logits.
        chroma: ``(N, 2, H, W)`` true (Cb, Cr), downsampled (area) to ``(h, w)`` here.
        centres: ``(Q, 2)`` bin centres.
        weights: ``(Q,)`` rebalancing weights (:func:`rebalance_weights`).

    Returns:
        A scalar.
    """
    target = F.interpolate(chroma.float(), size=logits.shape[-2:], mode="area")
    soft = soft_encode(target, centres)
    pixel_weight = weights.to(logits.device)[soft.argmax(dim=1)]
    ce = -(soft * torch.log_softmax(logits.float(), dim=1)).sum(dim=1)
    return (pixel_weight * ce).mean()
