import pytest
import torch

from v2v.model.flow import ALIGN_CORNERS, base_grid, warp


def test_align_corners_is_stated():
    assert ALIGN_CORNERS is True


def test_zero_flow_is_identity():
    # exact up to float32 rounding of the pixel -> [-1, 1] -> pixel round trip inside grid_sample
    img = torch.randn(2, 3, 256, 512)
    assert (warp(img, torch.zeros(2, 2, 256, 512)) - img).abs().max() < 1e-4
    small = torch.randn(1, 3, 7, 9)
    assert torch.allclose(warp(small, torch.zeros(1, 2, 7, 9)), small, atol=1e-6)


def test_integer_flow_shifts_exactly():
    img = torch.randn(1, 3, 8, 10)
    flow = torch.zeros(1, 2, 8, 10)
    flow[:, 0] = 2   # sample 2 px to the right
    flow[:, 1] = -1  # and 1 px up
    out = warp(img, flow)
    # out[y, x] = img[y - 1, x + 2] where that lies inside the image
    assert torch.allclose(out[..., 1:, :-2], img[..., :-1, 2:], atol=1e-5)


def test_border_padding_repeats_edge_pixels():
    img = torch.arange(12.0).view(1, 1, 3, 4)
    flow = torch.zeros(1, 2, 3, 4)
    flow[:, 0] = 5.0  # far outside on the right: every sample clamps to the last column
    out = warp(img, flow)
    assert torch.allclose(out, img[..., -1:].expand_as(img), atol=1e-5)


def test_half_pixel_flow_interpolates_bilinearly():
    img = torch.tensor([[[[0.0, 2.0, 4.0]]]])
    flow = torch.zeros(1, 2, 1, 3)
    flow[:, 0] = 0.5
    out = warp(img, flow)
    assert torch.allclose(out[..., :2], torch.tensor([1.0, 3.0]), atol=1e-5)


def test_warp_shape_mismatch_is_named():
    with pytest.raises(ValueError, match="do not match"):
        warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))


def test_warp_is_differentiable_in_flow_and_image():
    img = torch.randn(1, 3, 6, 6, requires_grad=True)
    flow = (torch.rand(1, 2, 6, 6) * 2 - 1).requires_grad_()
    warp(img, flow).sum().backward()
    assert img.grad.abs().sum() > 0 and flow.grad.abs().sum() > 0


def test_base_grid_is_pixel_coordinates():
    g = base_grid(2, 3)
    assert g[0, 0, 1, 2] == 2 and g[0, 1, 1, 2] == 1
