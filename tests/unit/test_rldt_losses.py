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
from rldt_train.rl.rldt import rbf_field
from rldt_train.rl.rldt import rldt_losses

OBS_DIM, H, A, N = 3, 2, 2, 4


def _losses(policy, reference, critic, obs, config, box=None):
    """rldt_losses with the critic reading the policy's standardized state."""
    return rldt_losses(policy, reference, critic, obs, policy.normalize_obs(obs), config, box)


def _setup(transport='rbf', seed=0, deterministic_query=False):
    torch.manual_seed(seed)
    policy = FlowPolicy(PolicyConfig(obs_dim=OBS_DIM, action_dim=A, horizon=H, hidden_dim=32,
                                     depth=2, time_embed_dim=8, sampler_steps=N))
    reference = copy.deepcopy(policy).requires_grad_(False)
    # Make the reference differ so L_fd is not trivially zero.
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    critic = QEnsemble(OBS_DIM, H * A, ensemble=2, hidden_dim=32, depth=2)
    config = FinetuneConfig(flow_steps=N, particles=4, transport=transport, temperature=0.05,
                            deterministic_query=deterministic_query)
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
    out = _losses(policy, reference, critic, torch.randn(6, OBS_DIM), config)
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
    out = _losses(policy, reference, critic, torch.randn(5, OBS_DIM), config)
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
    out = _losses(policy, reference, critic, torch.randn(4, OBS_DIM), config)
    tau = out['k'].float() / N
    assert torch.allclose(out['a_dag'], flow.expected_target(out['x_k'], out['v'], tau))


def test_delta_field_is_grad_q_at_the_query():
    policy, reference, critic, config = _setup('delta')
    obs = torch.randn(4, OBS_DIM)
    out = _losses(policy, reference, critic, obs, config)
    obs_rep = obs.repeat_interleave(config.particles, dim=0)
    # Identity normalizers here: flow space == robot units, so phi is plain grad_a Q.
    assert torch.allclose(out['phi'], action_gradient(lambda a: critic(obs_rep, a),
                                                      out['a_dag']))
    assert 'repulsion_norm' not in out


def test_constraint_vanishes_when_reference_equals_policy():
    policy, _, critic, config = _setup()
    reference = copy.deepcopy(policy).requires_grad_(False)
    out = _losses(policy, reference, critic, torch.randn(4, OBS_DIM), config)
    assert out['fd'].item() == pytest.approx(0.0, abs=1e-10)


def test_consistency_is_zero_for_queries_at_the_last_step():
    """At k = N-1, x_k + v/N is exactly the chain's own last step, so L_cons has no error."""
    policy, reference, critic, config = _setup()
    obs = torch.randn(3, OBS_DIM)
    torch.manual_seed(1)
    out = _losses(policy, reference, critic, obs, config)
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
    out = _losses(policy, reference, critic, obs, config, box)
    obs_rep = obs.repeat_interleave(config.particles, dim=0)
    expected = action_gradient(lambda a: critic(obs_rep, a.clamp(-0.05, 0.05)), out['a_dag'])
    assert torch.allclose(out['phi'], expected)
    assert (out['a_dag'].abs() > 0.05).any()


def _non_identity(policy: FlowPolicy) -> FlowPolicy:
    """Shifted and scaled normalizers: flow space, robot units and critic input all differ."""
    policy.fit_normalizers(2.0 + 3.0 * torch.randn(256, OBS_DIM),
                           0.4 + 0.1 * torch.rand(256, H, A))
    return policy


