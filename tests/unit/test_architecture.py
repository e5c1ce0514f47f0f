"""The layout of v2v/ holds: the model package needs torch and safetensors only."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import v2v.model

REPO = Path(__file__).resolve().parents[2]


def test_the_model_package_imports_neither_opencv_nor_the_sources():
    """Every module of v2v.model, imported in a fresh interpreter, leaves cv2 and v2v.sources unimported."""
    modules = [f"v2v.model.{m.name}" for m in pkgutil.iter_modules(v2v.model.__path__)]
    assert {"v2v.model.generator", "v2v.model.checkpoint", "v2v.model.losses"} <= set(modules)
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m == 'cv2' or m.startswith(('cv2.', 'v2v.sources', "
            "'v2v.media')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [], "v2v.model must not import OpenCV, v2v.sources or v2v.media"


def test_the_subpackages_exist_and_the_old_flat_modules_are_gone():
    names = {m.name for m in pkgutil.iter_modules([str(REPO / "v2v")])}
    assert {"model", "sources", "media", "pipeline", "sampler", "cli"} <= names
    assert not names & {"generator", "labels", "video_io", "generate_video", "checkpoint"}
