"""Building blocks of the paper's generators (Appendix A): padded convs, residual blocks, up/down steps."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InstanceNorm(nn.InstanceNorm2d):
    """Instance normalisation (per sample and channel, affine).  On a CPU it runs as ``group_norm`` with one group
    per channel, the same statistics through a kernel ~5x faster there than ``instance_norm``'s reshaped batch norm
    (bench/NOTES.md, "Instance norm as group norm"); elsewhere unchanged (not measured there).  A channels_last map
    of one sample (what the int8 convolutions of v2v.quantize give) takes batch norm's statistics instead: exact per
    sample at batch 1, where ``group_norm`` in that layout computes a one-pass variance that loses its digits on a
    map of large mean.  Same weights and names as ``nn.InstanceNorm2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4 or self.track_running_stats:
            return super().forward(x)
        if x.shape[0] == 1 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """`instance` is the reference's BatchNorm-at-batch-1 behaviour made explicit (affine, per-sample stats)."""
    if kind == "instance":
        return InstanceNorm(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def conv_block(in_nc: int, out_nc: int, kernel: int, *, stride: int = 1, norm: str = "instance") -> nn.Sequential:
    """Reflection-padded conv -> norm -> ReLU. Stride 2 halves H and W."""
    return nn.Sequential(
        nn.ReflectionPad2d(kernel // 2) if stride == 1 else nn.ZeroPad2d(kernel // 2),
        nn.Conv2d(in_nc, out_nc, kernel, stride=stride),
        norm_layer(norm, out_nc),
        nn.ReLU(inplace=True),
    )


def up_block(in_nc: int, out_nc: int, *, norm: str = "instance") -> nn.Sequential:
    """Transposed conv doubling H and W exactly (k3, s2, p1, output_padding 1)."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_nc, out_nc, 3, stride=2, padding=1, output_padding=1),
        norm_layer(norm, out_nc),
        nn.ReLU(inplace=True),
    )


# On a CPU, oneDNN runs a plain-layout convolution with few output channels as if it had 16 and re-lays its
# input out each call: one 7x7 projection to 1-3 channels cost as much as one to 16.  channels_last is ~1.5x
# faster there (bench/NOTES.md, "Output projections").  Not on other devices: unmeasured there.
CHANNELS_LAST_HEADS = True


class OutputConv(nn.Sequential):
    """Reflection-padded projection (7x7 unless ``kernel``) to an output map (no activation: heads choose theirs).
    A Sequential, so its weights keep the names ``0``/``1`` every checkpoint has."""

    def __init__(self, in_nc: int, out_nc: int, kernel: int = 7) -> None:
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_nc, out_nc, kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return project(x, [self])[0]


def project(x: torch.Tensor, heads: list[OutputConv]) -> list[torch.Tensor]:
    """Several output convolutions (of one kernel size) that read the same features as ONE convolution (their
    weights stacked), padded once: exactly each head applied alone, at the cost of about one of them.  Works under
    autograd."""
    convs = [head[1] for head in heads]
    weight = convs[0].weight if len(convs) == 1 else torch.cat([c.weight for c in convs])
    bias = convs[0].bias if len(convs) == 1 else torch.cat([c.bias for c in convs])
    pad = weight.shape[-1] // 2
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    if CHANNELS_LAST_HEADS and x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    out = F.conv2d(x, weight, bias).contiguous()
    return list(out.split([c.out_channels for c in convs], dim=1))


def output_conv(in_nc: int, out_nc: int, kernel: int = 7) -> OutputConv:
    return OutputConv(in_nc, out_nc, kernel)


class ResnetBlock(nn.Module):
    """x + (pad-conv3-norm-relu-pad-conv3-norm)(x); with ``dilation`` d the 3x3 convolutions take every d-th pixel:
    the same weights and cost, a field d times as wide."""

    def __init__(self, channels: int, norm: str = "instance", dilation: int = 1) -> None:
        super().__init__()
        d = dilation
        self.body = nn.Sequential(
            nn.ReflectionPad2d(d), nn.Conv2d(channels, channels, 3, dilation=d), norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(d), nn.Conv2d(channels, channels, 3, dilation=d), norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def res_blocks(channels: int, n: int, norm: str, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(*[ResnetBlock(channels, norm, dilation) for _ in range(n)])


def encoder(in_nc: int, ngf: int, n_down: int, n_blocks: int, norm: str, stem: int = 7,
            dilation: int = 1) -> nn.Sequential:
    """A stem (7x7 unless ``stem``), `n_down` stride-2 convs doubling the width, then residual blocks.
    Out: ngf * 2**n_down channels."""
    layers: list[nn.Module] = [conv_block(in_nc, ngf, stem, norm=norm)]
    for i in range(n_down):
        layers.append(conv_block(ngf * 2**i, ngf * 2 ** (i + 1), 3, stride=2, norm=norm))
    layers.append(res_blocks(ngf * 2**n_down, n_blocks, norm, dilation))
    return nn.Sequential(*layers)


def encode(encoder: nn.Sequential, x: torch.Tensor, skips: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run an :func:`encoder`; with ``skips``, also return the features of each size it passes (finest first:
    the stem's, then each downsampling's but the last), which :func:`decode` adds back."""
    if not skips:
        return encoder(x), []
    features = []
    for layer in encoder[:-1]:      # the stem and the downsamplings; the residual blocks follow
        x = layer(x)
        features.append(x)
    return encoder[-1](features.pop()), features


def decode(trunk: nn.Sequential, code: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
    """Run a :func:`decoder_trunk`, adding to each upsampling's output the encoder feature of its size (if any)."""
    x = trunk[0](code)
    for i, up in enumerate(trunk[1:], start=1):
        x = up(x)
        if skips:
            x = x + skips[-i]
    return x


def decoder_trunk(ngf: int, n_up: int, n_blocks: int, norm: str, dilation: int = 1) -> nn.Sequential:
    """Residual blocks at ngf * 2**n_up channels, then `n_up` upsamplings down to ngf channels."""
    layers: list[nn.Module] = [res_blocks(ngf * 2**n_up, n_blocks, norm, dilation)]
    for i in reversed(range(n_up)):
        layers.append(up_block(ngf * 2 ** (i + 1), ngf * 2**i, norm=norm))
    return nn.Sequential(*layers)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """The reference init: conv weights N(0, std), norm weights N(1, std), biases 0."""
    for m in module.modules():
        if getattr(m, "weight", None) is not None and m.weight.is_meta:
            continue    # a meta-device build (shapes only) has no values to set; Tensor.normal_ there imports
                        # torch._dynamo (1-2 s of every process that checks a model file)
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
