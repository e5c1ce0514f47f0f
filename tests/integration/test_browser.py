"""The shared UI workflows in ComfyUI's own web page, in headless Chromium: each loads with no missing node,
its prompt equals the API file, it queues and finishes; a screenshot lands in tests/artifacts/.

Needs Debian's chromium (``apt-get install -y chromium``) and the ``playwright`` Python package (its bundled
driver; no browser download: the test launches /usr/bin/chromium, or ``$V2V_CHROMIUM``).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
API = WORKFLOWS / "api"
ARTIFACTS = ROOT / "tests" / "artifacts"
NAMES = sorted(p.stem for p in API.glob("*.json"))
CHROMIUM = os.environ.get("V2V_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def page(comfy_server, comfy):
    from playwright.sync_api import sync_playwright  # a missing package is an error in CI, not a skip

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium (or set V2V_CHROMIUM)")
    if comfy_server.input_dir is not None:
        for item in (WORKFLOWS / "input").iterdir():
            target = Path(comfy_server.input_dir) / item.name
            (shutil.copytree(item, target, dirs_exist_ok=True) if item.is_dir() else shutil.copyfile(item, target))
    # the new frontend opens its template browser on a first visit: mark the tutorial done, as a user would
    status, _ = comfy._request("POST", "/settings/Comfy.TutorialCompleted", True)
    assert status == 200, status
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)  # own empty profile
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(comfy_server.url + "/", wait_until="load", timeout=60_000)
        page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=60_000)
        page.js_errors = errors
        yield page
        browser.close()


def _wait_done(comfy, before: set[str], timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = comfy.get_json("/history")
        new = [k for k in history if k not in before]
        queue = comfy.queue()
        if new and not queue["queue_running"] and not queue["queue_pending"]:
            return history[new[0]]
        time.sleep(0.5)
    raise TimeoutError(f"the queued UI workflow did not finish in {timeout:.0f} s")


def load(page, workflow: dict) -> tuple[list[str], str]:
    """Load a UI workflow; return the node types the frontend does not know (its own registry) and the text
    of the dialogs it shows (the litegraph frontend's .comfy-modal, the Vue frontend's PrimeVue .p-dialog)."""
    page.evaluate("() => document.querySelectorAll('.p-dialog-close-button').forEach(b => b.click())")
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", workflow)
    page.wait_for_timeout(500)
    missing = page.evaluate(
        "() => window.app.graph._nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type)")
    dialogs = page.evaluate(
        "() => [...document.querySelectorAll('.comfy-modal, .p-dialog')]"
        ".filter(d => d.offsetParent !== null && getComputedStyle(d).display !== 'none').map(d => d.innerText)"
        ".join('\\n')")
    return missing, dialogs


def without_meta(prompt: dict) -> dict:
    """The new frontend adds ``_meta: {title}`` to every node of the prompt it builds; the API files do not."""
    return {k: {f: v for f, v in node.items() if f != "_meta"} for k, node in prompt.items()}


def test_the_page_reports_a_missing_node_type(page):
    """The missing-node checks below can fail: an unknown node type shows in the registry check and a dialog."""
    ui = json.loads((WORKFLOWS / f"{NAMES[0]}.json").read_text())
    ui["nodes"][0]["type"] = "NoSuchVid2VidNode"
    missing, dialogs = load(page, ui)
    assert missing == ["NoSuchVid2VidNode"]
    assert "NoSuchVid2VidNode" in dialogs, dialogs


@pytest.mark.parametrize("name", NAMES)
def test_ui_workflow_loads_queues_and_finishes(page, comfy, name):
    ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
    api = json.loads((API / f"{name}.json").read_text())
    missing, dialogs = load(page, ui)
    assert missing == [], f"nodes missing in the web UI: {missing}"
    assert "NoSuchVid2VidNode" not in dialogs and "not found" not in dialogs.lower(), dialogs
    prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    assert without_meta(prompt) == json.loads(json.dumps(api)), "the UI workflow's prompt differs from the API file"

    before = set(comfy.get_json("/history"))
    page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    entry = _wait_done(comfy, before)
    assert entry["status"]["completed"], json.dumps(entry["status"])[:2000]
    page.keyboard.press("Escape")
    page.wait_for_timeout(1000)  # let the page draw the previews it was sent
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    assert page.js_errors == [], page.js_errors
