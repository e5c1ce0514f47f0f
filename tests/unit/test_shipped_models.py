"""Every model in models/vid2vid/ rebuilds from its file alone and streams frames at the size it was trained
at; the footage models carry the training record that README and models/vid2vid/README.md quote."""
import json
from pathlib import Path

import pytest
import torch

from v2v.model.checkpoint import load_generator, read_metadata, training_frame_size
from v2v.model.style import StylePlan, read_style_mixtures
from v2v.sampler import StreamingSampler

MODELS = Path(__file__).resolve().parents[2] / "models" / "vid2vid"
SHIPPED = sorted(MODELS.glob("*.safetensors"))
FOOTAGE = ("street", "face", "body", "street_style", "street_predict", "faces", "streets", "bodies")


def test_the_footage_models_ship_with_their_training_records():
    names = {p.stem for p in SHIPPED}
    for name in FOOTAGE:
        assert name in names, f"models/vid2vid/{name}.safetensors is missing"
        record = json.loads((MODELS / f"{name}.json").read_text())
        assert record["task"] == name and record["steps"] > 0 and "train/train.py" in record["command"]
        trained = json.loads(read_metadata(MODELS / f"{name}.safetensors")["v2v.train"])
        assert trained["step"] == record["steps"], f"{name}: the record does not describe these weights"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_model_streams_frames_at_its_training_size(path):
    model = load_generator(path)
    h, w = training_frame_size(path) or (64, 64)
    cfg = model.cfg
    sampler = StreamingSampler(model, device="cpu", precision="fp32")
    plan = StylePlan(read_style_mixtures(read_metadata(path)), cfg.style_nc, seed=1) if cfg.style_nc else None
    torch.manual_seed(0)
    for _ in range(3):        # past the L generated frames, so the warping branch runs too
        style = None
        if cfg.label_nc:
            ids = torch.randint(0, cfg.label_nc, (h, w))
            source = torch.nn.functional.one_hot(ids, cfg.input_nc).permute(2, 0, 1).float()
            style = plan.frame(ids.numpy(), None) if plan is not None else None   # from the file's own mixtures
        else:
            source = torch.rand(cfg.input_nc, h, w) * 2 - 1
        frame = sampler.step(source, style=style)
        assert frame.shape == (1, cfg.output_nc, h, w)     # RGB, or label maps for a predictor
        assert torch.isfinite(frame).all() and frame.abs().max() <= 1
