"""Optional extras: import them on demand, fail with the exact command that installs them.

The core package needs only numpy, torch and OpenCV.  dlib (face landmarks), scikit-learn
(pseudo-labels) and mediapipe (pose, selfie masks) are extras.  mediapipe 0.10.21 (the last
release that bundles its models) pins numpy<2 and pulls a second OpenCV, so it usually lives in
its own virtual environment; :func:`mediapipe_python` finds it there and :class:`MediapipeSession` keeps
one worker process of it (:mod:`v2v.sources._mediapipe_worker`) running for a stream of frames.
"""
from __future__ import annotations

import collections
import importlib
import importlib.util
import os
import subprocess
import sys
import threading
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


WORKER = Path(__file__).with_name("_mediapipe_worker.py")


class MediapipeSession:
    """One mediapipe task (``"pose"`` or ``"selfie"``, options as in :func:`run_mediapipe`) with its
    model kept loaded, for any number of :meth:`run` calls (each image is independent).

    In this interpreter when mediapipe imports here (``pid`` is None), else in one worker process of
    :func:`mediapipe_python` (``pid``) spoken to over pipes in the frames of
    :func:`v2v.sources._mediapipe_worker.serve`.  A dead or garbled worker raises RuntimeError with
    its stderr tail and ends the session.  Use ``with`` or :meth:`close`; one thread at a time.
    """

    def __init__(self, task: str, **kw):
        from . import _mediapipe_worker as w

        self.task, self.options = task, w.check_options(task, kw)
        self.python = mediapipe_python()
        self.pid: int | None = None
        self._w, self._solution, self._proc, self._broken = w, None, None, None
        self._tail: collections.deque[str] = collections.deque(maxlen=8)
        if self.python == sys.executable:
            self._solution = w.Solution(task, **kw)
            return
        import numpy as np

        bad = {k: v for k, v in kw.items() if not isinstance(v, (bool, int, float, str, np.generic))}
        if bad:
            raise TypeError(f"mediapipe options must be scalars, got {bad!r}")
        self._proc = subprocess.Popen([self.python, str(WORKER), "serve", task], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env={**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"})
        self.pid = self._proc.pid
        # read stderr all along: a worker blocked on a full stderr pipe would never answer
        self._drain = threading.Thread(target=self._read_stderr, args=(self._proc.stderr,), daemon=True,
                                       name=f"mediapipe-{task}-stderr")
        self._drain.start()
        try:
            self._request({f"kw_{k}": np.asarray(v) for k, v in kw.items()})
        except BaseException:
            self.close()
            raise

    def run(self, images) -> dict:
        """Results for ``images`` (uint8 RGB ``[H, W, 3]`` each) as :func:`run_mediapipe` returns them."""
        import numpy as np

        images = [self._w.check_image(i, im) for i, im in enumerate(images)]
        if self._solution is not None:
            return self._solution.process(images)
        return self._request({"n": np.asarray(len(images)), **{f"img_{i}": im for i, im in enumerate(images)}})

    def _read_stderr(self, pipe) -> None:
        for line in iter(pipe.readline, b""):
            self._tail.append(line.decode("utf-8", "replace").rstrip())

    def _error(self, what: str) -> RuntimeError:
        tail = "\n".join(self._tail)
        return RuntimeError(f"mediapipe worker ({self.python}, task {self.task!r}) {what}"
                            + (f"; its last stderr lines:\n{tail}" if tail else ""))

    def _request(self, arrays: dict) -> dict:
        if self._broken:
            raise RuntimeError(self._broken)
        proc = self._proc
        if proc is None:
            raise RuntimeError(f"mediapipe session (task {self.task!r}) is closed")
        what = None
        try:
            self._w.write_frame(proc.stdin, arrays)
            data = self._w.read_frame(proc.stdout)
            reply = None if data is None else self._w.unpack(data)
        except OSError:           # a closed pipe: the worker is gone
            reply = None
        except Exception as exc:  # noqa: BLE001 (not a frame, or no npz inside)
            reply, what = None, f"answered garbage ({type(exc).__name__}: {exc})"
        if reply is None:
            if what is None:  # end of stream: give it a moment to exit by itself and say how
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
            self._kill()
            err = self._error(what or f"died (exit code {proc.returncode})")
            self._broken = f"{err} (the session is over)"
            raise err
        if self._w.ERROR_KEY in reply:
            raise self._error(f"failed: {reply[self._w.ERROR_KEY].item()}")
        return reply

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._drain.join(timeout=2)  # the tail of what it wrote before it went
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass

    def close(self, timeout: float = 5.0) -> None:
        """End the session: an empty frame and end of stdin let the worker exit; killed after ``timeout`` s."""
        if self._solution is not None:
            self._solution.close()
            self._solution = None
        proc = self._proc
        if proc is None:
            return
        try:
            proc.stdin.write(self._w.HEADER.pack(0))
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self._kill()

    def __enter__(self) -> "MediapipeSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close(timeout=1.0)
        except Exception:  # noqa: BLE001 (best effort at garbage collection / shutdown)
            pass


def run_mediapipe(task: str, images: list, **kw) -> dict:
    """Results of one mediapipe ``task`` on ``images``: one :class:`MediapipeSession`, one run, closed."""
    with MediapipeSession(task, **kw) as session:
        return session.run(images)
