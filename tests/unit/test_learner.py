"""The RLDT learner's update pieces against hand-computed answers.

Each test pins one thing a wrong implementation would get wrong and the old tests would not
notice: which nets bootstrap (target, min over members, mean over fresh actions), which way the
reward scale divides, which transitions each critic member learns from, what the reference is
after an iteration, and what state a resumed learner gets back.
"""
import copy

import pytest
import torch

from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import PolicyConfig
from rldt_train.rl.config import FinetuneConfig
from rldt_train.rl.learner import RLDTLearner
from rldt_train.rl.replay import RolloutReplay

OBS_DIM, H, A = 3, 2, 2
STEPS, ENVS = 3, 4


def make_base(seed: int = 0) -> FlowPolicy:
    """A small policy with NON-identity normalizers (shifted, scaled), so a mix-up between
    robot units, the flow space and the critic's input space changes the numbers."""
    torch.manual_seed(seed)
    policy = FlowPolicy(PolicyConfig(obs_dim=OBS_DIM, action_dim=A, horizon=H, hidden_dim=16,
                                     depth=1, time_embed_dim=4, sampler_steps=4))
    obs = 3.0 + 2.0 * torch.randn(256, OBS_DIM)
    chunks = 0.5 + 0.2 * torch.rand(256, H, A)
    policy.fit_normalizers(obs, chunks)
    return policy


def make_learner(**overrides) -> RLDTLearner:
    cfg = FinetuneConfig(**{'num_envs': ENVS, 'rollout_steps': STEPS, 'flow_steps': 4,
                            'particles': 2, 'critic_hidden_dim': 16, 'critic_depth': 1,
                            'critic_rounds': 1, 'critic_steps': 2, 'actor_steps': 1,
                            'gamma': 0.9, 'td_lambda': 0.0, 'bootstrap_actions': 3,
                            **overrides})
    box = (torch.full((H, A), 0.4), torch.full((H, A), 0.8))
    return RLDTLearner(make_base(), cfg, box, OBS_DIM)


def make_replay(reward_scale: float = 1.0, seed: int = 1) -> RolloutReplay:
    g = torch.Generator().manual_seed(seed)
    replay = RolloutReplay(2, torch.device('cpu'))
    obs = 3.0 + 2.0 * torch.randn(STEPS, ENVS, OBS_DIM, generator=g)
    replay.add({'obs/state': obs, 'next_obs/state': obs + 0.1,
                'chunk': torch.randn(STEPS, ENVS, H, A, generator=g),
                'reward': reward_scale * torch.randn(STEPS, ENVS, generator=g),
                'terminated': torch.zeros(STEPS, ENVS, dtype=torch.bool),
                'episode_end': torch.zeros(STEPS, ENVS, dtype=torch.bool),
                'success': torch.zeros(STEPS, ENVS, dtype=torch.bool)})
    return replay


def test_td_target_is_scaled_reward_plus_mean_over_fresh_actions_of_min_over_target_nets():
    learner = make_learner()
    # Targets must differ from the online nets and the two members from each other, or
    # "target vs online" and "min vs mean" would give the same numbers.
    with torch.no_grad():
        for p in learner.critic_target.parameters():
            p.add_(0.3 * torch.randn_like(p))
    replay = make_replay(reward_scale=4.0)
    learner.scaler.update(replay.data['reward'][0])
    scale = learner.scaler.scale
    assert scale > 2.0                                   # |r| of N(0, 16) is ~3.2
    mix = replay.sample_trajectories(ENVS, 1.0, False)
    data = learner.prepare_round(mix)
    y = learner.td_targets(data)

    k, t, m = 3, STEPS, ENVS
    assert data['next_actions'].shape == (k * t * m, H, A)
    # Fresh actions: the K draws at the same next state differ.
    draws = data['next_actions'].view(k, t * m, H, A)
    assert not torch.allclose(draws[0], draws[1])
    q_target = learner.critic_target(data['next_critic_obs'], data['next_actions'],
                                     data['next_bounds'])             # (E, K*T*M)
    value = q_target.min(0).values.view(k, t, m).mean(0)
    expected = data['reward'] + 0.9 * value
    assert torch.allclose(data['reward'] * scale, mix['reward'])        # r / scale
    assert torch.allclose(y, expected, atol=1e-6)
    wrong = {
        'online nets': learner.critic(data['next_critic_obs'], data['next_actions'],
                                      data['next_bounds']).min(0).values,
        'mean over members': q_target.mean(0),
    }
    for label, q in wrong.items():
        other = data['reward'] + 0.9 * q.view(k, t, m).mean(0)
        assert not torch.allclose(y, other, atol=1e-4), label
    assert not torch.allclose(y, mix['reward'] * scale + 0.9 * value, atol=1e-4)


