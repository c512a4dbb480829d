"""Weight files: safe loading, clear errors, and downloads from a local HTTP server."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from deoldify_video.errors import ModelNotFoundError, UsageError, WeightsError
from deoldify_video.nets import registry, weights
from deoldify_video.nets.registry import (
    InputPolicy,
    ModelSpec,
    list_models,
    register_model,
    unregister_model,
)
from deoldify_video.types import ProgressEvent


def _tiny() -> nn.Module:
    return nn.Sequential(
        nn.utils.spectral_norm(nn.Conv2d(1, 4, 3, padding=1, bias=False)),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 2, 1),
    )


def _other() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.Conv2d(8, 2, 1))


TINY = ModelSpec(
    name="tiny",
    builder=_tiny,
    policy=InputPolicy(kind="luma-chroma", default_render_factor=4),
    weights_file="tiny.pth",
    url="http://127.0.0.1:9/unused.pth",
    licence="MIT",
)


def _tiny_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = _tiny().state_dict()
    state["1.running_mean"].uniform_(-1, 1)
    return state


def _save(path: Path, obj: object, zipped: bool = True) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=zipped)
    return path


@pytest.fixture
def register() -> Iterator[Callable[[ModelSpec], ModelSpec]]:
    """``register(spec)`` registers (or replaces) a model for the test's duration."""
    names: set[str] = set()

    def add(spec: ModelSpec) -> ModelSpec:
        names.add(spec.name)
        return register_model(spec, replace=True)

    yield add
    for name in names:
        unregister_model(name)


@pytest.fixture(autouse=True)
def isolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, register: Callable[[ModelSpec], ModelSpec]
) -> Path:
    """The cache and the shipped folder in tmp_path; ``tiny`` registered."""
    cache = tmp_path / "cache"
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setenv("DEOLDIFY_VIDEO_HOME", str(cache))
    monkeypatch.setattr(registry, "shipped_models_dir", lambda: shipped)
    register(TINY)
    monkeypatch.setattr(weights.time, "sleep", lambda seconds: None)
    return tmp_path


# --------------------------------------------------------------------------- locations


def test_cache_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert weights.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("DEOLDIFY_VIDEO_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_dir() == tmp_path / "xdg" / "deoldify-video"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert weights.cache_dir() == Path.home() / ".cache" / "deoldify-video"


def test_installed_weights_lists_present_files(tmp_path: Path) -> None:
    assert weights.installed_weights() == []
    cache = weights.cache_dir()
    cache.mkdir()
    path = _save(cache / "tiny.pth", _tiny_state())
    assert weights.installed_weights() == [(TINY, path, path.stat().st_size)]


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("form", ["bare", "learner"])
def test_load_model_accepts_both_layouts(tmp_path: Path, zipped: bool, form: str) -> None:
    state = _tiny_state()
    # fastai's optimizer state in the released files holds `slice` objects.
    obj = state if form == "bare" else {"model": state, "opt": {"layer_groups": [slice(0, 2)]}}
    path = _save(tmp_path / "w.pth", obj, zipped=zipped)
    model = weights.load_model("tiny", weights=path)
    assert not model.training
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key
    x = torch.rand(1, 1, 8, 8)
    reference = _tiny()
    reference.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference.eval()(x), rtol=0, atol=0)


def test_fp16_file_is_cast_to_model_dtype(tmp_path: Path) -> None:
    state = _tiny_state()
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    model = weights.load_model("tiny", weights=_save(tmp_path / "h.pth", half))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(model.state_dict()["3.weight"], half["3.weight"].float())


def test_shipped_weights_load_by_name_and_check_sha256(
    register: Callable[[ModelSpec], ModelSpec],
) -> None:
    shipped_spec = ModelSpec(
        name="tinyship",
        builder=_tiny,
        policy=TINY.policy,
        weights_file="tinyship.pth",
    )
    register(shipped_spec)
    path = _save(registry.shipped_models_dir() / "tinyship.pth", _tiny_state())
    assert isinstance(weights.load_model("tinyship"), nn.Module)
    good = dataclasses.replace(shipped_spec, sha256=weights.sha256_of(path))
    register(good)
    assert isinstance(weights.load_model("tinyship"), nn.Module)
    bad = dataclasses.replace(shipped_spec, sha256="0" * 64)
    register(bad)
    with pytest.raises(WeightsError, match="checksum"):
        weights.load_model("tinyship")


def test_path_alone_is_recognised(tmp_path: Path) -> None:
    path = _save(tmp_path / "mine.pth", _tiny_state())
    spec, model = weights.load_network(str(path))
    assert spec is TINY
    assert isinstance(model, nn.Sequential)


