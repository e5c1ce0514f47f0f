"""MediapipeSession: one persistent mediapipe worker answers batch after batch exactly as one-shot
run_mediapipe does (in a worker process and in-process); a killed, failing or garbling worker raises
RuntimeError at once; close() reaps it; log lines on the worker's stdout do not break the protocol."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from v2v.sources import extras

pytestmark = pytest.mark.skipif(not extras.has_mediapipe(),
                                reason="mediapipe extra absent: " + extras.INSTALL["mediapipe"])

REPO = Path(__file__).resolve().parents[2]
VTEST_CLIP = REPO / "tests" / "data" / "vtest_40f.mp4"
PERSON = (slice(205, 320), slice(225, 315))  # the man standing on the lawn, frames 0..5

# The worker as the sessions here start it: its Solution.process first floods fd 1 (more than a pipe
# buffer holds), as a chatty native library would.
NOISY_WORKER = """\
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import _mediapipe_worker as w
process = w.Solution.process
def noisy(self, images):
    os.write(1, b"I0000 glog says hello\\n" * 4000)
    print("and python too", flush=True)
    return process(self, images)
w.Solution.process = noisy
sys.exit(w.main(sys.argv[1:]))
"""

# Run by the mediapipe interpreter itself: sessions there keep a Solution object (pid None).
IN_PROCESS = """\
import sys
import numpy as np
from v2v.sources import extras
d = np.load(sys.argv[1])
ims = [d[f"arr_{i}"] for i in range(len(d.files))]
pose, selfie = extras.run_mediapipe("pose", ims)["landmarks"], extras.run_mediapipe("selfie", ims)
with extras.MediapipeSession("pose") as s:
    assert s.pid is None
    assert np.array_equal(s.run(ims)["landmarks"], pose, equal_nan=True)
    assert np.array_equal(s.run(ims[::-1])["landmarks"], pose[::-1], equal_nan=True)
    assert s.run([])["landmarks"].shape == (0, 33, 4)
np.savez(sys.argv[2], landmarks=pose, **selfie)
"""


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """6 vtest frames: whole frames shrunk to 256x192 (people too small: no pose) and person crops
    enlarged to 192x256 (a pose), alternating."""
    from v2v.media.video_io import read_frames

    frames = [f for _, f in zip(range(6), read_frames(VTEST_CLIP))]
    return [cv2.resize(f, (256, 192), interpolation=cv2.INTER_AREA) if t % 2 == 0 else
            cv2.resize(f[PERSON], (192, 256), interpolation=cv2.INTER_CUBIC) for t, f in enumerate(frames)]


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture(scope="module")
def real_python() -> str:
    return extras.mediapipe_python()


@pytest.fixture(scope="module")
def noisy_python(real_python, tmp_path_factory) -> str:
    """A wrapper: sessions spawn a (noisy) worker even where mediapipe imports in this interpreter."""
    d = tmp_path_factory.mktemp("worker")
    (d / "noisy.py").write_text(NOISY_WORKER)
    return _script(d / "python", f'exec "{real_python}" "{d / "noisy.py"}" "$@"')


@pytest.fixture(autouse=True)
def _use_noisy_worker(noisy_python, monkeypatch):
    monkeypatch.setattr(extras, "mediapipe_python", lambda: noisy_python)


@pytest.fixture(scope="module")
def pose_ref(images, noisy_python) -> np.ndarray:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(extras, "mediapipe_python", lambda: noisy_python)
        return extras.run_mediapipe("pose", images)["landmarks"]


@pytest.fixture(scope="module")
def in_process(images, real_python, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("in_process")
    np.savez(d / "in.npz", *images)
    proc = subprocess.run([real_python, "-c", IN_PROCESS, str(d / "in.npz"), str(d / "out.npz")],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(d / "out.npz") as z:
        return {k: z[k] for k in z.files}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_pose_session_reuses_one_worker_then_fails_loudly_when_it_is_killed(images, pose_ref):
    assert pose_ref.shape == (6, 33, 4) and pose_ref.dtype == np.float32
    found = np.isfinite(pose_ref).all(axis=(1, 2))
    assert found[1::2].all() and not found[0::2].any()  # crops: a person; small whole frames: NaN rows
    s = extras.MediapipeSession("pose", model_complexity=1, min_detection_confidence=0.5)
    pid = s.pid
    assert pid is not None and not _gone(pid)
    np.testing.assert_allclose(s.run(images)["landmarks"], pose_ref, equal_nan=True)
    np.testing.assert_allclose(s.run(images[3:])["landmarks"], pose_ref[3:], equal_nan=True)
    np.testing.assert_allclose(s.run(iter(images[1:2]))["landmarks"], pose_ref[1:2], equal_nan=True)
    assert s.run([])["landmarks"].shape == (0, 33, 4)
    with pytest.raises(ValueError, match=r"image 1 must be a non-empty uint8 RGB"):
        s.run([images[0], images[1].astype(np.float32)])
    assert s.pid == pid  # every batch went to the same worker

    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"mediapipe worker \(.*python, task 'pose'\) died \(exit code -9\)"):
        s.run(images[:1])
    assert time.monotonic() - t0 < 5
    with pytest.raises(RuntimeError, match="died"):  # the session stays over
        s.run(images[:1])
    s.close()
    assert _gone(pid)


def test_selfie_session_matches_run_mediapipe_and_close_reaps_the_worker(images, in_process):
    with extras.MediapipeSession("selfie", model_selection=1) as s:
        pid = s.pid
        first, second, empty = s.run(images), s.run(images[4:]), s.run([])
    assert _gone(pid)
    assert sorted(first) == sorted(f"mask_{i}" for i in range(6)) and empty == {}
    for i in range(6):
        assert first[f"mask_{i}"].shape == images[i].shape[:2] and first[f"mask_{i}"].dtype == np.float32
        np.testing.assert_allclose(first[f"mask_{i}"], in_process[f"mask_{i}"])
    assert sorted(second) == ["mask_0", "mask_1"]  # indices within that call
    np.testing.assert_allclose(second["mask_1"], in_process["mask_5"])


def test_in_process_results_equal_the_worker_results(pose_ref, in_process):
    np.testing.assert_allclose(in_process["landmarks"], pose_ref, equal_nan=True)


def test_broken_workers_raise_runtime_error_quickly(tmp_path, monkeypatch):
    exits = _script(tmp_path / "exits", "echo 'model file missing' >&2; exit 3")
    monkeypatch.setattr(extras, "mediapipe_python", lambda: exits)
    with pytest.raises(RuntimeError, match=r"(?s)exits, task 'selfie'\) died \(exit code 3\).*model file missing"):
        extras.MediapipeSession("selfie")
    garbage = _script(tmp_path / "garbage", "echo 'this is not a frame'; exec cat >/dev/null")
    monkeypatch.setattr(extras, "mediapipe_python", lambda: garbage)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"garbage, task 'pose'\) answered garbage"):
        extras.MediapipeSession("pose")
    assert time.monotonic() - t0 < 5


def test_bad_arguments_fail_before_any_worker_starts(monkeypatch):
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("no worker should start"))
    with pytest.raises(ValueError, match="unknown mediapipe task 'hands'"):
        extras.MediapipeSession("hands")
    with pytest.raises(TypeError, match="no option model_selection"):
        extras.MediapipeSession("pose", model_selection=0)
    with pytest.raises(TypeError, match="scalars"):
        extras.MediapipeSession("pose", model_complexity=[1])
