"""Test-suite set-up shared by tests/unit and tests/integration.

The repository root goes first on ``sys.path`` so ``import v2v`` / ``import nodes`` /
``import train`` resolve to this checkout however pytest is started (``python -m pytest`` adds the
working directory, a bare ``pytest`` does not).  Tests use pytest's default ``prepend`` import
mode, so test file basenames must be unique across tests/ (a helper module such as
``tests/unit/_synthetic.py`` is imported by its bare name from its own folder).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
