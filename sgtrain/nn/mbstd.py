"""Minibatch standard deviation (Karras et al. 2018, "Progressive Growing of GANs", section 3)."""

from __future__ import annotations

import torch

__all__ = ["MinibatchStdLayer"]


class MinibatchStdLayer(torch.nn.Module):
    """Append the mean per-group standard deviation of the features as extra channels.

    The minibatch is split into groups of G = min(group_size, N) samples (sample i belongs to group i mod (N / G),
    NVlabs' layout); the channels into ``num_channels`` slices. For each group and slice the standard deviation
    over the group is averaged over channels and pixels and broadcast to every sample of the group.
    No parameters.
    """

    def __init__(
        self,
        group_size: int | None,  # Samples per group; None = the whole minibatch. Clipped to the batch size.
        num_channels: int = 1,  # Number of channel slices, i.e. of stddev channels appended.
    ) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> [N, C + num_channels, H, W].

        Raises:
            ValueError: N is not a multiple of the group size, or C not a multiple of num_channels.
        """
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        f = self.num_channels
        if n % g != 0:
            raise ValueError(
                f"MinibatchStdLayer: batch size {n} is not a multiple of the group size {g}; "
                f"use a batch (per device) that is a multiple of mbstd_group_size={self.group_size}"
            )
        if c % f != 0:
            raise ValueError(f"MinibatchStdLayer: {c} channels do not split into num_channels={f} slices")
        y = x.reshape(g, -1, f, c // f, h, w)  # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])  # [n, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
