"""Transport field (docs/architecture.md section 4) against hand-computed numbers."""
import math

import pytest
import torch

from rldt_train.rl.rldt import median_bandwidth
from rldt_train.rl.rldt import rbf_field


def _field(x, a, g, temperature=0.1, alpha_min=0.0, alpha_max=10.0):
    """Shape helper: x (B, Q, D), a and g (B, P, D) as chunks with H = 1."""
    return rbf_field(x[:, :, None, :], a[:, :, None, :], g[:, :, None, :], temperature,
                     alpha_min, alpha_max)


def test_bandwidth_is_median_of_squared_distances_over_2_log_p_plus_1():
    d2 = torch.tensor([[4.0, 1.0, 9.0], [0.25, 2.25, 1.0]])
    expected = torch.tensor([4.0, 1.0]) / (2 * math.log(4))
    assert torch.allclose(median_bandwidth(d2), expected)
    # Even P: mean of the two middle values (numpy convention), P = 2 -> the plain mean.
    assert median_bandwidth(torch.tensor([0.25, 2.25])).item() == pytest.approx(
        1.25 / (2 * math.log(3)))


def test_rbf_field_one_dimension_hand_computed():
    # Particles at 0 and 2 with grad Q = +1 and -1 (a peak at 1), query at 0.5, temperature 0.1.
    x = torch.tensor([[[0.5]]])
    a = torch.tensor([[[0.0], [2.0]]])
    g = torch.tensor([[[1.0], [-1.0]]])
    out = _field(x, a, g)
    # h = median(0.25, 2.25) / (2 log 3) = 0.568900; k = exp(-d2 / 2h) = 0.802742, 0.138415.
    assert out['h'].item() == pytest.approx(0.5688995166, rel=1e-6)
    assert out['alpha_eff'].item() == pytest.approx(0.1)
    assert out['attraction'].item() == pytest.approx(0.3321635065, rel=1e-6)
    assert out['repulsion'].item() == pytest.approx(0.0170283989, rel=1e-5)
    assert out['phi'].item() == pytest.approx(0.3491919053, rel=1e-6)


def test_rbf_field_two_dimensions_hand_computed():
    # Particles (0,0), (2,0); grads (1,0), (0,3); query (0,1).
    x = torch.tensor([[[0.0, 1.0]]])
    a = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])
    g = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])
    out = _field(x, a, g)
    # d2 = (1, 5), h = 3 / (2 log 3); alpha_eff = 0.1 * mean(1, 3) = 0.2.
    assert out['alpha_eff'].item() == pytest.approx(0.2)
    assert torch.allclose(out['attraction'].flatten(),
                          torch.tensor([0.3466806372, 0.2403749284]), rtol=1e-6)
    assert torch.allclose(out['repulsion'].flatten(),
                          torch.tensor([-0.0234736756, 0.0625191856]), rtol=1e-5)


def test_alpha_eff_is_clamped_and_scales_repulsion():
    x = torch.tensor([[[0.5]]])
    a = torch.tensor([[[0.0], [2.0]]])
    g = torch.tensor([[[100.0], [-100.0]]])
    free = _field(x, a, g, temperature=0.1, alpha_max=1e9)
    clamped = _field(x, a, g, temperature=0.1, alpha_max=0.5)
    assert free['alpha_eff'].item() == pytest.approx(10.0)
    assert clamped['alpha_eff'].item() == pytest.approx(0.5)
    assert clamped['repulsion'].item() == pytest.approx(free['repulsion'].item() / 20, rel=1e-5)


def test_kernels_never_mix_states():
    torch.manual_seed(0)
    x, a, g = torch.randn(3, 4, 6), torch.randn(3, 5, 6), torch.randn(3, 5, 6)
    base = _field(x, a, g)['phi']
    a2, g2 = a.clone(), g.clone()
    a2[1] += 10.0
    g2[1] *= -3.0
    moved = _field(x, a2, g2)['phi']
    assert torch.equal(base[0], moved[0]) and torch.equal(base[2], moved[2])
    assert not torch.allclose(base[1], moved[1])


def test_identical_particles_give_finite_field_without_repulsion():
    x = torch.zeros(1, 2, 3)
    a = torch.zeros(1, 4, 3)
    g = torch.ones(1, 4, 3)
    out = _field(x, a, g)
    assert torch.isfinite(out['phi']).all()
    assert torch.equal(out['repulsion'], torch.zeros_like(out['repulsion']))
    assert torch.allclose(out['attraction'], torch.ones_like(out['attraction']))
