"""RLDT with a camera policy: where images may be augmented, and the privileged critic.

Collection, bootstrap actions and the drift diagnostic must see the image the camera gave (a
random shift there makes the collected chunk one the deployed policy would not choose); the
actor update shows the policy and its reference ONE shifted view, so L_fd compares the two
nets, not two augmentations.
"""
import pytest
import torch

from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import PolicyConfig
from rldt_train.policy.flow_policy import eval_mode
from rldt_train.rl.config import FinetuneConfig
from rldt_train.rl.learner import RLDTLearner
from rldt_train.rl.replay import RolloutReplay
from rldt_train.rl.rldt import rldt_losses

STATE, PRIVILEGED, H, A, SIZE = 3, 5, 2, 2, 32
STEPS, ENVS = 3, 4


def _images(*shape: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (*shape, SIZE, SIZE, 3), generator=gen, dtype=torch.uint8)


def make_learner(**overrides) -> RLDTLearner:
    torch.manual_seed(0)
    base = FlowPolicy(PolicyConfig(obs_dim=STATE, action_dim=A, horizon=H, hidden_dim=16,
                                   depth=1, time_embed_dim=4, sampler_steps=4,
                                   cameras=['front'], image_size=[SIZE, SIZE],
                                   image_features=4, image_channels=4, image_shift=4))
    base.fit_normalizers(torch.randn(64, STATE), torch.rand(64, H, A))
    cfg = FinetuneConfig(**{'num_envs': ENVS, 'rollout_steps': STEPS, 'flow_steps': 4,
                            'particles': 2, 'critic_hidden_dim': 16, 'critic_depth': 1,
                            'critic_rounds': 1, 'critic_steps': 2, 'actor_steps': 1,
                            'bootstrap_actions': 2, **overrides})
    box = (torch.full((H, A), -1.0), torch.full((H, A), 2.0))
    return RLDTLearner(base, cfg, box, PRIVILEGED, critic_obs_key='privileged')


def observation(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {'state': torch.randn(batch, STATE, generator=gen),
            'privileged': 10.0 + 3.0 * torch.randn(batch, PRIVILEGED, generator=gen),
            'front': _images(batch, seed=seed)}


def make_replay(learner: RLDTLearner) -> RolloutReplay:
    """One segment whose next observations follow from the next rows (episodes never end)."""
    obs = observation(STEPS + 1)
    series = {k: torch.stack([v[t:t + 1].expand(ENVS, *v.shape[1:]) for t in range(STEPS + 1)])
              for k, v in obs.items()}                                     # (T + 1, E, ...)
    segment = {f'obs/{k}': v[:-1] for k, v in series.items()}
    segment.update({f'next_obs/{k}': v[1:] for k, v in series.items()})
    segment.update({'chunk': torch.randn(STEPS, ENVS, H, A),
                    'reward': torch.randn(STEPS, ENVS),
                    **{k: torch.zeros(STEPS, ENVS, dtype=torch.bool)
                       for k in ('terminated', 'episode_end', 'success')}})
    replay = RolloutReplay(2, torch.device('cpu'), image_keys=('front',))
    replay.add(segment)
    return replay


def test_collection_acts_on_the_image_as_deployed():
    learner = make_learner()
    obs = observation(6)
    torch.manual_seed(3)
    chunk, _, _ = learner.act(obs, exploring=False)
    torch.manual_seed(3)
    noise = learner.policy.initial_noise(6)
    expected = torch.clamp(learner.policy.sample(obs, noise=noise), *learner.action_box)
    assert torch.allclose(chunk, expected, atol=1e-6)


def test_bootstrap_actions_condition_on_unshifted_next_images():
    learner = make_learner()
    replay = make_replay(learner)
    mix = replay.sample_trajectories(ENVS, 1.0, False)
    torch.manual_seed(4)
    data = learner.prepare_round(mix)
    flat = {k[len('next_obs/'):]: v.flatten(0, 1) for k, v in mix.items()
            if k.startswith('next_obs/')}
    torch.manual_seed(4)
    with eval_mode(learner.policy):                      # the image as the camera gave it
        cond = learner.policy.encode(flat).repeat(2, 1)
    noise = learner.policy.initial_noise(cond.shape[0])
    expected = learner.policy.chain(cond, noise, 4)[-1]
    assert torch.allclose(data['next_actions'], expected, atol=1e-6)


def test_drift_is_zero_before_training_for_a_camera_policy():
    learner = make_learner()
    drift = learner.drift(observation(5))
    assert drift == {'deterministic': 0.0, 'stochastic': 0.0}


def test_shared_shift_shows_policy_and_reference_one_view():
    """At the first actor step the policy IS its reference: with one shared view, L_fd is
    exactly 0; two independent shifts (each net augmenting on its own) make it positive."""
    learner = make_learner()
    obs = observation(8)
    critic_obs = learner.critic_input(obs)
    view = learner.policy.shift_images(obs)
    assert not torch.equal(view['front'], obs['front'])          # it does augment
    assert torch.equal(view['state'], obs['state'])
    out = rldt_losses(learner.policy, learner.reference, learner.critic, view, critic_obs,
                      learner.cfg, learner.action_box)
    assert out['fd'].item() == 0.0
    learner.policy.train()
    learner.reference.train()
    out = rldt_losses(learner.policy, learner.reference, learner.critic, obs, critic_obs,
                      learner.cfg, learner.action_box)
    assert out['fd'].item() > 1e-6


@pytest.mark.parametrize('augmentation', ['shared_shift', 'none'])
def test_actor_step_augments_only_when_asked(monkeypatch, augmentation):
    learner = make_learner(warmup_iterations=0, actor_augmentation=augmentation)
    replay = make_replay(learner)
    data = learner.prepare_round(replay.sample_trajectories(ENVS, 1.0, False))
    seen = {}

    def spy(policy, reference, critic, obs, critic_obs, cfg, box):
        seen['obs'] = obs
        return rldt_losses(policy, reference, critic, obs, critic_obs, cfg, box)
    monkeypatch.setattr('rldt_train.rl.learner.rldt_losses', spy)
    learner.actor_step(data)
    stored = replay.data['obs/front'][0].reshape(-1, SIZE, SIZE, 3)
    states = {tuple(x.flatten().tolist()) for x in stored}
    # Every image the actor saw is a stored image exactly ('none') or a shifted one.
    exact = [tuple(x.flatten().tolist()) in states for x in seen['obs']['front']]
    assert all(exact) == (augmentation == 'none')
    assert not learner.policy.training                  # acting afterwards sees no shift


def test_critic_reads_the_privileged_state_with_its_own_normalizer():
    learner = make_learner()
    replay = make_replay(learner)
    assert not learner.critic_normalizer_fitted
    learner.update(replay, train_actor=False)
    assert learner.critic_normalizer_fitted
    obs = observation(4)
    expected = (obs['privileged'] - replay.data['obs/privileged'][0].reshape(-1, PRIVILEGED)
                .mean(0))
    standardized = learner.critic_input(obs)
    assert standardized.shape == (4, PRIVILEGED)
    # Standardized by the privileged data's own statistics (mean ~10, sd ~3), not the policy's.
    assert torch.allclose(standardized * learner.critic_normalizer.scale, expected, atol=1e-4)
