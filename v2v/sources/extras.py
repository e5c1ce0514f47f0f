"""Optional extras: import them on demand, fail with the exact command that installs them.

The core package needs only numpy, torch and OpenCV.  dlib (face landmarks), scikit-learn
(pseudo-labels) and mediapipe (pose, selfie masks) are extras.  mediapipe 0.10.21 (the last
release that bundles its models) pins numpy<2 and pulls a second OpenCV, so it usually lives in
its own virtual environment; :func:`mediapipe_python` finds it there and :mod:`v2v.sources.pose` runs it
in a subprocess.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

INSTALL = {
    "dlib": "pip install dlib-bin",
    "sklearn": "pip install scikit-learn",
    "mediapipe": (f"python3.11 -m venv {REPO / '.venv-mediapipe'} && "
                  f"{REPO / '.venv-mediapipe' / 'bin' / 'pip'} install mediapipe==0.10.21"
                  "   (or `pip install mediapipe==0.10.21` into this environment, which downgrades"
                  " numpy below 2; or set V2V_MEDIAPIPE_PYTHON to a python that has it)"),
    "shape_predictor": ("apt-get install libdlib-data   (installs /usr/share/dlib/"
                        "shape_predictor_68_face_landmarks.dat), or "
                        f"python {REPO / 'scripts' / 'fetch_sample_data.py'} shape_predictor"),
}


class MissingExtraError(ImportError):
    """An optional dependency is absent.  The message holds the command that installs it."""

    def __init__(self, what: str, purpose: str, command: str):
        self.what, self.command = what, command
        super().__init__(f"{what} is needed for {purpose} but is not installed. Install it with:\n"
                         f"    {command}")


def _import(module: str, extra: str, purpose: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module, purpose, INSTALL[extra]) from exc


def require_dlib():
    """The ``dlib`` module (PyPI ``dlib-bin`` ships prebuilt wheels)."""
    return _import("dlib", "dlib", "68-point face landmarks (face sketch)")


def require_sklearn_kmeans():
    """``sklearn.cluster.KMeans``."""
    return _import("sklearn.cluster", "sklearn", "k-means pseudo-labels").KMeans


SHAPE_PREDICTOR = "shape_predictor_68_face_landmarks.dat"
SYSTEM_MODEL_DIRS = (Path("/usr/share/dlib"),)  # Debian libdlib-data


def shape_predictor_path(path: str | os.PathLike | None = None) -> Path:
    """Locate dlib's 68-landmark model: explicit path, ``$V2V_SHAPE_PREDICTOR``, the fetch
    script's cache (``<repo>/.cache/data`` or ``$V2V_DATA_CACHE``), ``/usr/share/dlib``."""
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"shape predictor file {p} does not exist")
        return p
    candidates = [os.environ.get("V2V_SHAPE_PREDICTOR"),
                  os.environ.get("V2V_DATA_CACHE") and Path(os.environ["V2V_DATA_CACHE"]) / SHAPE_PREDICTOR,
                  REPO / ".cache" / "data" / SHAPE_PREDICTOR,
                  *(d / SHAPE_PREDICTOR for d in SYSTEM_MODEL_DIRS)]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise MissingExtraError(SHAPE_PREDICTOR, "68-point face landmarks (face sketch)", INSTALL["shape_predictor"])


def mediapipe_python() -> str:
    """Path of a Python interpreter that can ``import mediapipe`` (0.10.21).

    Order: this interpreter, ``$V2V_MEDIAPIPE_PYTHON``, ``<repo>/.venv-mediapipe/bin/python``.
    """
    if importlib.util.find_spec("mediapipe") is not None:
        return sys.executable
    candidates = [os.environ.get("V2V_MEDIAPIPE_PYTHON"), str(REPO / ".venv-mediapipe" / "bin" / "python")]
    for c in candidates:
        if c and Path(c).is_file() and _has_mediapipe(c):
            return c
    raise MissingExtraError("mediapipe", "pose keypoints / person masks", INSTALL["mediapipe"])


_CHECKED: dict[str, bool] = {}


def _has_mediapipe(python: str) -> bool:
    if python not in _CHECKED:
        try:
            proc = subprocess.run([python, "-c", "import mediapipe"], capture_output=True, timeout=120)
            _CHECKED[python] = proc.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _CHECKED[python] = False
    return _CHECKED[python]


def has_mediapipe() -> bool:
    try:
        mediapipe_python()
        return True
    except MissingExtraError:
        return False


def run_mediapipe(task: str, images: list, **kw) -> dict:
    """Run a :mod:`v2v.sources._mediapipe_worker` task here, or in the mediapipe interpreter's subprocess."""
    import tempfile

    import numpy as np

    python = mediapipe_python()
    if python == sys.executable:
        from . import _mediapipe_worker
        return _mediapipe_worker.run(task, images, **kw)
    worker = Path(__file__).with_name("_mediapipe_worker.py")
    with tempfile.TemporaryDirectory(prefix="v2v-mp-") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        payload = {f"img_{i}": np.ascontiguousarray(im, dtype=np.uint8) for i, im in enumerate(images)}
        payload.update({f"kw_{k}": np.asarray(v) for k, v in kw.items()})
        np.savez(src, n=np.asarray(len(images)), **payload)
        proc = subprocess.run([python, str(worker), task, str(src), str(dst)], capture_output=True, text=True,
                              env={**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"})
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
            raise RuntimeError(f"mediapipe ({python}) failed on task {task!r}:\n{tail}")
        with np.load(dst, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