@pytest.mark.parametrize('deterministic_query', [False, True])
def test_rbf_field_reads_grad_q_at_the_final_particles_not_at_a_dag(deterministic_query):
    """phi(a_dag) = (1/P) sum_j k(a_dag, a_j) grad Q(a_j) + repulsion, with grad Q taken at the
    particles a_j (final actions, flow space) for the state's own critic input."""
    policy, reference, _, config = _setup('rbf', deterministic_query=deterministic_query)
    _non_identity(policy)
    # A strongly curved critic: its gradient at a_dag and at a_j differ clearly.
    critic = QEnsemble(OBS_DIM, H * A, ensemble=2, hidden_dim=32, depth=2, init_std=0.7)
    obs = 2.0 + 3.0 * torch.randn(3, OBS_DIM)
    critic_obs = torch.randn(3, OBS_DIM)                  # the critic's own input space
    out = rldt_losses(policy, reference, critic, obs, critic_obs, config)
    p, b = config.particles, 3
    a_n = out['a_n'][:b * p]
    grad_at_particles = action_gradient(
        lambda a: critic(critic_obs.repeat_interleave(p, 0), a), a_n)
    queries = out['a_dag'][:b * p].reshape(b, p, H, A)
    if deterministic_query:
        queries = torch.cat([queries, out['a_dag'][b * p:].reshape(b, 1, H, A)], 1)
    expected = rbf_field(queries, a_n.reshape(b, p, H, A), grad_at_particles.reshape(b, p, H, A),
                         config.temperature, config.alpha_min, config.alpha_max)['phi']
    phi = out['phi'][:b * p].reshape(b, p, H, A)
    assert torch.allclose(phi, expected[:, :p], atol=1e-6)
    if deterministic_query:
        assert torch.allclose(out['phi'][b * p:], expected[:, p], atol=1e-6)
    # Reading the gradient at a_dag instead would give another field.
    grad_at_queries = action_gradient(
        lambda a: critic(critic_obs.repeat_interleave(p, 0), a), out['a_dag'][:b * p])
    wrong = rbf_field(queries[:, :p], a_n.reshape(b, p, H, A),
                      grad_at_queries.reshape(b, p, H, A), config.temperature,
                      config.alpha_min, config.alpha_max)['phi']
    assert (phi - wrong).abs().max() > 1e-2        # vs the 1e-6 agreement above


def _constant_velocity(policy: FlowPolicy, value: torch.Tensor) -> FlowPolicy:
    """v(x, tau, s) = value for every input: all weights 0, the output bias = value."""
    with torch.no_grad():
        for param in policy.velocity_net.parameters():
            param.zero_()
        policy.velocity_net.head.bias.copy_(value.flatten())
    return policy


@pytest.mark.parametrize('deterministic_query', [False, True])
def test_losses_match_hand_computed_values_for_constant_fields(deterministic_query):
    """v_theta = b1 and v_ref = b2 everywhere, a linear critic Q = <g, a>, delta field:
    L_fd = ||b1 - b2||^2, L_cons = 0 (straight chains land where a_dag says),
    L_rl = -<b1, g> mean(1 / (N - k))."""
    policy, reference, _, config = _setup('delta', deterministic_query=deterministic_query)
    b1, b2 = torch.randn(H, A), torch.randn(H, A)
    g = torch.randn(H, A)
    _constant_velocity(policy, b1)
    _constant_velocity(reference, b2)

    def linear_critic(obs_n, chunk, bounds=None):
        return (chunk * g).flatten(1).sum(-1).expand(2, -1)
    out = rldt_losses(policy, reference, linear_critic, torch.randn(4, OBS_DIM),
                      torch.randn(4, OBS_DIM), config)
    rows = 4 * (config.particles + deterministic_query)
    assert out['k'].shape == (rows,)
    assert out['fd'].item() == pytest.approx((b1 - b2).pow(2).sum().item(), rel=1e-5)
    assert out['cons'].item() == pytest.approx(0.0, abs=1e-10)
    expected_rl = -(b1 * g).sum() * (1.0 / (N - out['k']).float()).mean()
    assert out['rl'].item() == pytest.approx(expected_rl.item(), rel=1e-5)
    total = out['rl'] + config.consistency_weight * out['cons'] + 0.2 * out['fd']
    assert out['loss'].item() == pytest.approx(total.item(), rel=1e-6)


def test_deterministic_query_rows_follow_the_zero_noise_chain():
    policy, reference, critic, config = _setup('rbf', deterministic_query=True)
    obs = torch.randn(3, OBS_DIM)
    out = _losses(policy, reference, critic, obs, config)
    p = config.particles
    assert out['a_n'].shape[0] == 3 * (p + 1)
    with torch.no_grad():
        zero_chain = policy.chain(policy.encode(obs), torch.zeros(3, H, A), N)
    assert torch.allclose(out['a_n'][3 * p:], zero_chain[-1], atol=1e-6)
    rows = torch.arange(3)
    assert torch.allclose(out['x_k'][3 * p:], zero_chain[out['k'][3 * p:], rows], atol=1e-6)
    assert 'q_deterministic' in out


@pytest.mark.parametrize('transport', ['rbf', 'delta'])
def test_gradient_of_v_with_deterministic_queries(transport):
    """The analytic gradient of the loss w.r.t. v holds for the deterministic rows too."""
    policy, reference, critic, config = _setup(transport, deterministic_query=True)
    out = _losses(policy, reference, critic, torch.randn(5, OBS_DIM), config)
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
