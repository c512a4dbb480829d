"""``colorize --cluster ray`` on a real Ray cluster of several nodes on this machine.

The tests start the cluster themselves (a head and a worker node of one CPU each, more nodes
where a test needs them) and stop it, ending only the processes they started. Every run is the
real command in a subprocess, compared with a single-machine run of the same clip: the same
decoded frames (frame md5s). Moments to kill are found by watching the job folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ffmpeg
from .test_jobs import frame_md5s
from .test_resume import finish, kill_when, make_reel, parts, run, segments_done, start

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from deoldify_video import cluster as ray_cluster  # noqa: E402
from deoldify_video.errors import ClusterError  # noqa: E402

FRAMES = 120
SEGMENT_SECONDS = "0.4"  # 10 frames at 25 fps: 12 segments
NODE_MEMORY = 100 * 2**20  # object store of each node
# Node deaths seen in about 1.5 s instead of about 13 s.
HEALTH_CHECKS = {
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 3,
    "health_check_timeout_ms": 500,
    "health_check_initial_delay_ms": 0,
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head node and a worker node, one CPU each, no dashboard."""
    temp = tmp_path_factory.mktemp("ray")
    saved = {name: os.environ.get(name) for name in ("RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED")}
    os.environ["RAY_TMPDIR"] = str(temp)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    head = {"num_cpus": 1, "object_store_memory": NODE_MEMORY, "include_dashboard": False,
            "_system_config": HEALTH_CHECKS}  # fmt: skip
    started = Cluster(initialize_head=True, head_node_args=head)
    try:
        started.add_node(num_cpus=1, object_store_memory=NODE_MEMORY)
        started.wait_for_nodes()
        yield started
    finally:
        started.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 frames (see :func:`make_reel`), in a folder of their own."""
    return make_reel(tmp_path_factory.mktemp("films") / "reel.mp4", FRAMES)


def command(inputs: list[Path], output: Path, weights: Path, *extra: str) -> list[str]:
    return ["colorize", *map(str, inputs), "-o", str(output), "--model", str(weights),
            "--render-factor", "2", "--segment-seconds", SEGMENT_SECONDS, "--threads", "1",
            *extra]  # fmt: skip


def on_cluster(cluster: Cluster) -> list[str]:
    return ["--cluster", "ray", "--ray-address", cluster.address]


@pytest.fixture(scope="module")
def reference(clip: Path, tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory):
    """Frame md5s of a run on this machine alone (``--workers 1``)."""
    output = tmp_path_factory.mktemp("reference") / "out.mkv"
    run(command([clip], output, tiny_weights, "--quiet"))
    md5s = frame_md5s(output)
    assert len(md5s) == FRAMES
    return md5s


def test_a_film_on_two_nodes_has_the_frames_of_one_machine_and_status_names_the_nodes(
    cluster, clip, tiny_weights, reference, tmp_path
):
    output = tmp_path / "out.mkv"
    run(command([clip], output, tiny_weights, "--quiet", "--keep-job", *on_cluster(cluster)))
    assert frame_md5s(output) == reference
    status = subprocess.run(
        [sys.executable, "-m", "deoldify_video", "jobs", "status", f"{output}.job"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    lines = [line for line in status.splitlines() if line.startswith("node:")]
    assert len(lines) == 2, status  # both nodes made segments
    made = sum(int(line.split(": ")[2].split()[0]) for line in lines)
    assert made == 12
    assert all("frames/s" in line for line in lines)
    assert not list(Path(f"{output}.job").glob("*.part"))


def test_a_node_killed_mid_job_loses_only_its_segments_and_the_film_is_the_same(
    cluster, clip, tiny_weights, reference, tmp_path
):
    doomed = cluster.add_node(num_cpus=1, object_store_memory=NODE_MEMORY)
    cluster.wait_for_nodes()
    try:
        output = tmp_path / "out.mkv"
        job_dir = Path(f"{output}.job")
        proc = start(command([clip], output, tiny_weights, "--quiet", *on_cluster(cluster)))
        # killed while its worker is making a segment (a part file named after the node)
        in_flight = f"*.{socket.gethostname()}-{doomed.node_id[:8]}-*.part"
        kill_when(
            _Raylet(doomed),
            lambda: segments_done(job_dir) >= 2 and parts(job_dir, in_flight),
            "two segments and one in flight on the doomed node",
        )
        code, err = finish(proc)
        assert code == 0, err
        assert "was lost" in err  # the dead node's segments were redone elsewhere
        assert frame_md5s(output) == reference
    finally:
        cluster.remove_node(doomed, allow_graceful=False)


class _Raylet:
    """A node's raylet, killed with SIGKILL by :func:`kill_when` (it asks for ``poll``)."""

    def __init__(self, node: Any) -> None:
        self.process = node.all_processes["raylet"][0].process

    def poll(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)

    def wait(self) -> None:
        self.process.wait()


def test_the_driver_killed_the_same_command_resumes_to_the_same_film(
    cluster, clip, tiny_weights, reference, tmp_path
):
    output = tmp_path / "out.mkv"
    job_dir = Path(f"{output}.job")
    args = command([clip], output, tiny_weights, "--quiet", *on_cluster(cluster))
    kill_when(start(args), lambda: segments_done(job_dir) >= 3, "three segments")
    assert not output.exists()
    err = run(["-v", *args])
    assert "resuming" in err
    assert frame_md5s(output) == reference


