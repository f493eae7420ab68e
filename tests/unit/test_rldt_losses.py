"""RLDT losses: expected target, loss weights, where gradients flow, exploration, delta field."""
import copy
from dataclasses import replace

import pytest
import torch

from rldt_train.policy import flow
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import PolicyConfig
from rldt_train.rl.config import FinetuneConfig
from rldt_train.rl.critic import QEnsemble
from rldt_train.rl.critic import action_gradient
from rldt_train.rl.rldt import explore
from rldt_train.rl.rldt import grad_norm_per_step
from rldt_train.rl.rldt import rldt_losses

OBS_DIM, H, A, N = 3, 2, 2, 4


def _setup(transport='rbf', seed=0):
    torch.manual_seed(seed)
    policy = FlowPolicy(PolicyConfig(obs_dim=OBS_DIM, action_dim=A, horizon=H, hidden_dim=32,
                                     depth=2, time_embed_dim=8, sampler_steps=N))
    reference = copy.deepcopy(policy).requires_grad_(False)
    # Make the reference differ so L_fd is not trivially zero.
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    critic = QEnsemble(OBS_DIM, H * A, ensemble=2, hidden_dim=32, depth=2)
    config = FinetuneConfig(flow_steps=N, particles=4, transport=transport, temperature=0.05)
    return policy, reference, critic, config


def test_expected_target_at_last_step_equals_final_action():
    policy, *_ = _setup()
    obs = torch.randn(5, OBS_DIM)
    chain = policy.chain(obs, torch.randn(5, H, A), N)
    tau = torch.full((5,), (N - 1) / N)
    v = policy.velocity(chain[N - 1], tau, obs)
    assert torch.allclose(flow.expected_target(chain[N - 1], v, tau), chain[N], atol=1e-6)


@pytest.mark.parametrize('transport', ['rbf', 'delta'])
def test_gradient_of_v_matches_loss_weights_and_detached_field(transport):
    """d loss / d v_theta(x_k) must be -phi / (N - k) + cons' (N - k)^-2 term, per sample.

    If phi, a_dag or the chain carried gradient, or the weights were not 1/(N-k) and
    1/(N-k)^2, this analytic gradient would not match autograd's.
    """
    policy, reference, critic, config = _setup(transport)
    out = rldt_losses(policy, reference, critic, torch.randn(6, OBS_DIM), config)
    out['v'].retain_grad()
    out['loss'].backward()
    m = out['v'].shape[0]
    n_minus_k = (N - out['k']).float()[:, None, None]
    tau = out['k'].float()[:, None, None] / N
    one_step = out['x_k'] + (1 - tau) * out['v'].detach()
    expected = (-out['phi'] / n_minus_k
                + config.consistency_weight * 2 * (one_step - out['a_n']) * (1 - tau)
                / n_minus_k ** 2) / m
    assert torch.allclose(out['v'].grad, expected, atol=1e-7, rtol=1e-4)
    assert set(out['k'].tolist()) <= set(range(N))


def test_only_policy_receives_gradient_and_only_at_sampled_points():
    policy, reference, critic, config = _setup()
    calls = []
    policy.velocity_net.register_forward_hook(
        lambda module, args, output: calls.append((args[0].shape[0], output.requires_grad)))
    out = rldt_losses(policy, reference, critic, torch.randn(5, OBS_DIM), config)
    out['loss'].backward()
    # N chain calls without gradient, then v_theta(x_k) and v_theta(x') with gradient.
    assert [g for _, g in calls] == [False] * N + [True, True]
    assert all(size == 5 * config.particles for size, _ in calls)
    assert all(p.grad is None for p in critic.parameters())
    assert all(p.grad is None for p in reference.parameters())
    assert all(p.grad is not None for p in policy.velocity_net.parameters())
    for name in ('phi', 'a_dag', 'a_n', 'x_k'):
        assert not out[name].requires_grad, name


def test_a_dag_is_the_one_step_estimate():
    policy, reference, critic, config = _setup()
    out = rldt_losses(policy, reference, critic, torch.randn(4, OBS_DIM), config)
    tau = out['k'].float() / N
    assert torch.allclose(out['a_dag'], flow.expected_target(out['x_k'], out['v'], tau))