def test_video_and_stable_are_told_apart_by_file_name() -> None:
    wide = weights.expected_state(registry.get_spec("video"))
    stable = weights.identify_weights(Path("/x/ColorizeStable_gen.pth"), wide)
    video = weights.identify_weights(Path("/x/ColorizeVideo_gen.pth"), wide)
    assert (stable.name, video.name) == ("stable", "video")
    deep = weights.expected_state(registry.get_spec("artistic"))
    assert weights.identify_weights(Path("/x/anything.pth"), deep).name == "artistic"


def test_a_file_that_fits_two_models_is_named_or_asked_for(
    tmp_path: Path, register: Callable[[ModelSpec], ModelSpec]
) -> None:
    """Two models of one architecture (as DeOldify's video and stable): the file name tells,
    or the caller must, since each takes another input size."""
    twin = dataclasses.replace(TINY, name="twin", weights_file="TwinWeights.pth")
    register(twin)
    renamed = _save(tmp_path / "renamed.pth", _tiny_state())
    with pytest.raises(WeightsError) as info:
        weights.load_network(str(renamed))
    message = str(info.value)
    assert "fits tiny and twin" in message and "\n" not in message
    assert f"--model tiny --weights {renamed}" in message
    assert f"--model twin --weights {renamed}" in message
    named = _save(tmp_path / "my-TwinWeights.pth", _tiny_state())
    assert weights.load_network(str(named))[0] is twin
    assert weights.load_network("twin", weights=renamed)[0] is twin
    wide = weights.expected_state(registry.get_spec("video"))
    with pytest.raises(WeightsError, match="fits stable and video"):
        weights.identify_weights(Path("/x/deoldify.pth"), wide)


def test_a_missing_file_given_as_model_is_no_such_file(tmp_path: Path) -> None:
    for name in ("./nofile.pth", str(tmp_path / "gone.pt"), "nofile.pth", "~/nofile.pth"):
        with pytest.raises(WeightsError, match="no such file"):
            weights.load_network(name)
    with pytest.raises(WeightsError, match="is a folder, not a weights file"):
        weights.load_network(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="goes with a model name"):
        weights.load_network(str(tmp_path / "x.pth"), weights=tmp_path / "y.pth")


def test_missing_downloadable_weights_say_how_to_get_them() -> None:
    with pytest.raises(WeightsError, match="models download tiny"):
        weights.load_model("tiny")


def test_unknown_name_is_model_not_found() -> None:
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        weights.load_model("no-such-model")


def test_html_page_is_explained(tmp_path: Path) -> None:
    page = tmp_path / "ColorizeVideo_gen.pth"
    page.write_text("<!DOCTYPE html>\n<html><head><title>Dropbox</title></head></html>\n")
    with pytest.raises(WeightsError, match="HTML page"):
        weights.load_model("video", weights=page)


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_truncated_file_is_explained(tmp_path: Path, zipped: bool) -> None:
    full = _save(tmp_path / "full.pth", _tiny_state(), zipped=zipped)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        weights.load_model("tiny", weights=cut)
    # Wherever the file stops, one clear error: the unpickler of a legacy file fails in many
    # ways there (an early end, a short integer, an index out of range).
    data = full.read_bytes()
    for size in range(1, len(data), 5):
        cut.write_bytes(data[:size])
        with pytest.raises(WeightsError):
            weights.read_state_dict(cut)


def test_empty_and_foreign_files_are_explained(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        weights.read_state_dict(empty)
    text = tmp_path / "notes.pth"
    text.write_text("just some notes")
    with pytest.raises(WeightsError, match="not a PyTorch weights file"):
        weights.read_state_dict(text)
    with pytest.raises(WeightsError, match="does not exist"):
        weights.read_state_dict(tmp_path / "absent.pth")


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "evil.pth", {"model": _tiny_state(), "opt": functools.partial(print)})
    with pytest.raises(WeightsError, match="Python objects besides tensors"):
        weights.load_model("tiny", weights=path)


def test_other_architecture_lists_keys_by_name(tmp_path: Path) -> None:
    path = _save(tmp_path / "other.pth", _other().state_dict())
    with pytest.raises(WeightsError) as info:
        weights.load_model("tiny", weights=path)
    message = str(info.value)
    assert "missing keys: 0.weight_orig, 0.weight_u, 0.weight_v, 1.running_mean" in message
    assert "2 unexpected keys: 0.weight, 0.bias" in message
    assert "1.weight (2, 8, 1, 1) (expected (4,))" in message
    with pytest.raises(WeightsError, match=r"missing keys: layers\.0\.0\.weight"):
        weights.load_model("artistic", weights=path)
    with pytest.raises(WeightsError, match="fits none of the known architectures"):
        weights.load_model(str(path))


