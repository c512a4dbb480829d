"""The tables that benchmarks/gpu.py prints and writes beside its JSON, one per part."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from versus_frame_files import table


def fmt(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(data: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    m, parts = data["meta"], data["parts"]
    lines = [f"{m.get('gpu', m['device'])}; torch {m['torch']}; {m['cpus']} CPUs; {m['ffmpeg']}"]
    for name, part in parts.items():
        lines += ["", f"## {name} ({part['seconds']:.0f} s)"]
        if not part["ok"]:
            lines.append(f"FAILED: {part['error']}")
            continue
        lines += REPORTERS[name](part)
    return "\n".join(lines)


def error_or(row: dict[str, Any], text: Callable[[], str]) -> str:
    return f"error: {row['error']}" if "error" in row else text()


def report_models(part: dict[str, Any]) -> list[str]:
    lines = [
        "| model | way | precision | batch | frames/s | peak MiB | overflowed calls |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in part["per_model"].items():
        rows = [("DeOldify", r["deoldify_way"])]
        rows += [("ours" + (" compiled" if o.get("compiled") else ""), o) for o in r["ours"]]
        for way, o in rows:
            cells = error_or(
                o,
                lambda o=o: (
                    f"{o['fps']:.1f} | {fmt(o['peak_mib'], 0)} | {o.get('overflowed_batches', '')}"
                ),
            )
            lines.append(f"| {name} | {way} | {o['precision']} | {o['batch']} | {cells} |")
        if "speedup" in r:
            lines.append(f"| {name} | best / DeOldify's | | | {r['speedup']:.2f} x | | |")
    return lines


def report_pipeline(part: dict[str, Any]) -> list[str]:
    c = part["clip"]
    lines = [
        f"clip {c['size'][0]}x{c['size'][1]}, {c['frames']} frames",
        "| stage | frames/s | model busy | GPU utilisation % | overflowed batches |",
        "|---|---|---|---|---|",
    ]
    for key in ("decode_alone", "encode_alone"):
        lines.append(
            f"| {key} | " + error_or(part[key], lambda k=key: f"{part[k]['fps']:.1f} | | | |")
        )
    for name, r in part["per_model"].items():
        cells = error_or(
            r,
            lambda r=r: (
                f"{r['fps']:.1f} | {r['model_busy_fraction']:.0%} | "
                f"{fmt(r['gpu_utilisation_pct'])} | {r['overflowed_batches']}"
            ),
        )
        lines.append(f"| colorize_video, {name} | {cells} |")
    return lines


def report_correctness(part: dict[str, Any]) -> list[str]:
    lines = [
        f"{part['frames']} frames of {part['source']} against fp32",
        "| model | precision | mean CIEDE2000 | max chroma steps | non-finite | overflowed |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in part["per_model"].items():
        for precision, r in rows.items():
            if precision == "weights":
                continue
            cells = error_or(
                r,
                lambda r=r: (
                    f"{fmt(r['mean_ciede2000'], 3)} | "
                    f"{fmt(r['max_chroma_steps'], 2)} | {r['nonfinite_samples']} | "
                    f"{r['overflowed_batches']}"
                ),
            )
            lines.append(f"| {name} ({rows['weights']}) | {precision} | {cells} |")
    return lines


def report_oom(part: dict[str, Any]) -> list[str]:
    lines = []
    for name, r in part["per_model"].items():
        lines.append(
            f"- {name}: "
            + error_or(
                r,
                lambda r=r: (
                    f"{r['mode']}; batch {r['asked_batch']} -> {r['final_batch']}, "
                    f"{r['frames_out']} of {r['frames_in']} frames, max difference "
                    f"{r['max_difference_vs_small_batches']:.2g}"
                ),
            )
        )
    return lines


def report_ceiling(part: dict[str, Any]) -> list[str]:
    lines = [
        f"{part['frames']} frames, median of {part['repeat']}",
        "| run | frames/s | CPU ms/frame | x ffmpeg alone |",
        "|---|---|---|---|",
    ]
    for key, ratio in (
        ("ffmpeg_alone", None),
        ("null_smooth", "ratio_smooth"),
        ("null_no_smooth", "ratio_no_smooth"),
    ):
        r = part[key]
        share = f"{part[ratio]:.2f}" if ratio else "1.00"
        lines.append(f"| {key} | {r['fps']:.2f} | {r['cpu_ms_per_frame']:.0f} | {share} |")
    return lines


def report_versus(part: dict[str, Any]) -> list[str]:
    results = [r for r in part["per_model"].values() if "error" not in r]
    errors = [f"- {n}: error: {r['error']}" for n, r in part["per_model"].items() if "error" in r]
    return ([table(results)] if results else []) + errors


REPORTERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "models": report_models,
    "pipeline": report_pipeline,
    "correctness": report_correctness,
    "oom": report_oom,
    "ceiling": report_ceiling,
    "versus": report_versus,
}
