"""PatchGAN discriminator: a fully convolutional net that scores overlapping patches as real or fake.

Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"; the layer layout and
initialisation follow taming-transformers' ``NLayerDiscriminator``, which AudioLDM's VAE loss uses on mels.
"""

import torch
from torch import nn

NORMS = ("batch", "instance", "none")


def _norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class NLayerDiscriminator(nn.Module):
    """Strided 4x4 convs with LeakyReLU(0.2), widths ``base_channels * min(2**i, 8)``, ending in 1-channel logits.

    Input (B, in_channels, T, F) -> patch logits (B, 1, T', F'), each logit seeing a receptive field of 70x70
    input cells with the default 3 layers. ``num_layers`` convs have stride 2, then one stride-1 conv and the
    stride-1 output conv, so T and F must be at least ``3 * 2**num_layers`` (24 by default).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        base_channels: int = 64,
        num_layers: int = 3,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown discriminator norm {norm!r}; expected one of {NORMS}")
        # A bias before BatchNorm is cancelled by its mean subtraction, so the normalised convs drop it.
        use_bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        width = base_channels
        for index in range(1, num_layers + 1):
            next_width = base_channels * min(2**index, 8)
            stride = 2 if index < num_layers else 1
            layers += [
                nn.Conv2d(width, next_width, kernel_size=4, stride=stride, padding=1, bias=use_bias),
                _norm_layer(norm, next_width),
                nn.LeakyReLU(0.2),
            ]
            width = next_width
        layers.append(nn.Conv2d(width, 1, kernel_size=4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.min_input_size = 3 * 2**num_layers
        self.apply(_init_weights)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, T, F) -> patch logits (B, 1, T', F')."""
        if min(mel.shape[-2:]) < self.min_input_size:
            raise ValueError(
                f"discriminator input {tuple(mel.shape[-2:])} is smaller than {self.min_input_size} on a side"
            )
        return self.main(mel)


def _init_weights(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016): conv weights N(0, 0.02); norm scales N(1, 0.02), shifts 0."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
