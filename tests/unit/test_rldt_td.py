"""TD(lambda) targets, episode success marks, reward scaler, replay and critic ensemble."""
import io

import pytest
import torch

from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import PolicyConfig
from rldt_train.rl.critic import QEnsemble
from rldt_train.rl.critic import action_gradient
from rldt_train.rl.critic import flow_space_bounds
from rldt_train.rl.critic import make_target
from rldt_train.rl.critic import polyak_update
from rldt_train.rl.replay import RolloutReplay
from rldt_train.rl.td import RewardScaler
from rldt_train.rl.td import episode_success
from rldt_train.rl.td import td_lambda_targets

# One env, five chunk steps: termination at t=1, truncation at t=3, segment ends at t=4.
REWARDS = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
NEXT_V = torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0])
TERMINATED = torch.tensor([False, True, False, False, False])
EPISODE_END = torch.tensor([False, True, False, True, False])


@pytest.mark.parametrize('lam, expected', [
    # G4 = 5 + .5*50 = 30 (segment end); G3 = 4 + .5*40 = 24 (truncation: bootstrap only);
    # G2 = 3 + .5*((1-l)*30 + l*G3); G1 = 2 (terminal); G0 = 1 + .5*((1-l)*10 + l*G1).
    (0.0, [6.0, 2.0, 18.0, 24.0, 30.0]),
    (0.5, [4.0, 2.0, 16.5, 24.0, 30.0]),
    (1.0, [2.0, 2.0, 15.0, 24.0, 30.0]),
])
def test_td_lambda_hand_made_segment(lam, expected):
    targets = td_lambda_targets(REWARDS, NEXT_V, TERMINATED, EPISODE_END, 0.5, lam)
    assert torch.allclose(targets, torch.tensor(expected))


def test_td_lambda_batches_independently_over_trailing_dims():
    rewards = torch.stack([REWARDS, torch.zeros(5)], dim=1)
    next_v = torch.stack([NEXT_V, torch.ones(5)], dim=1)
    term = torch.stack([TERMINATED, torch.zeros(5, dtype=torch.bool)], dim=1)
    end = torch.stack([EPISODE_END, torch.zeros(5, dtype=torch.bool)], dim=1)
    targets = td_lambda_targets(rewards, next_v, term, end, 0.5, 0.5)
    assert torch.allclose(targets[:, 0], torch.tensor([4.0, 2.0, 16.5, 24.0, 30.0]))
    # No ends: G4 = .5, G_t = .5 (.5 + .5 G_{t+1}).
    g = [0.5]
    for _ in range(4):
        g.insert(0, 0.5 * (0.5 + 0.5 * g[0]))
    assert torch.allclose(targets[:, 1], torch.tensor(g))


def test_episode_success_marks_whole_episode_within_segment():
    success = torch.tensor([False, False, True, False, False, False])
    end = torch.tensor([False, False, False, True, False, False])
    assert episode_success(success, end).tolist() == [True, True, True, True, False, False]


def test_reward_scaler_ema_and_state():
    scaler = RewardScaler(decay=0.5, enabled=True)
    scaler.update(torch.tensor([-2.0, 2.0]))
    assert scaler.scale == pytest.approx(2.0)
    scaler.update(torch.tensor([4.0]))
    assert scaler.scale == pytest.approx(3.0)
    other = RewardScaler(decay=0.5, enabled=True)
    other.load_state_dict(scaler.state_dict())
    assert other.scale == scaler.scale
    assert RewardScaler(decay=0.5, enabled=False).scale == 1.0


def test_reward_scaler_skips_all_zero_rollouts():
    """A sparse task's first rollouts are all zeros: they must not set the scale near 0 (and
    multiply every later reward by ~100)."""
    scaler = RewardScaler(decay=0.99, enabled=True)
    scaler.update(torch.zeros(64))
    assert scaler.scale == 1.0 and scaler.updates == 0
    scaler.update(torch.tensor([0.0, 0.5]))
    assert scaler.scale == pytest.approx(0.25)
    scaler.update(torch.zeros(64))
    assert scaler.scale == pytest.approx(0.25)


def _segment(steps, envs, value):
    """A segment whose every field holds `value` (and the env index in obs[..., 1])."""
    obs = torch.full((steps, envs, 3), value)
    obs[..., 1] = torch.arange(envs, dtype=torch.float32)
    return {'obs/state': obs, 'next_obs/state': obs + 1,
            'chunk': torch.full((steps, envs, 2, 1), value),
            'reward': torch.full((steps, envs), value),
            'terminated': torch.zeros(steps, envs, dtype=torch.bool),
            'episode_end': torch.zeros(steps, envs, dtype=torch.bool),
            'success': torch.zeros(steps, envs, dtype=torch.bool)}