def test_delta_field_is_grad_q_at_the_query():
    policy, reference, critic, config = _setup('delta')
    obs = torch.randn(4, OBS_DIM)
    out = rldt_losses(policy, reference, critic, obs, config)
    obs_rep = obs.repeat_interleave(config.particles, dim=0)
    # Identity normalizers here: flow space == robot units, so phi is plain grad_a Q.
    assert torch.allclose(out['phi'], action_gradient(lambda a: critic(obs_rep, a),
                                                      out['a_dag']))
    assert 'repulsion_norm' not in out


def test_constraint_vanishes_when_reference_equals_policy():
    policy, _, critic, config = _setup()
    reference = copy.deepcopy(policy).requires_grad_(False)
    out = rldt_losses(policy, reference, critic, torch.randn(4, OBS_DIM), config)
    assert out['fd'].item() == pytest.approx(0.0, abs=1e-10)


def test_consistency_is_zero_for_queries_at_the_last_step():
    """At k = N-1, x_k + v/N is exactly the chain's own last step, so L_cons has no error."""
    policy, reference, critic, config = _setup()
    obs = torch.randn(3, OBS_DIM)
    torch.manual_seed(1)
    out = rldt_losses(policy, reference, critic, obs, config)
    last = out['k'] == N - 1
    assert last.any()
    tau = out['k'].float()[:, None, None] / N
    err = out['x_k'] + (1 - tau) * out['v'].detach() - out['a_n']
    assert err[last].abs().max() < 1e-5
    assert err[~last].abs().max() > 1e-4


def test_grad_norm_per_step_groups_by_k():
    v = torch.zeros(4, 1, 1, requires_grad=True)
    (v.flatten() * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    norms = grad_norm_per_step(v, torch.tensor([0, 0, 2, 2]), 3)
    assert torch.allclose(norms, torch.tensor([1.5, 0.0, 3.5]))


def test_explore_noise_is_zero_at_last_step_and_one_step_gap_otherwise():
    policy, *_ = _setup()
    obs = torch.randn(64, OBS_DIM)
    chain = policy.chain(obs, torch.randn(64, H, A), N)
    torch.manual_seed(3)
    a, scale = explore(chain)
    # k = N-2: a_dag = x_{N-2} + 2 v_{N-2} / N, so ||a_N - a_dag|| = ||v_{N-1} - v_{N-2}|| / N.
    gap = ((chain[N] - chain[N - 1]) - (chain[N - 1] - chain[N - 2])).flatten(1).norm(dim=-1)
    zero = scale == 0
    assert zero.any() and (~zero).any()
    assert torch.allclose(scale[~zero], gap[~zero], rtol=1e-4, atol=1e-7)
    assert torch.equal(a[zero], chain[N][zero])
    assert not torch.allclose(a[~zero], chain[N][~zero])


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match='transport'):
        FinetuneConfig(transport='gauss')
    with pytest.raises(ValueError, match='reference'):
        FinetuneConfig(reference='ema')
    with pytest.raises(ValueError, match='flow_steps'):
        FinetuneConfig(flow_steps=1)
    with pytest.raises(ValueError, match='new_data_fraction'):
        FinetuneConfig(new_data_fraction=0.0)
    assert replace(FinetuneConfig(), transport='delta', particles=1).particles == 1


def test_action_box_clamps_the_critic_input_per_state():
    """With an action box, phi (delta) is grad Q of the chunk clamped to the per-state box."""
    policy, reference, critic, config = _setup('delta')
    obs = torch.randn(3, OBS_DIM)
    box = (torch.full((H, A), -0.05), torch.full((H, A), 0.05))
    torch.manual_seed(4)
    out = rldt_losses(policy, reference, critic, obs, config, box)
    obs_rep = obs.repeat_interleave(config.particles, dim=0)
    expected = action_gradient(lambda a: critic(obs_rep, a.clamp(-0.05, 0.05)), out['a_dag'])
    assert torch.allclose(out['phi'], expected)
    assert (out['a_dag'].abs() > 0.05).any()