def test_each_critic_member_learns_only_from_its_own_trajectories():
    learner = make_learner(critic_split='trajectory')
    replay = make_replay()
    data = learner.prepare_round(replay.sample_trajectories(ENVS, 1.0, False))
    index = data['member_index']
    assert index.shape == (2, ENVS // 2)
    assert sorted(index.flatten().tolist()) == list(range(ENVS))
    targets = learner.td_targets(data)
    # Change member 1's trajectories only: member 0's update must not move.
    changed = copy.deepcopy(data)
    changed['member_chunk'][1] += 5.0
    changed['member_obs'][1] -= 5.0
    results = []
    for batch in (data, changed):
        clone = copy.deepcopy(learner)
        clone.critic_step(batch, targets)
        results.append([p.detach().clone() for p in clone.critic.parameters()])
    # Member 0: the identical update. Member 1: its data changed, so its update did (Adam's
    # first step is lr * sign(grad) per element, so compare all of its parameters).
    assert all(torch.equal(before[0], after[0]) for before, after in zip(*results))
    assert any(not torch.equal(before[1], after[1]) for before, after in zip(*results))


def test_shared_split_trains_every_member_on_every_transition():
    learner = make_learner(critic_split='none')
    data = learner.prepare_round(make_replay().sample_trajectories(ENVS, 1.0, False))
    assert 'member_index' not in data
    stats = learner.critic_step(data, learner.td_targets(data))
    assert torch.isfinite(stats).all()


@pytest.mark.parametrize('reference', ['previous', 'pretrained'])
def test_reference_after_an_iteration(reference):
    learner = make_learner(reference=reference, actor_lr=1e-2)
    base = copy.deepcopy(learner.base.state_dict())
    learner.update(make_replay(), train_actor=True)
    policy = learner.policy.state_dict()
    ref = learner.reference.state_dict()
    assert any(not torch.equal(policy[k], base[k]) for k in base)       # the actor moved
    if reference == 'previous':
        assert all(torch.equal(ref[k], policy[k]) for k in policy)
    else:
        assert all(torch.equal(ref[k], base[k]) for k in base)


def test_warmup_iteration_leaves_the_policy_alone_and_state_round_trips():
    learner = make_learner()
    base = copy.deepcopy(learner.policy.state_dict())
    stats = learner.update(make_replay(), train_actor=False)
    assert 'actor_loss' not in stats and stats['critic_loss'] >= 0
    assert all(torch.equal(v, base[k]) for k, v in learner.policy.state_dict().items())
    learner.update(make_replay(), train_actor=True)
    restored = make_learner()
    restored.load_state_dict(copy.deepcopy(learner.state_dict()))
    for name in ('policy', 'reference', 'critic', 'critic_target'):
        a, b = getattr(learner, name).state_dict(), getattr(restored, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert restored.actor_updates == learner.actor_updates == 1
    assert restored.actor_sched.last_epoch == learner.actor_sched.last_epoch


def test_act_clips_to_the_box_and_returns_the_executed_chunk_in_the_flow_space():
    learner = make_learner()
    obs = {'state': 3.0 + 2.0 * torch.randn(8, OBS_DIM)}
    chunk, chunk_flow, scale = learner.act(obs)
    assert ((chunk >= 0.4) & (chunk <= 0.8)).all()
    assert torch.allclose(learner.policy.unnormalize_actions(chunk_flow, obs['state']), chunk,
                          atol=1e-6)
    assert scale.shape == (8,)
    _, _, none = learner.act(obs, exploring=False)
    assert torch.equal(none, torch.zeros(8))


def test_deterministic_envs_act_from_x0_zero_and_the_rest_sample():
    learner = make_learner(deterministic_envs=0.5, flow_steps=4)
    obs = {'state': 3.0 + 2.0 * torch.randn(8, OBS_DIM)}
    _, chunk_flow, _ = learner.act(obs, exploring=False)
    box = learner.action_box
    det = torch.clamp(learner.policy.sample(obs, steps=4, deterministic=True), *box)
    det_flow = learner.policy.normalize_actions(det, obs['state'])
    assert torch.allclose(chunk_flow[:4], det_flow[:4], atol=1e-5)
    # The other half sampled from x_0 ~ N(0, I): not the deterministic chunk.
    assert not torch.allclose(chunk_flow[4:], det_flow[4:], atol=1e-3)
    with pytest.raises(ValueError, match='deterministic_envs'):
        make_learner(deterministic_envs=1.5)


def test_drift_is_zero_before_training_and_reports_both_modes():
    learner = make_learner()
    drift = learner.drift({'state': torch.randn(5, OBS_DIM)})
    assert drift == {'deterministic': 0.0, 'stochastic': 0.0}
