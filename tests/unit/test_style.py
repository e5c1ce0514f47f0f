import torch

from v2v.model.style import StyleEncoder, instance_average


def test_instance_average_makes_each_instance_constant():
    feats = torch.randn(2, 3, 6, 6, requires_grad=True)
    inst = torch.zeros(2, 1, 6, 6, dtype=torch.long)
    inst[0, :, :3] = 7
    inst[1, :, :, 4:] = 2
    out = instance_average(feats, inst)
    for b in range(2):
        for i in inst[b].unique():
            region = out[b][:, inst[b, 0] == i]
            assert torch.allclose(region, feats[b][:, inst[b, 0] == i].mean(1, keepdim=True).expand_as(region), atol=1e-6)
    out.sum().backward()
    assert feats.grad.abs().sum() > 0


def test_style_encoder_shape_and_pooling():
    enc = StyleEncoder(style_nc=3, ngf=4, n_downsample=2)
    img = torch.rand(1, 3, 16, 16) * 2 - 1
    inst = torch.zeros(1, 1, 16, 16)
    inst[..., 8:, :] = 1
    z = enc(img, inst)
    assert z.shape == (1, 3, 16, 16)
    assert torch.unique(z[0, 0]).numel() == 2