def test_ctrl_c_stops_the_run_with_130_and_frees_the_cluster_for_the_next(
    cluster, clip, tiny_weights, tmp_path
):
    output = tmp_path / "out.mkv"
    job_dir = Path(f"{output}.job")
    proc = start(command([clip], output, tiny_weights, "--quiet", *on_cluster(cluster)))
    while segments_done(job_dir) < 1:
        assert proc.poll() is None, finish(proc)[1]
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C reaches its foreground job
    code, err = finish(proc)
    assert code == 130, err
    assert "interrupted" in err and "Run the same command again to resume" in err
    assert not output.exists()
    # Its workers were killed: the next run (the test below) finds the cluster's CPUs free.


def test_when_the_last_node_that_can_hold_a_worker_dies_the_run_stops_with_an_error(
    cluster, clip, tiny_weights, tmp_path
):
    """Ray would wait forever for a worker no live node can hold: the driver says so."""
    big = cluster.add_node(num_cpus=2, object_store_memory=NODE_MEMORY)
    cluster.wait_for_nodes()
    try:
        output = tmp_path / "out.mkv"
        job_dir = Path(f"{output}.job")
        args = command([clip], output, tiny_weights, "--quiet")
        args[args.index("--threads") + 1] = "2"  # only the added node has 2 CPUs
        proc = start([*args, *on_cluster(cluster)])
        kill_when(_Raylet(big), lambda: segments_done(job_dir) >= 1, "a segment")
        code, err = finish(proc)
        assert code == 1, err  # a fault of the run, as a dead worker process on one machine
        assert "no Ray worker is left" in err, err
        assert not output.exists() and segments_done(job_dir) >= 1  # resumable
    finally:
        cluster.remove_node(big, allow_graceful=False)


def test_a_batch_with_a_corrupt_film_gives_the_others_one_error_line_and_exit_code_2(
    cluster, clip, tiny_weights, reference, tmp_path
):
    second = tmp_path / "second.mp4"
    shutil.copy(clip, second)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(50_000))
    out_dir = tmp_path / "colour"
    proc = start(command([clip, corrupt, second], out_dir, tiny_weights, *on_cluster(cluster)))
    code, err = finish(proc)
    assert code == 2, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and str(corrupt) in errors[0], err
    assert "3 films: 2 colorized, 0 already done, 1 failed" in err
    assert frame_md5s(out_dir / "reel_colorized.mp4") == reference
    assert frame_md5s(out_dir / "second_colorized.mp4") == reference


def test_a_node_that_sees_another_input_is_named_and_the_run_stops(
    cluster, clip, tiny_weights, tmp_path
):
    if (
        shutil.which("unshare") is None
        or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode
    ):
        pytest.skip("needs mount namespaces (unshare -m) to give one node its own view")
    films = tmp_path / "films"
    films.mkdir()
    shutil.copy(clip, films / "reel.mp4")
    stale = tmp_path / "stale"
    stale.mkdir()
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25,hue=s=0", "-frames:v", "30",
           "-c:v", "libx264", str(stale / "reel.mp4"))  # fmt: skip
    # A node of two CPUs, alone able to take a --threads 2 worker, that sees the folder
    # `stale` where the others see `films`.
    node = subprocess.Popen(
        ["unshare", "-m", "sh", "-c", 'mount --bind "$0" "$1" && exec "$2" start --block '
         f'--address {cluster.address} --num-cpus 2 --object-store-memory {NODE_MEMORY}',
         str(stale), str(films), str(Path(sys.executable).parent / "ray")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_nodes(cluster, 3, node)
        output = tmp_path / "out.mkv"
        args = command([films / "reel.mp4"], output, tiny_weights, "--quiet")
        args[args.index("--threads") + 1] = "2"
        code, err = finish(start([*args, *on_cluster(cluster)]))
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "sees another file at" in lines[0], err
        assert "node " in lines[0] and not output.exists()
    finally:
        node.terminate()  # ray start --block stops the node's processes it started
        node.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)


def _wait_for_nodes(cluster: Cluster, count: int, process: subprocess.Popen[bytes]) -> None:
    """Wait while ``process`` (a node being started) lives until the cluster has ``count``
    live nodes."""
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        while sum(node["Alive"] for node in ray.nodes()) < count:
            assert process.poll() is None, "the node did not start"
            time.sleep(0.2)
    finally:
        ray.shutdown()


def test_worker_shapes_follow_the_cluster_and_impossible_ones_are_refused():
    def node(cpus: float, gpus: float = 0, alive: bool = True) -> dict[str, Any]:
        resources = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
        return {"Alive": alive, "Resources": resources}

    nodes = [node(8, 2), node(8, 2), node(16, 4, alive=False)]
    assert ray_cluster.worker_shape(nodes, "auto", None) == ray_cluster.WorkerShape(4, 1, 1)
    assert ray_cluster.worker_shape(nodes, "cpu", 4) == ray_cluster.WorkerShape(4, 0, 4)
    cpu_only = [node(4), node(2)]
    assert ray_cluster.worker_shape(cpu_only, "auto", None) == ray_cluster.WorkerShape(3, 0, 2)
    with pytest.raises(ClusterError, match="no GPU"):
        ray_cluster.worker_shape(cpu_only, "cuda", None)
    with pytest.raises(ClusterError, match="has 8 CPUs"):
        ray_cluster.worker_shape(cpu_only, "cpu", 8)
    with pytest.raises(ClusterError, match="no live node"):
        ray_cluster.worker_shape([node(4, alive=False)], "auto", None)
