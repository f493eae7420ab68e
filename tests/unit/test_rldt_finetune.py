"""Tiny end-to-end RLDT runs on Hopper-v5 (CPU): outputs, both switches, resume."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from rldt_train.config import load_config
from rldt_train.envs.chunk_wrapper import ActionChunkWrapper
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import PolicyConfig
from rldt_train.policy.flow_policy import load_policy
from rldt_train.policy.flow_policy import save_policy
from rldt_train.rl.finetune import POLICY_FILE
from rldt_train.rl.config import FinetuneConfig
from rldt_train.rl.finetune import STATE_FILE
from rldt_train.rl.finetune import collect_rollout
from rldt_train.rl.finetune import run_finetune

SMOKE = 'config/train/smoke_hopper.yaml'


@pytest.fixture(scope='module')
def base(tmp_path_factory):
    """A small BC policy (random chunks: the point is the plumbing, not the return)."""
    torch.manual_seed(0)
    obs, chunks = torch.randn(256, 11), torch.rand(256, 4, 3) * 2 - 1
    policy = FlowPolicy(PolicyConfig(obs_dim=11, action_dim=3, horizon=4, hidden_dim=32,
                                     depth=2, sampler_steps=4))
    policy.fit_normalizers(obs, chunks)
    optimizer = torch.optim.Adam(policy.parameters(), 1e-3)
    for _ in range(10):
        loss = policy.bc_loss(obs, chunks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = tmp_path_factory.mktemp('base') / 'policy_bc.pt'
    save_policy(path, policy)
    return path


def test_finetune_writes_outputs_and_resumes(tmp_path, base):
    config = load_config(SMOKE, ['finetune.iterations=2'])
    summary = run_finetune(config, tmp_path, base, progress=False)
    assert {'base_return', 'final_return', 'env_steps'} <= set(summary)
    assert 'base_success' not in summary          # Hopper has no success signal
    for name in (STATE_FILE, POLICY_FILE, 'learning_curve.png', 'config.yaml'):
        assert (tmp_path / name).is_file(), name
    assert list((tmp_path / 'tb').glob('events.out.tfevents.*'))
    policy = load_policy(tmp_path / POLICY_FILE)
    assert policy.config.sampler_steps == config.finetune.flow_steps
    assert policy.sample(torch.zeros(1, 11), deterministic=True).shape == (1, 4, 3)
    first = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert first['iteration'] == 2 and first['replay']['count'] == 2
    # One warm-up iteration then one actor iteration of 2 steps.
    assert first['actor_scheduler']['last_epoch'] == 2
    base_weights = load_policy(base).state_dict()
    assert any(not torch.equal(first['policy'][k], base_weights[k]) for k in base_weights)

    resumed = run_finetune(load_config(SMOKE, ['finetune.iterations=3']), tmp_path, base,
                           resume=True, progress=False)
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert state['iteration'] == 3 and state['replay']['count'] == 3
    assert state['actor_scheduler']['last_epoch'] == 4
    assert len(state['history']['eval']) == 4     # base + one per iteration
    assert resumed['env_steps'] > summary['env_steps']
    assert resumed['base_return'] == summary['base_return']

    with pytest.raises(ValueError, match='finetune.gamma'):
        run_finetune(load_config(SMOKE, ['finetune.gamma=0.9']), tmp_path, base, resume=True,
                     progress=False)


def test_finetune_delta_with_pretrained_reference(tmp_path, base):
    config = load_config(SMOKE, ['finetune.iterations=2', 'finetune.transport=delta',
                                 'finetune.reference=pretrained', 'finetune.td_lambda=0.5',
                                 'finetune.eval_stochastic=true'])
    summary = run_finetune(config, tmp_path, base, progress=False)
    assert summary['transport'] == 'delta' and summary['reference'] == 'pretrained'
    assert 'final_return_stoch' in summary
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    # The frozen pretrained reference is the base, untouched by the actor steps.
    assert all(torch.equal(state['reference'][k], state['base'][k]) for k in state['base'])
    assert any(not torch.equal(state['policy'][k], state['base'][k]) for k in state['base'])


def test_finetune_rejects_horizon_mismatch(tmp_path, base):
    with pytest.raises(ValueError, match='horizon'):
        run_finetune(load_config(SMOKE, ['policy.horizon=8']), tmp_path, base, progress=False)


class CountingEnv(gym.Env):
    """obs = steps taken; terminates (with success) after 3 steps, reward 1 per step."""

    observation_space = gym.spaces.Box(-100.0, 100.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {'success': False}

    def step(self, action):
        self.t += 1
        done = self.t == 3
        return np.array([float(self.t)], np.float32), 1.0, done, False, {'success': done}


def test_collect_rollout_reads_final_obs_chunk_steps_and_success():
    """Gymnasium 1.4 SAME_STEP autoreset: the ended episode's last obs and step info live in
    info['final_obs'] / info['final_info']; the segment must store them, not the reset obs."""
    venv = gym.vector.SyncVectorEnv([lambda: ActionChunkWrapper(CountingEnv(), 2)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs, _ = venv.reset(seed=0)
    policy = FlowPolicy(PolicyConfig(obs_dim=1, action_dim=1, horizon=2, hidden_dim=8, depth=1,
                                     time_embed_dim=4, sampler_steps=2))
    config = FinetuneConfig(num_envs=1, rollout_steps=4, flow_steps=2)
    tracker = {'return': np.zeros(1), 'length': np.zeros(1, int), 'env_steps': 0,
               'finished': []}
    low, high = torch.full((2, 1), -1.0), torch.full((2, 1), 1.0)
    segment, _ = collect_rollout(venv, obs, policy, config, low, high, tracker)
    # Chunks of 2 steps: t=0 runs steps 1-2, t=1 runs step 3 (terminal) only, then repeat.
    assert segment['obs'][:, 0, 0].tolist() == [0.0, 2.0, 0.0, 2.0]
    assert segment['next_obs'][:, 0, 0].tolist() == [2.0, 3.0, 2.0, 3.0]
    assert segment['reward'][:, 0].tolist() == [2.0, 1.0, 2.0, 1.0]
    assert segment['terminated'][:, 0].tolist() == [False, True, False, True]
    assert segment['success'][:, 0].tolist() == [False, True, False, True]
    assert tracker['env_steps'] == 6
    assert tracker['finished'] == [(3.0, True), (3.0, True)]


def test_finetune_on_cube_push_reports_success(tmp_path):
    """The built-in task reports success: the summary must carry base/final success rates."""
    torch.manual_seed(0)
    obs, chunks = torch.randn(128, 14), torch.rand(128, 4, 4) * 2 - 1
    policy = FlowPolicy(PolicyConfig(obs_dim=14, action_dim=4, horizon=4, hidden_dim=32,
                                     depth=2, sampler_steps=4))
    policy.fit_normalizers(obs, chunks)
    save_policy(tmp_path / 'base.pt', policy)
    config = load_config('config/train/smoke_cube_push.yaml')
    summary = run_finetune(config, tmp_path / 'run', tmp_path / 'base.pt', progress=False)
    assert 0.0 <= summary['base_success'] <= 1.0 and 0.0 <= summary['final_success'] <= 1.0
    state = torch.load(tmp_path / 'run' / STATE_FILE, weights_only=True)
    assert state['replay']['count'] == 2
