"""benchmarks/gpu.py works end to end on a CPU (``--device cpu --quick``): every part runs and
writes its numbers into the JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = {"models", "pipeline", "correctness", "oom", "ceiling", "versus"}


def test_gpu_benchmark_quick_on_the_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--device", "cpu", "--quick",
         "--threads", "1"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "gpu-benchmark.json").read_text())
    assert "## models" in (tmp_path / "gpu-benchmark.txt").read_text()
    assert data["meta"]["device"] == "cpu" and data["meta"]["quick"]
    parts = data["parts"]
    assert set(parts) == PARTS
    for name, part in parts.items():
        assert part["ok"], (name, part.get("traceback"))
        assert part["seconds"] > 0

    models = parts["models"]["per_model"]
    assert set(models) == {"video", "lite"}
    assert models["video"]["weights"] == "random" and models["lite"]["weights"].startswith(
        "trained"
    )
    for result in models.values():
        rows = [result["deoldify_way"], *result["ours"]]
        assert [(r["precision"], r["batch"]) for r in result["ours"]] == [("bf16", 1), ("bf16", 2)]
        assert all(r["fps"] > 0 and r["peak_mib"] is None for r in rows)
        assert result["speedup"] > 0

    pipeline = parts["pipeline"]
    assert pipeline["clip"]["size"] == [64, 48] and pipeline["clip"]["frames"] == 6
    assert pipeline["decode_alone"]["fps"] > 0 and pipeline["encode_alone"]["fps"] > 0
    lite = pipeline["per_model"]["lite"]
    assert lite["frames"] == 6 and lite["fps"] > 0
    assert 0 < lite["model_busy_s"] < lite["wall_s"]
    assert lite["overflowed_batches"] == 0

    for name, result in parts["correctness"]["per_model"].items():
        assert result["bf16"]["mean_ciede2000"] >= 0, name
        assert result["bf16"]["nonfinite_samples"] == 0, name
        assert result["bf16"]["overflowed_batches"] >= 0, name
    assert parts["correctness"]["per_model"]["lite"]["bf16"]["mean_ciede2000"] < 5

    for result in parts["oom"]["per_model"].values():
        assert result["asked_batch"] == 2 and result["final_batch"] == 1
        assert result["frames_out"] == result["frames_in"] == 2
        assert result["all_finite"] and len(result["warnings"]) == 1

    ceiling = parts["ceiling"]
    for key in ("ffmpeg_alone", "null_smooth", "null_no_smooth"):
        assert ceiling[key]["fps"] > 0 and ceiling[key]["cpu_ms_per_frame"] > 0
    assert ceiling["ratio_smooth"] > 0 and ceiling["ratio_no_smooth"] > 0

    versus = parts["versus"]["per_model"]["lite"]
    for loop in ("frame_files", "colorize"):
        assert versus[loop]["frames"] == 6 and versus[loop]["wall_s"] > 0
        assert versus[loop]["peak_rss_mib"] > 0
    assert versus["speedup"] > 0
