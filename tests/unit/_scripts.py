"""The modules of scripts/ (a folder of scripts, not a package), loaded by file once per test session."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(stem: str, module_name: str | None = None):
    """``scripts/<stem>.py`` as a module, registered in ``sys.modules`` under ``module_name`` (default: the stem)
    before it runs, as dataclasses look their module up by name."""
    name = module_name or stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{stem}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]
