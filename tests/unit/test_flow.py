"""Flow maths pinned by exact answers (tau = 0 noise, tau = 1 action)."""
import pytest
import torch

from rldt_train.policy import flow
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import PolicyConfig
from rldt_train.policy.flow_policy import load_policy
from rldt_train.policy.flow_policy import save_policy


def test_interpolant_endpoints_and_midpoint():
    eps, a = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    assert torch.allclose(flow.interpolate(eps, a, torch.zeros(3)), eps)
    assert torch.allclose(flow.interpolate(eps, a, torch.ones(3)), a)
    assert torch.allclose(flow.interpolate(eps, a, torch.full((3,), 0.5)), (eps + a) / 2)


def test_bc_target_is_interpolant_velocity():
    eps, a = torch.randn(5, 2, 3), torch.randn(5, 2, 3)
    tau, dt = torch.rand(5) * 0.9, 1e-3
    finite_diff = (flow.interpolate(eps, a, tau + dt) - flow.interpolate(eps, a, tau)) / dt
    assert torch.allclose(finite_diff, flow.bc_target(eps, a), atol=1e-2)


def test_euler_constant_field_is_exact():
    velocity = torch.tensor([1.0, -2.0])
    x0 = torch.zeros(2, 1, 2)
    chain = flow.euler_chain(lambda x, tau, s: velocity.expand_as(x), x0, torch.zeros(2, 1), 8)
    assert chain.shape == (9, 2, 1, 2)
    assert torch.allclose(chain[-1], velocity.expand_as(x0))
    assert torch.allclose(chain[4], 0.5 * velocity.expand_as(x0))


def test_euler_time_grid_is_k_over_n():
    seen = []

    def field(x, tau, s):
        seen.append(tau[0].item())
        return torch.zeros_like(x)
    flow.euler_chain(field, torch.zeros(1, 1, 1), torch.zeros(1, 1), 4)
    assert seen == [0.0, 0.25, 0.5, 0.75]


def test_euler_linear_field_matches_closed_form():
    # dx/dtau = x has exact solution e * x0; Euler gives (1 + 1/N)^N * x0.
    x0 = torch.ones(1, 1, 1)
    n = 10
    chain = flow.euler_chain(lambda x, tau, s: x, x0, torch.zeros(1, 1), n)
    assert chain[-1].item() == pytest.approx((1 + 1 / n) ** n, rel=1e-6)


def test_expected_target_at_last_step_equals_final_action():
    policy = FlowPolicy(PolicyConfig(obs_dim=3, action_dim=2, horizon=4, hidden_dim=32,
                                     sampler_steps=6))
    obs, x0 = torch.randn(5, 3), torch.randn(5, 4, 2)
    chain = policy.chain(obs, x0)
    n = policy.config.sampler_steps
    tau = torch.full((5,), (n - 1) / n)
    a_dag = flow.expected_target(chain[n - 1], policy.velocity(chain[n - 1], tau, obs), tau)
    assert torch.allclose(a_dag, chain[-1], atol=1e-6)


def test_sample_shapes_and_determinism():
    policy = FlowPolicy(PolicyConfig(obs_dim=3, action_dim=2, horizon=4, hidden_dim=32))
    obs = torch.randn(7, 3)
    out = policy.sample(obs, deterministic=True)
    assert out.shape == (7, 4, 2)
    assert torch.equal(out, policy.sample(obs, deterministic=True))
    assert not torch.allclose(policy.sample(obs), policy.sample(obs))


