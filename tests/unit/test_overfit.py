"""A few hundred milliseconds of training on the moving-shapes clip must lower the generator and flow losses."""
import torch
import torch.nn.functional as F

from v2v.model.config import preset
from v2v.model.generator import Vid2VidGenerator
from v2v.model.losses import flow_loss
from v2v.sources.labels import instance_boundary, one_hot
from v2v.toy import LABEL_NC, moving_shapes


def toy_tensors():
    clip = moving_shapes(n_frames=6, height=32, width=32, seed=3)
    src = torch.stack([one_hot(ids, LABEL_NC) for ids in clip.labels])           # [T, 3, H, W]
    src = torch.cat([src, torch.from_numpy(instance_boundary(clip.instances)).float()[:, None]], 1)
    frames = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    flows = torch.from_numpy(clip.flows).permute(0, 3, 1, 2)                      # [T-1, 2, H, W]
    return src, frames, flows


def losses(g, src, frames, flows):
    L = g.cfg.n_past
    windows = [t for t in range(L, src.shape[0])]
    sources = torch.stack([src[t - L:t + 1] for t in windows])                    # [N, L+1, C, H, W]
    prev = torch.stack([frames[t - L:t] for t in windows])                        # real previous frames
    out = g(sources, prev)
    target = torch.stack([frames[t] for t in windows])
    gt_flow = torch.stack([flows[t - 1] for t in windows])
    fl = flow_loss(out.flow, gt_flow, prev[:, -1], target)
    return F.l1_loss(out.frame, target), fl["flow_epe"] + fl["flow_warp"]


def test_short_overfit_lowers_generator_and_flow_losses():
    torch.manual_seed(0)
    g = Vid2VidGenerator(preset("tiny", input_nc=LABEL_NC + 1, label_nc=LABEL_NC, ngf=16))
    src, frames, flows = toy_tensors()
    opt = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.5, 0.999))
    with torch.no_grad():
        img0, flow0 = losses(g, src, frames, flows)
    for _ in range(15):
        img, fl = losses(g, src, frames, flows)
        opt.zero_grad()
        (img + 10 * fl).backward()
        opt.step()
    with torch.no_grad():
        img1, flow1 = losses(g, src, frames, flows)
    print(f"image L1 {img0:.3f} -> {img1:.3f}, flow {flow0:.3f} -> {flow1:.3f}")
    assert torch.isfinite(img1) and torch.isfinite(flow1)
    assert img1 < 0.7 * img0, (img0, img1)
    assert flow1 < 0.8 * flow0, (flow0, flow1)
