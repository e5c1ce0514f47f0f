"""The pack's root ``__init__`` imports the way ComfyUI imports it, and also where ComfyUI is absent.

Each case runs in a fresh interpreter whose ``sys.path`` does NOT hold the repository, so nothing
leaks in from the test process: ComfyUI loads a pack by file location, under its folder name.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What ComfyUI's nodes.load_custom_node does with a pack folder, plus ComfyUI's own top-level
# `nodes` module already imported (ours must never be confused with it).
LOAD_LIKE_COMFYUI = """
import importlib.util, os, sys, types
sys.path = [p for p in sys.path if os.path.realpath(p or '.') != os.path.realpath({root!r})]
comfy_nodes = types.ModuleType("nodes"); comfy_nodes.IS_COMFYUI = True
sys.modules["nodes"] = comfy_nodes
{before}
pack_dir = {pack!r}
name = os.path.basename(pack_dir)
spec = importlib.util.spec_from_file_location(name, os.path.join(pack_dir, "__init__.py"))
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
assert sys.modules["nodes"] is comfy_nodes, "the pack replaced ComfyUI's nodes module"
assert isinstance(module.NODE_CLASS_MAPPINGS, dict)
assert isinstance(module.NODE_DISPLAY_NAME_MAPPINGS, dict)
assert not hasattr(module, "comfy_entrypoint"), "no comfy_api here, so no V3 entry point"
import v2v
assert [os.path.realpath(p) for p in v2v.__path__] == [os.path.realpath(os.path.join({root!r}, "v2v"))], v2v.__path__
for key, cls in module.NODE_CLASS_MAPPINGS.items():
    assert cls.__module__.startswith(name + ".nodes."), (key, cls.__module__)
print("OK", len(module.NODE_CLASS_MAPPINGS))
"""

# Optional extras are absent: importing any of them raises ImportError.
BLOCK_EXTRAS = """
import importlib.abc
class _NoExtras(importlib.abc.MetaPathFinder):
    BLOCKED = {"mediapipe", "dlib", "sklearn", "accelerate", "tensorboard", "skimage", "comfy_api"}
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.BLOCKED:
            raise ImportError(f"blocked for this test: {fullname}")
        return None
sys.meta_path.insert(0, _NoExtras())
"""


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture()
def pack_link(tmp_path) -> Path:
    """The checkout as ComfyUI sees it: custom_nodes/comfyui-vid2vid, a symlink."""
    custom_nodes = tmp_path / "custom_nodes"
    custom_nodes.mkdir()
    link = custom_nodes / "comfyui-vid2vid"
    link.symlink_to(ROOT, target_is_directory=True)
    return link


@pytest.mark.parametrize("before", ["", BLOCK_EXTRAS], ids=["plain", "without-optional-extras"])
def test_loads_like_comfyui_loads_it(pack_link, tmp_path, before):
    result = _python(LOAD_LIKE_COMFYUI.format(root=str(ROOT), pack=str(pack_link), before=before), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK"), result.stdout


def test_imports_as_a_package_by_folder_name(pack_link, tmp_path):
    code = f"""
    import importlib, sys
    sys.path.insert(0, {str(pack_link.parent)!r})
    pack = importlib.import_module("comfyui-vid2vid")
    print(sorted(pack.NODE_CLASS_MAPPINGS) == sorted(importlib.import_module("comfyui-vid2vid.nodes").NODE_CLASS_MAPPINGS))
    """
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_imports_from_the_repository_root(tmp_path):
    """Outside ComfyUI, with v2v already imported from the checkout (tests, CLI): same package."""
    code = f"""
    import importlib.util, sys
    sys.path.insert(0, {str(ROOT)!r})
    import v2v, nodes
    spec = importlib.util.spec_from_file_location("vid2vid_pack", {str(ROOT / "__init__.py")!r},
                                                  submodule_search_locations=[{str(ROOT)!r}])
    pack = importlib.util.module_from_spec(spec); sys.modules["vid2vid_pack"] = pack
    spec.loader.exec_module(pack)
    assert sys.modules["v2v"] is v2v
    print(sorted(pack.NODE_CLASS_MAPPINGS) == sorted(nodes.NODE_CLASS_MAPPINGS))
    """
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_imports_as_a_lone_module(tmp_path):
    """pytest imports the root __init__.py this way when the checkout's folder name is not an
    identifier (comfyui-vid2vid): it must not fail, and it registers nothing."""
    code = f"""
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("__init__", {str(ROOT / "__init__.py")!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(module.NODE_CLASS_MAPPINGS, module.NODE_DISPLAY_NAME_MAPPINGS)
    """
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{} {}"


def test_a_foreign_v2v_is_refused_loudly(pack_link, tmp_path):
    foreign = tmp_path / "elsewhere" / "v2v"
    foreign.mkdir(parents=True)
    (foreign / "__init__.py").write_text("")
    before = f"sys.path.insert(0, {str(foreign.parent)!r}); import v2v"
    result = _python(LOAD_LIKE_COMFYUI.format(root=str(ROOT), pack=str(pack_link), before=before), tmp_path)
    assert result.returncode != 0
    assert "another package named 'v2v' is already imported" in result.stderr


def test_no_v3_without_comfy_api():
    import nodes

    assert nodes.v3_nodes() is None