def test_bc_learns_a_bimodal_target():
    """Flow matching should represent two modes that an MSE regressor would average."""
    torch.manual_seed(0)
    policy = FlowPolicy(PolicyConfig(obs_dim=1, action_dim=1, horizon=1, hidden_dim=64,
                                     sampler_steps=10))
    obs = torch.zeros(2048, 1)
    actions = torch.where(torch.rand(2048, 1, 1) < 0.5, -1.0, 1.0)
    policy.fit_normalizers(obs, actions)
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(600):
        idx = torch.randint(0, 2048, (256,))
        loss = policy.bc_loss(obs[idx], actions[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    samples = policy.sample(torch.zeros(1000, 1)).flatten()
    near_modes = ((samples - 1).abs() < 0.3) | ((samples + 1).abs() < 0.3)
    assert near_modes.float().mean() > 0.8
    assert 0.25 < (samples > 0).float().mean() < 0.75


def test_checkpoint_roundtrip_weights_only(tmp_path):
    policy = FlowPolicy(PolicyConfig(obs_dim=3, action_dim=2, horizon=2, hidden_dim=16,
                                     residual=True, depth=2))
    policy.fit_normalizers(torch.randn(50, 3) * 5, torch.rand(50, 2, 2))
    save_policy(tmp_path / 'p.pt', policy, extra={'task': 'x'})
    loaded = load_policy(tmp_path / 'p.pt')
    obs = torch.randn(4, 3)
    assert torch.allclose(policy.sample(obs, deterministic=True),
                          loaded.sample(obs, deterministic=True))


def test_policy_config_rejects_bad_values():
    with pytest.raises(ValueError, match='horizon'):
        PolicyConfig(obs_dim=3, action_dim=2, horizon=0)
    with pytest.raises(ValueError, match='time_embed_dim'):
        PolicyConfig(obs_dim=3, action_dim=2, time_embed_dim=7)


def test_relative_actions_add_current_joint_positions(tmp_path):
    """Relative mode: the flow models a - q; robot-unit outputs are q + (unnormalized flow)."""
    config = PolicyConfig(obs_dim=4, action_dim=2, horizon=3, hidden_dim=16,
                          action_reference_index=[2, 0])
    policy = FlowPolicy(config)
    obs = torch.randn(64, 4)
    actions = obs[:, None, [2, 0]] + 0.1 * torch.randn(64, 3, 2)
    policy.fit_normalizers(obs, actions)
    roundtrip = policy.unnormalize_actions(policy.normalize_actions(actions, obs), obs)
    assert torch.allclose(roundtrip, actions, atol=1e-5)
    shifted = obs.clone()
    shifted[:, 2] += 1.0  # moving joint 2 by 1 moves the first action's offset by exactly 1
    x = torch.zeros(64, 3, 2)
    delta = policy.unnormalize_actions(x, shifted) - policy.unnormalize_actions(x, obs)
    assert torch.allclose(delta[..., 0], torch.ones(64, 3)) and torch.all(delta[..., 1] == 0)
    with pytest.raises(ValueError, match='relative'):
        policy.unnormalize_actions(x)
    save_policy(tmp_path / 'rel.pt', policy)
    loaded = load_policy(tmp_path / 'rel.pt')
    assert torch.allclose(loaded.sample(obs, deterministic=True),
                          policy.sample(obs, deterministic=True))
    with pytest.raises(ValueError, match='action_reference_index'):
        PolicyConfig(obs_dim=4, action_dim=2, action_reference_index=[0, 9])


def test_fast_mish_matches_torch_mish_in_value_and_gradient():
    """The velocity MLP's Mish (one sigmoid) must be torch's Mish: a checkpoint trained with
    either runs the same, and the exported ONNX graph (which uses torch's) matches training."""
    from rldt_train.policy.networks import Mish
    x = torch.cat([torch.linspace(-120.0, 120.0, 20001), torch.randn(5000) * 3])
    x_fast, x_ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    weights = torch.randn_like(x)
    y_fast, y_ref = Mish()(x_fast), torch.nn.functional.mish(x_ref)
    (y_fast * weights).sum().backward()
    (y_ref * weights).sum().backward()
    assert torch.allclose(y_fast, y_ref, atol=2e-6, rtol=1e-5)
    assert torch.allclose(x_fast.grad, x_ref.grad, atol=2e-6, rtol=1e-5)
    assert torch.isfinite(x_fast.grad).all()
    x64 = torch.randn(30, dtype=torch.float64, requires_grad=True) * 4
    assert torch.autograd.gradcheck(Mish(), (x64.detach().requires_grad_(True),))