def test_replay_ring_keeps_trajectories_whole_with_a_fresh_share():
    replay = RolloutReplay(3, torch.device('cpu'))
    for value in range(5):
        replay.add(_segment(4, 10, float(value)))
    assert replay.filled == 3 and (replay.steps, replay.num_envs) == (4, 10)
    mix = replay.sample_trajectories(10, 0.4, balance_success=False,
                                     generator=torch.Generator().manual_seed(0))
    rewards = mix['reward']                                    # (T, M): time first
    assert rewards.shape == (4, 10)
    # Every trajectory is one segment's env, whole: constant over time.
    assert torch.equal(rewards, rewards[:1].expand_as(rewards))
    assert torch.equal(mix['obs/state'][..., 0], rewards)
    # max(0.4, 1/3) of 10 = 4 fresh (segment 4), the rest from segments 2 and 3, all distinct.
    assert rewards[0].tolist().count(4.0) == 4
    assert set(rewards[0, 4:].tolist()) <= {2.0, 3.0}
    pairs = set(zip(rewards[0].tolist(), mix['obs/state'][0, :, 1].tolist()))
    assert len(pairs) == 10
    assert torch.equal(mix['next_obs/state'], mix['obs/state'] + 1)


def test_replay_state_roundtrip_and_young_replay():
    replay = RolloutReplay(3, torch.device('cpu'))
    replay.add(_segment(2, 4, 7.0))
    # One segment stored: the mix is every fresh trajectory (no old ones exist yet).
    mix = replay.sample_trajectories(8, 0.33, balance_success=False)
    assert mix['reward'].shape == (2, 4)
    buffer = io.BytesIO()
    torch.save(replay.state_dict(), buffer)
    buffer.seek(0)
    restored = RolloutReplay(3, torch.device('cpu'))
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.ptr == replay.ptr and restored.count == replay.count
    assert torch.equal(restored.data['obs/state'], replay.data['obs/state'])
    with pytest.raises(ValueError, match='fields'):
        replay.add({k: v for k, v in _segment(2, 4, 1.0).items() if k != 'chunk'})


def test_replay_balances_success_and_failure():
    replay = RolloutReplay(3, torch.device('cpu'))
    old = _segment(5, 20, 0.0)
    old['success'][2, 0] = True          # one successful trajectory among 20
    replay.add(old)
    replay.add(_segment(5, 20, 1.0))
    torch.manual_seed(0)
    shares = []
    for _ in range(200):
        mix = replay.sample_trajectories(2, 0.5, balance_success=True)
        shares.append(float(mix['success'][:, 1].any()))     # 1 fresh, then 1 old trajectory
    # Success-balanced: half of the old draws are the one successful trajectory (1/20 by
    # chance).
    assert sum(shares) / len(shares) == pytest.approx(0.5, abs=0.08)


def test_critic_shapes_init_polyak_and_action_gradient():
    torch.manual_seed(0)
    critic = QEnsemble(5, 6, ensemble=2, hidden_dim=64, depth=2, init_std=0.1)
    obs, chunk = torch.randn(7, 5), torch.randn(7, 3, 2)
    assert critic(obs, chunk).shape == (2, 7)
    assert critic.hidden[0].weight.std().item() == pytest.approx(0.1, rel=0.1)
    # Members differ (independent init), so the min over targets is meaningful.
    assert not torch.allclose(critic(obs, chunk)[0], critic(obs, chunk)[1])
    target = make_target(critic)
    before = target.out.weight.clone()
    with torch.no_grad():
        critic.out.weight.add_(1.0)
    polyak_update(target, critic, 0.9)
    assert torch.allclose(target.out.weight, before + 0.1)
    grad = action_gradient(lambda a: critic(obs, a), chunk)
    for b in (0, 6):
        a = chunk[b:b + 1].clone().requires_grad_(True)
        critic(obs[b:b + 1], a).mean(0).sum().backward()
        assert torch.allclose(grad[b:b + 1], a.grad, atol=1e-6)


def test_critic_clamps_to_the_action_box_mapped_into_the_flow_space():
    """Relative actions: box [low, high] in robot units -> (box - q(s) - shift) / scale."""
    torch.manual_seed(0)
    policy = FlowPolicy(PolicyConfig(obs_dim=5, action_dim=2, horizon=3, hidden_dim=8, depth=1,
                                     time_embed_dim=4, action_reference_index=[0, 1]))
    policy.action_normalizer.scale.copy_(torch.tensor([0.5, 0.01]))
    low, high = torch.tensor([[-1.0, 0.0]] * 3), torch.tensor([[1.0, 0.03]] * 3)
    obs = torch.randn(4, 5) * 0.1
    bounds = flow_space_bounds(policy, low, high, obs)
    assert torch.allclose(bounds[0], (low - obs[:, None, :2]) / torch.tensor([0.5, 0.01]))
    critic = QEnsemble(5, 6, ensemble=2, hidden_dim=32, depth=2)
    chunk = torch.randn(4, 3, 2) * 3
    assert torch.equal(critic(obs, chunk, bounds),
                       critic(obs, torch.clamp(chunk, bounds[0], bounds[1])))
    grad = action_gradient(lambda a: critic(obs, a, bounds), chunk)
    outside = (chunk < bounds[0]) | (chunk > bounds[1])
    assert outside.any() and (~outside).any()
    assert torch.equal(grad[outside], torch.zeros_like(grad[outside]))
    assert (grad[~outside] != 0).all()
