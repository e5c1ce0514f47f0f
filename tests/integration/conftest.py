"""Fixtures that run the pack inside a real ComfyUI server (see scripts/comfy_host.py).

``comfy_server`` (session, one per host): builds or reuses the cached offline host, starts one server on a
free 127.0.0.1 port with this checkout mounted as ``custom_nodes/comfyui-vid2vid``, stops it at the end.
Two hosts (scripts/comfy_host.py): ``current`` (ComfyUI 0.3.75, the new frontend, V3 nodes) runs every
host test; ``2024`` (ComfyUI of March 2024) runs only the tests marked ``host_smoke`` (the pack imports,
its nodes are served as declared, one workflow runs).  ``$V2V_COMFY_HOSTS`` (comma-separated) narrows it.
``comfy`` (session): a ``ComfyClient`` for that server.  ``comfy_host`` is the helper module itself
(``ComfyClient``, ``HistoryEntry``, ``PromptRejected``, ...).

Every test that uses these fixtures is marked ``integration`` automatically: CI runs them on every
submission; ``-m "not integration"`` skips them locally.  A host that cannot be built or started is
an error, never a skip.  ``V2V_COMFY_URL`` points the tests at a server you started yourself
(``python scripts/comfy_host.py serve``) instead of starting one.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_helper():
    name = "v2v_comfy_host"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "comfy_host.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


comfy_host_module = _load_helper()

_HOST_FIXTURES = {"comfy_server", "comfy"}
HOSTS = [h for h in os.environ.get("V2V_COMFY_HOSTS", "current,2024").split(",") if h]
SMOKE_ONLY = {"2024"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HOST_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
            host = getattr(item, "callspec", None) and item.callspec.params.get("comfy_server")
            if host in SMOKE_ONLY and item.get_closest_marker("host_smoke") is None:
                item.add_marker(pytest.mark.skip(reason=f"the {host} host runs the smoke tests only"))


@pytest.fixture(scope="session")
def comfy_host():
    return comfy_host_module


class _ExternalServer:
    """A server someone else started; only ``url`` and the log helpers are meaningful."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.log_path = None
        self.input_dir = None
        self.output_dir = None

    def log_text(self) -> str:
        return ""

    def startup_log(self) -> str:
        return ""

    def import_failures(self) -> list[str]:
        return []


@pytest.fixture(scope="session", params=HOSTS)
def comfy_server(request, tmp_path_factory):
    external = os.environ.get("V2V_COMFY_URL")
    if external:
        yield _ExternalServer(external)
        return
    host = comfy_host_module.ComfyHost.ensure(version=request.param)
    server = host.server(tmp_path_factory.mktemp("comfy-run"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        print(f"\nComfyUI log: {server.log_path}")


@pytest.fixture(scope="session")
def comfy(comfy_server):
    return comfy_host_module.ComfyClient(comfy_server.url)
