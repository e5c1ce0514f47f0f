"""scripts/comfy_host.py: the second host venv hard-links the pinned torch family from the first."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from _scripts import load_script


@pytest.fixture(scope="module")
def comfy_host():
    return load_script("comfy_host", "v2v_comfy_host")     # the name tests/integration/conftest.py uses


def _install(site: Path, name: str, version: str, files: dict[str, str]) -> None:
    """A wheel-like install: the files, then a dist-info whose RECORD lists them (and itself)."""
    dist_info = f"{name}-{version}.dist-info"
    rows = []
    for rel, text in {**files, f"{dist_info}/METADATA": f"Name: {name}\n"}.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
        rows.append(f"{rel},,")
    rows += [f"{dist_info}/RECORD,,", f"../../../bin/{name}-script,,"]
    (site / dist_info / "RECORD").write_text("\n".join(rows) + "\n")


def _venv(home: Path, folder: str, stamped: bool) -> tuple[Path, Path]:
    env = home / folder / "venv"
    site = env / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    if stamped:
        (env / ".v2v-stamp").write_text("done\n")
    return env, site


def test_the_torch_family_is_hard_linked_and_nothing_else(tmp_path, comfy_host):
    _, donor = _venv(tmp_path, "first", stamped=True)
    _install(donor, "torch", "2.14.1", {"torch/__init__.py": "t", "torch/lib/libtorch.so": "so"})
    _install(donor, "torchvision", "0.29.1", {"torchvision/__init__.py": "tv"})
    _install(donor, "nvidia_cublas", "13.1.1.3", {"nvidia/cublas/lib/libcublas.so": "cu"})
    _install(donor, "transformers", "4.50.3", {"transformers/__init__.py": "tr"})
    env, target = _venv(tmp_path, "second", stamped=False)

    comfy_host._share_torch(tmp_path, env, ["torch==2.14.1", "torchvision==0.29.1", "einops"])

    for rel in ("torch/lib/libtorch.so", "torchvision/__init__.py", "nvidia/cublas/lib/libcublas.so",
                "torch-2.14.1.dist-info/RECORD"):
        assert os.path.samefile(target / rel, donor / rel), rel
    assert not (target / "transformers").exists()           # the host's own packages: pip installs them
    assert not (target / "transformers-4.50.3.dist-info").exists()
    assert not (env / "bin").exists()                        # console scripts are not shared


def test_no_sharing_from_other_versions_or_unfinished_venvs(tmp_path, comfy_host):
    _, other = _venv(tmp_path, "a-other", stamped=True)
    _install(other, "torch", "2.13.0", {"torch/__init__.py": "old"})
    _install(other, "torchvision", "0.28.0", {"torchvision/__init__.py": "old"})
    _, unfinished = _venv(tmp_path, "b-unfinished", stamped=False)
    _install(unfinished, "torch", "2.14.1", {"torch/__init__.py": "t"})
    _install(unfinished, "torchvision", "0.29.1", {"torchvision/__init__.py": "tv"})
    env, target = _venv(tmp_path, "c-new", stamped=False)

    comfy_host._share_torch(tmp_path, env, ["torch==2.14.1", "torchvision==0.29.1"])

    assert list(target.iterdir()) == []
