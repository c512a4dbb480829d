"""Start-up cost: the command line answers --help without loading torch, OpenCV or Pillow."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY = ("torch", "cv2", "PIL")


def _python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_importing_the_command_line_loads_no_heavy_module():
    loaded = _python(
        f"import sys, deoldify_video.cli\nprint([m for m in {HEAVY!r} if m in sys.modules])"
    )
    assert loaded == "[]"


def test_help_of_every_command_loads_no_heavy_module():
    code = (
        "import sys, contextlib, io\n"
        "from deoldify_video.cli import main\n"
        "for argv in ([], ['colorize'], ['image'], ['evaluate'], ['models', 'list'],\n"
        "             ['jobs', 'status'], ['train']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main([*argv, '--help'])\n"
        "        except SystemExit:\n"
        "            pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    assert _python(code) == "[]"


def test_importing_the_package_sets_nothing_in_the_environment():
    code = "import os, deoldify_video\nprint(os.environ.get('OMP_WAIT_POLICY'))"
    assert _python(code) == "None"


def test_public_names_load_on_first_use():
    code = (
        "import sys, deoldify_video\n"
        "assert 'torch' not in sys.modules\n"
        "from deoldify_video import colorize_video, load_model, Colorizer\n"
        "print(colorize_video.__module__, load_model.__module__, 'torch' in sys.modules)"
    )
    assert _python(code) == "deoldify_video.pipeline deoldify_video.nets.weights True"


def test_version_comes_from_the_package_metadata():
    import importlib.metadata

    import deoldify_video

    assert deoldify_video.__version__ == importlib.metadata.version("deoldify-video")


def test_every_public_name_resolves_and_errors_and_records_need_no_torch():
    code = (
        "import sys, deoldify_video as dv\n"
        "from deoldify_video import DeoldifyError, ProbeError, RenderConfig, ProgressEvent\n"
        "from deoldify_video import STAGES, VideoInfo\n"
        "assert issubclass(ProbeError, DeoldifyError) and 'colorize' in STAGES\n"
        "print('torch' in sys.modules)\n"
        "missing = [n for n in dv.__all__ if getattr(dv, n, None) is None]\n"
        "print(missing, sorted(set(dv.__all__) - set(dir(dv))))\n"
    )
    assert _python(code) == "False\n[] []"


def test_the_package_exports_every_lazy_name():
    import deoldify_video

    assert set(deoldify_video._LAZY) <= set(deoldify_video.__all__)
    assert len(deoldify_video.__all__) == len(set(deoldify_video.__all__))


def test_hashing_and_safe_writes_load_no_heavy_module():
    code = (
        "import sys, tempfile, pathlib\n"
        "from deoldify_video import atomic, checksum\n"
        "path = pathlib.Path(tempfile.mkdtemp()) / 'x'\n"
        "atomic.write_bytes(path, b'abc')\n"
        "assert checksum.sha256_of(path).startswith('ba7816bf')\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    assert _python(code) == "[]"
