"""Every UI workflow in the newest ComfyUI frontend the package index serves, run against ComfyUI 0.3.75
with ``--front-end-root`` (0.3.75 pins an older one): no node is missing and the prompt it builds is the API
file's.  Queueing is left to test_browser.py (this frontend calls routes 0.3.75 does not have)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import comfy_host_module
from test_browser import API, CHROMIUM, FLAGS, NAMES, WORKFLOWS, load, without_meta

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture(scope="module")
def newest_page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium (or set V2V_CHROMIUM)")
    version, static = comfy_host_module.newest_frontend()
    host = comfy_host_module.ComfyHost.ensure(version="current")
    server = host.server(tmp_path_factory.mktemp("newest-frontend"), extra_args=("--front-end-root", str(static)))
    with server:
        client = comfy_host_module.ComfyClient(server.url)
        client._request("POST", "/settings/Comfy.TutorialCompleted", True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(server.url + "/", wait_until="load", timeout=60_000)
            page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=60_000)
            print(f"frontend {version} from {static}")
            yield page
            browser.close()


@pytest.mark.parametrize("name", NAMES)
def test_ui_workflow_loads_in_the_newest_frontend(newest_page, name):
    missing, dialogs = load(newest_page, json.loads((WORKFLOWS / f"{name}.json").read_text()))
    assert missing == [], f"nodes missing in the newest frontend: {missing}"
    assert "not found" not in dialogs.lower(), dialogs
    prompt = newest_page.evaluate("async () => (await window.app.graphToPrompt()).output")
    assert without_meta(prompt) == json.loads((API / f"{name}.json").read_text())