def test_shape_mismatch_is_named() -> None:
    state = dict(_tiny_state())
    state["3.weight"] = torch.zeros(3, 4, 1, 1)
    with pytest.raises(WeightsError, match=r"3\.weight \(3, 4, 1, 1\) \(expected \(2, 4, 1, 1\)\)"):
        weights.check_structure(state, weights.expected_state(TINY), "w.pth")


def test_non_tensor_entries_are_not_a_state_dict() -> None:
    with pytest.raises(WeightsError, match="not named tensors: a"):
        weights.unwrap_learner_save({"a": 1, "b": torch.zeros(1)})
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        weights.unwrap_learner_save([torch.zeros(1)])


# --------------------------------------------------------------------------- downloading


class _Server:
    """A 127.0.0.1 HTTP server with a few routes; records each request's Range header."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.requests: list[tuple[str, str | None]] = []
        self.drops = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                if self.path == "/missing.pth":
                    self.send_error(404, "Not Found")
                elif self.path == "/page.pth":
                    body = b"<!DOCTYPE html><html><body>Sign in to download</body></html>"
                    self._reply(200, body, "text/html; charset=utf-8")
                elif self.path == "/mislabelled.pth":
                    body = b"<!DOCTYPE html><html><body>Preview</body></html>"
                    self._reply(200, body, "application/octet-stream")
                elif self.path == "/drop.pth" and rng is None and server.drops == 0:
                    server.drops += 1
                    half = len(server.payload) // 2
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(server.payload)))
                    self.end_headers()
                    self.wfile.write(server.payload[:half])
                    self.wfile.flush()
                    self.close_connection = True
                elif self.path in ("/weights.pth", "/drop.pth"):
                    self._serve_range(rng)
                else:
                    self.send_error(404, "Not Found")

            def _serve_range(self, rng: str | None) -> None:
                data = server.payload
                if rng is None:
                    self._reply(200, data, "application/octet-stream")
                    return
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_error(416, "Range Not Satisfiable")
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                self.wfile.write(data[start:])

            def _reply(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def payload(tmp_path: Path) -> bytes:
    return _save(tmp_path / "src.pth", _tiny_state(seed=3)).read_bytes()


@pytest.fixture
def server(payload: bytes) -> Iterator[_Server]:
    srv = _Server(payload)
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join()


def _leftovers() -> list[str]:
    cache = weights.cache_dir()
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


def test_download_fetches_verifies_and_reports_progress(server: _Server, payload: bytes) -> None:
    events: list[ProgressEvent] = []
    path = weights.download_weights(TINY, events.append, server.url("/weights.pth"))
    assert {(e.stage, e.message) for e in events} == {("download", "tiny.pth")}
    seen = [(e.done, e.total) for e in events]
    assert path == weights.cache_dir() / "tiny.pth"
    assert path.read_bytes() == payload
    assert _leftovers() == ["tiny.pth"]
    assert seen[0] == (0, len(payload)) and seen[-1] == (len(payload), len(payload))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert isinstance(weights.load_model("tiny"), nn.Module)
    # Already there: returned without a new request.
    assert weights.download_weights(TINY, url=server.url("/weights.pth")) == path
    assert len(server.requests) == 1


def test_dropped_connection_is_resumed_with_range(server: _Server, payload: bytes) -> None:
    path = weights.download_weights(TINY, url=server.url("/drop.pth"))
    assert path.read_bytes() == payload
    half = len(payload) // 2
    assert server.requests == [("/drop.pth", None), ("/drop.pth", f"bytes={half}-")]
    assert _leftovers() == ["tiny.pth"]


def test_part_file_from_an_earlier_run_is_resumed(server: _Server, payload: bytes) -> None:
    cache = weights.cache_dir()
    cache.mkdir()
    (cache / "tiny.pth.part").write_bytes(payload[:100])
    events: list[ProgressEvent] = []
    weights.download_weights(TINY, events.append, server.url("/weights.pth"))
    assert (cache / "tiny.pth").read_bytes() == payload
    assert server.requests == [("/weights.pth", "bytes=100-")]
    assert (events[0].done, events[0].total) == (100, len(payload))


def test_complete_part_file_is_finished_without_data(server: _Server, payload: bytes) -> None:
    cache = weights.cache_dir()
    cache.mkdir()
    (cache / "tiny.pth.part").write_bytes(payload)
    weights.download_weights(TINY, url=server.url("/weights.pth"))
    assert (cache / "tiny.pth").read_bytes() == payload


def test_404_is_a_clear_error(server: _Server) -> None:
    with pytest.raises(WeightsError, match="HTTP 404"):
        weights.download_weights(TINY, url=server.url("/missing.pth"))
    assert _leftovers() == []


@pytest.mark.parametrize("route", ["/page.pth", "/mislabelled.pth"])
def test_html_page_is_rejected_and_removed(server: _Server, route: str) -> None:
    with pytest.raises(WeightsError, match="HTML page"):
        weights.download_weights(TINY, url=server.url(route))
    assert _leftovers() == []


def test_wrong_architecture_download_is_rejected(server: _Server, tmp_path: Path) -> None:
    server.payload = _save(tmp_path / "other.pth", _other().state_dict()).read_bytes()
    with pytest.raises(WeightsError, match="missing keys"):
        weights.download_weights(TINY, url=server.url("/weights.pth"))
    assert _leftovers() == []


def test_pinned_size_mismatch_is_rejected(server: _Server) -> None:
    pinned = dataclasses.replace(TINY, size_bytes=12345)
    with pytest.raises(WeightsError, match="expected 12345"):
        weights.download_weights(pinned, url=server.url("/weights.pth"))
    assert _leftovers() == []


def test_shipped_spec_has_nothing_to_download(isolated: Path) -> None:
    shipped = dataclasses.replace(TINY, url="")
    assert weights.download_weights(shipped) == isolated / "shipped" / "tiny.pth"
    with pytest.raises(WeightsError, match="ships with the package"):
        weights.download_weights(shipped, url="http://127.0.0.1:9/tiny.pth")


def test_unreachable_server_says_how_to_place_the_file_by_hand(isolated: Path) -> None:
    with pytest.raises(WeightsError) as info:
        weights.download_weights(TINY, url="http://127.0.0.1:9/nothing.pth")
    message = str(info.value)
    assert message.startswith("cannot reach 127.0.0.1: no network? (Connection refused). ")
    assert f"put it at {isolated / 'cache' / 'tiny.pth'}" in message
    assert "--model tiny --weights FILE" in message
    assert "urlopen" not in message and "Errno" not in message and "\n" not in message
    assert _leftovers() == []


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_a_local_copy_is_verified_and_cached(tmp_path: Path, as_url: bool) -> None:
    held = _save(tmp_path / "ColorizeTiny.pth", _tiny_state(seed=5))
    events: list[ProgressEvent] = []
    source = held.as_uri() if as_url else str(held)
    path = weights.download_weights(TINY, events.append, source)
    assert path.read_bytes() == held.read_bytes()
    size = held.stat().st_size
    assert events[-1] == ProgressEvent("download", size, size, "tiny.pth")
    page = tmp_path / "page.pth"
    page.write_text("<html><body>not weights</body></html>")
    path.unlink()
    with pytest.raises(WeightsError, match="HTML page"):
        weights.download_weights(TINY, url=str(page))
    assert _leftovers() == []


# --------------------------------------------------------------------------- the registry


def test_registered_models_are_listed_and_clashes_refused() -> None:
    assert {"lite", "video", "stable", "artistic", "tiny"} <= set(list_models())
    assert list_models() == sorted(list_models())
    with pytest.raises(UsageError, match="already registered"):
        register_model(dataclasses.replace(TINY, builder=_other))
    assert registry.get_spec("tiny") is TINY
    with pytest.raises(UsageError, match="not a usable name"):
        register_model(dataclasses.replace(TINY, name="default"))
    odd = dataclasses.replace(TINY, name="odd", policy=InputPolicy("rgb", 4))
    with pytest.raises(UsageError, match="unknown input policy kind 'rgb'"):
        register_model(odd)
    assert "odd" not in list_models()
    with pytest.raises(ModelNotFoundError, match="no model registered as 'odd'"):
        unregister_model("odd")


def test_a_replaced_builtin_model_comes_back_when_unregistered() -> None:
    lite = registry.get_spec("lite")
    register_model(dataclasses.replace(TINY, name="lite"), replace=True)
    try:
        assert registry.get_spec("default").builder is _tiny
    finally:
        unregister_model("lite")
    assert registry.get_spec("lite") is lite


def test_a_registered_model_loads_by_name_with_its_weights(tmp_path: Path, register) -> None:
    own = register(dataclasses.replace(TINY, name="own", weights_file="own.pth", url=""))
    path = _save(registry.shipped_models_dir() / "own.pth", _tiny_state(3))
    spec, model = weights.load_network("own")
    assert spec is own
    assert torch.equal(model.state_dict()["3.weight"], _tiny_state(3)["3.weight"])
    assert weights.load_network(str(path))[0] is own  # one architecture: the file name tells
