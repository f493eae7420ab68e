"""Affine normalization stored as buffers, so it travels with checkpoints and into ONNX."""
import torch
from torch import nn


class Normalizer(nn.Module):
    """y = (x - shift) / scale, elementwise over the last dimension.

    `minmax` maps the data range to [-1, 1] (actions: the flow's noise has unit scale);
    `meanstd` standardizes (observations). Constant dimensions get scale 1 instead of a
    division by zero.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer('shift', torch.zeros(dim))
        self.register_buffer('scale', torch.ones(dim))

    @classmethod
    def from_data(cls, x: torch.Tensor, mode: str) -> 'Normalizer':
        flat = x.reshape(-1, x.shape[-1]).double()
        norm = cls(flat.shape[-1])
        if mode == 'minmax':
            low, high = flat.min(0).values, flat.max(0).values
            shift, scale = (high + low) / 2, (high - low) / 2
        elif mode == 'meanstd':
            shift, scale = flat.mean(0), flat.std(0)
        else:
            raise ValueError(f"normalizer mode must be 'minmax' or 'meanstd', got {mode!r}")
        scale = torch.where(scale < 1e-6, torch.ones_like(scale), scale)
        norm.shift.copy_(shift.float())
        norm.scale.copy_(scale.float())
        return norm

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.scale + self.shift
