"""What the registry and ComfyUI-Manager read agrees with pyproject.toml."""
from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_requirements_txt_is_the_dependencies_less_torch():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = [d for d in project["project"]["dependencies"] if not d.startswith("torch")]
    lines = [ln.strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    assert [ln for ln in lines if ln and not ln.startswith("#")] == wanted


def test_the_registry_table_is_complete():
    comfy = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"]
    assert comfy["Icon"].endswith("/docs/icon.png") and (REPO / "docs" / "icon.png").is_file()
    assert all((REPO / path).exists() for path in comfy["includes"])


def test_workflows_folder_holds_only_ui_workflows_with_thumbnails():
    """New hosts list every .json in workflows/ as a template: API graphs live in workflows/api/."""
    import json

    for path in (REPO / "workflows").glob("*.json"):
        data = json.loads(path.read_text())
        assert "nodes" in data and "links" in data, f"{path.name} is not a UI workflow"
        assert path.with_suffix(".jpg").is_file(), f"{path.name} has no thumbnail"


def test_workflows_match_the_nodes_inputs():
    """A node input added or changed shows in the UI's prompt: the shared workflows must be rebuilt with it
    (the browser test would find out much later)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "scripts/build_workflows.py", "--check"], cwd=REPO, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
