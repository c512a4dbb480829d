"""The lite network's bins head: the bin grid, the annealed-mean readout and loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deoldify_video.errors import WeightsError
from deoldify_video.nets.lite import (
    BIN_STEP,
    TEMPERATURE,
    LiteColorizer,
    annealed_mean,
    gamut_bins,
    head_of_state,
    in_gamut,
    lite,
    lite_bins,
)
from deoldify_video.nets.registry import get_spec
from deoldify_video.nets.weights import load_network


@pytest.fixture(scope="module")
def bins_net() -> LiteColorizer:
    torch.manual_seed(0)
    return lite("bins").eval()


def _spread(cb: torch.Tensor, cr: torch.Tensor) -> torch.Tensor:
    """max - min of the BT.601 (R, G, B) offsets from Y: a luminance in [0, 1] shows the
    chroma inside the RGB cube exactly when this is at most 1."""
    dr, db = 1.402 * cr, 1.772 * cb
    dg = -(0.299 * dr + 0.114 * db) / 0.587
    offsets = torch.stack([dr, dg, db])
    return offsets.amax(dim=0) - offsets.amin(dim=0)


def test_gamut_test_agrees_with_the_rgb_cube() -> None:
    values = torch.linspace(-0.5, 0.5, 81, dtype=torch.float64)
    cb, cr = torch.meshgrid(values, values, indexing="ij")
    grid = torch.stack([cb.flatten(), cr.flatten()], dim=1)
    spread = _spread(grid[:, 0], grid[:, 1])
    clear = (spread - 1.0).abs() > 5e-3  # leave out points on the edge (tolerance)
    assert torch.equal(in_gamut(grid)[clear], (spread <= 1.0)[clear])
    assert 0 < int((spread <= 1.0).sum()) < len(grid)


def test_bin_grid_keeps_the_colours_some_luminance_shows() -> None:
    centres = gamut_bins()
    assert centres.shape == (179, 2) and centres.dtype == torch.float32
    assert float(centres.abs().max()) <= 0.5
    assert torch.all(in_gamut(centres))
    assert any(bool(torch.all(c == 0.0)) for c in centres)  # grey is a bin
    steps = centres / BIN_STEP
    torch.testing.assert_close(steps, steps.round())  # on the grid
    assert not any(bool(torch.all(c == 0.5)) for c in centres)  # (0.5, 0.5) has no RGB
    assert gamut_bins(1.0 / 8.0).shape[0] < centres.shape[0]


def test_bins_head_output_contract(bins_net: LiteColorizer) -> None:
    x = torch.rand(2, 1, 64, 96) * 2.0 - 1.0
    with torch.no_grad():
        out = bins_net(x)
        logits = bins_net.logits(x)
    assert out.shape == (2, 2, 64, 96) and out.dtype == torch.float32
    assert float(out.abs().max()) <= 0.5
    assert logits.shape == (2, 179, 32, 48)
    torch.testing.assert_close(bins_net.readout(logits, (64, 96)), out)
    state = bins_net.state_dict()
    assert state["head.centres"].shape == (179, 2)
    assert float(state["head.temperature"]) == pytest.approx(TEMPERATURE)
    with pytest.raises(ValueError, match="no bin logits"):
        lite().logits(x)
    with pytest.raises(ValueError, match="unknown head"):
        LiteColorizer("rgb")


def test_one_hot_logits_read_out_as_their_bin() -> None:
    centres = gamut_bins()
    for q in (0, 57, 178):
        logits = torch.full((1, len(centres), 2, 3), -30.0)
        logits[:, q] = 30.0
        out = annealed_mean(logits, centres, TEMPERATURE)
        torch.testing.assert_close(out, centres[q].view(1, 2, 1, 1).expand(1, 2, 2, 3))


def test_lower_temperature_is_more_saturated_on_a_bimodal_distribution() -> None:
    centres = gamut_bins()
    red = int(torch.argmin((centres - torch.tensor([-0.125, 0.4375])).norm(dim=1)))
    cyan = int(torch.argmin((centres - torch.tensor([0.125, -0.4375])).norm(dim=1)))
    logits = torch.full((1, len(centres), 1, 1), -1e4)
    logits[0, red], logits[0, cyan] = 0.6, 0.0  # probabilities about 0.65 / 0.35 at T = 1
    saturation = [float(annealed_mean(logits, centres, t).norm()) for t in (1.0, TEMPERATURE, 0.1)]
    assert saturation[0] < saturation[1] < saturation[2]
    assert saturation[2] == pytest.approx(float(centres[red].norm()), rel=1e-2)


def test_a_bins_weights_file_loads_through_the_lite_entry(
    bins_net: LiteColorizer, tmp_path: Path
) -> None:
    state = {k: v.half() if v.is_floating_point() else v for k, v in bins_net.state_dict().items()}
    path = tmp_path / "mine.pt"
    torch.save(state, path)
    assert head_of_state(state) == "bins" and head_of_state(lite().state_dict()) == "chroma"
    assert get_spec("lite").builder_for(state) is lite_bins
    spec, net = load_network("lite", weights=path)
    assert spec.name == "lite" and isinstance(net, LiteColorizer) and net.head_kind == "bins"
    by_path, net2 = load_network(str(path))  # recognised from its keys
    assert by_path.name == "lite" and net2.head_kind == "bins"
    x = torch.rand(1, 1, 64, 64) * 2.0 - 1.0
    with torch.no_grad():
        reference = lite("bins")
        reference.load_state_dict(state)
        torch.testing.assert_close(net(x), reference.eval()(x))


def test_damaged_or_mismatched_bins_files_are_refused(
    bins_net: LiteColorizer, tmp_path: Path
) -> None:
    state = dict(bins_net.state_dict())
    torch.save(state, tmp_path / "full.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes((tmp_path / "full.pt").read_bytes()[:100_000])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_network("lite", weights=cut)
    state["head.centres"] = state["head.centres"][:-1]  # another grid than the network's
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match=r"does not fit.*head\.centres"):
        load_network("lite", weights=tmp_path / "other.pt")


def test_readout_is_the_softmax_mean_with_its_gradient() -> None:
    centres = gamut_bins()
    logits = (torch.randn(2, len(centres), 3, 3) * 8.0).requires_grad_()

    def reference(x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nqhw,qc->nchw", torch.softmax(x / TEMPERATURE, dim=1), centres)

    out = annealed_mean(logits, centres, TEMPERATURE)
    torch.testing.assert_close(out, reference(logits))
    (grad,) = torch.autograd.grad(out.square().sum(), logits)
    (expected,) = torch.autograd.grad(reference(logits).square().sum(), logits)
    torch.testing.assert_close(grad, expected)


def test_worker_processes_colorize_with_a_bins_weights_file(
    bins_net: LiteColorizer, tmp_path: Path, make_clip
) -> None:
    from .test_cli import run_cli

    weights = tmp_path / "bins.pt"
    torch.save(bins_net.state_dict(), weights)
    output = tmp_path / "out.mp4"
    proc = run_cli("colorize", str(make_clip("basic.mp4")), "-o", str(output), "--model",
                   str(weights), "--workers", "2", "--threads", "1", "--render-factor", "4",
                   "--segment-seconds", "0.5")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert output.stat().st_size > 0
