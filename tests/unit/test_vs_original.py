"""bench/vs_original.py: the side-by-side timing harness.  The original's code is never in this repository; the
harness is checked against a stand-in written here with its interface (define_G, the composite generators'
7-tuple, unconditional .cuda() calls), and against a real checkout where one is present."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKOUT = Path(os.environ.get("V2V_ORIGINAL_VID2VID", REPO / ".cache" / "original-vid2vid"))
pytestmark = pytest.mark.slow

# The interface the harness relies on, nothing of the original's architecture: a 1x1 conv per scale whose
# forward calls .cuda() the way the original's does, and returns its 7-tuple with features for the next scale.
STAND_IN = textwrap.dedent('''
    import torch
    from torchvision import models   # the original imports it too (its VGG loss)

    class Composite(torch.nn.Module):
        def __init__(self, input_nc, ngf):
            super().__init__()
            self.conv = torch.nn.Conv2d(input_nc, 3, 1)
            self.ngf = ngf

        def forward(self, input, img_prev, mask, img_feat, flow_feat, fg_feat, use_raw_only):
            x = self.conv(input.cuda(input.get_device()))
            if img_feat is not None:
                assert img_feat.shape[-1] * 2 == x.shape[-1], "features of the coarser scale"
            assert mask.shape == (1,) + x.shape[-2:]
            feat = torch.zeros(1, self.ngf, *x.shape[-2:])
            return torch.tanh(x), None, None, x, feat, feat, feat

    def define_G(input_nc, output_nc, prev_output_nc, ngf, which_model_netG, n_downsampling, norm, scale,
                 gpu_ids=[], opt=[]):
        assert which_model_netG == ("compositeLocal" if scale else "composite") and opt.fg and not gpu_ids
        return Composite(input_nc, ngf)
''')


def run(checkout: Path, *extra: str) -> list[dict]:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "vs_original.py"), "--original", str(checkout),
                           "--repeats", "1", "--warmup", "1", *extra], capture_output=True, text=True, cwd=REPO,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_the_harness_against_a_stand_in(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "networks.py").write_text(STAND_IN)
    rows = run(tmp_path, "--cases", "32x32:2")
    assert len(rows) == 1
    row = rows[0]
    assert (row["size"], row["n_scales"], row["precision"]) == ("32x32", 2, "fp32")
    assert row["original_s"] > 0 and row["ours_s"] > 0
    assert row["ratio_original_over_ours"] == pytest.approx(row["original_s"] / row["ours_s"], rel=0.05, abs=0.002)
    assert row["params_millions"]["ours"] > 300 and row["machine"].startswith("CPU")


def test_a_missing_checkout_is_named(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "vs_original.py"), "--original", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode != 0 and "git clone https://github.com/NVIDIA/vid2vid" in proc.stderr


@pytest.mark.skipif(not (CHECKOUT / "models" / "networks.py").is_file(),
                    reason="no checkout of NVIDIA/vid2vid (git clone it to .cache/original-vid2vid)")
def test_the_real_original_runs_beside_ours():
    row = run(CHECKOUT, "--cases", "64x32")[0]
    assert row["params_millions"]["original"] > 400 and row["ratio_original_over_ours"] > 0
