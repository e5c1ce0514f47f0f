#!/usr/bin/env python3
"""Put the style encoder E into a style model written before model files carried it (so that StyleSample can
take a style from a reference image), from the training state the model was exported at:

    python scripts/add_style_encoder.py models/vid2vid/street_style.safetensors \
        out/style_study/runs/street_style/checkpoints/state-00000300

The generator's weights are checked against the state's and stay as they are; the file is rewritten atomically.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train.data import DatasetError  # noqa: E402
from train.export import add_style_encoder  # noqa: E402
from v2v.model.checkpoint import CheckpointError  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="the style model file (.safetensors)")
    ap.add_argument("state", help="the training state folder it was exported from (<run>/checkpoints/state-N)")
    a = ap.parse_args()
    try:
        n = add_style_encoder(a.model, a.state)
    except (DatasetError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{a.model}: style encoder added ({n} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
