import torch

from rldt_train.policy.normalizer import Normalizer


def test_minmax_maps_range_to_unit_interval_and_back():
    x = torch.rand(100, 3) * torch.tensor([2.0, 10.0, 0.5]) - 1
    norm = Normalizer.from_data(x, 'minmax')
    y = norm.normalize(x)
    assert torch.allclose(y.min(0).values, -torch.ones(3), atol=1e-5)
    assert torch.allclose(y.max(0).values, torch.ones(3), atol=1e-5)
    assert torch.allclose(norm.unnormalize(y), x, atol=1e-5)


def test_meanstd_and_constant_dimension():
    x = torch.randn(500, 2) * 3 + 7
    x[:, 1] = 4.0  # a constant dimension must not divide by zero
    norm = Normalizer.from_data(x, 'meanstd')
    y = norm.normalize(x)
    assert abs(y[:, 0].mean().item()) < 1e-4 and abs(y[:, 0].std().item() - 1) < 1e-3
    assert torch.all(torch.isfinite(y))
    assert torch.allclose(y[:, 1], torch.zeros(500))
