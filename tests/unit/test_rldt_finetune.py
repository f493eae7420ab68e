"""Tiny end-to-end RLDT runs on Hopper-v5 (CPU): outputs, selection, switches, resume."""
import json

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
from rldt_train.finetune import EVALUATION_FILE
from rldt_train.finetune import LAST_POLICY_FILE
from rldt_train.finetune import POLICY_FILE
from rldt_train.finetune import STATE_FILE
from rldt_train.finetune import collect_segment
from rldt_train.finetune import run_finetune
from rldt_train.rl.config import FinetuneConfig
from rldt_train.rl.learner import RLDTLearner

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


def test_finetune_writes_outputs_selects_and_resumes(tmp_path, base):
    config = load_config(SMOKE, ['finetune.iterations=2'])
    summary = run_finetune(config, tmp_path, base, progress=False)
    for mode in ('deterministic', 'stochastic'):
        assert summary[f'base_{mode}'].endswith('(2 ep)')
        assert summary[f'selected_{mode}'].endswith('(2 ep)')
    assert summary['deploy_mode'] in ('deterministic', 'stochastic')
    for name in (STATE_FILE, POLICY_FILE, LAST_POLICY_FILE, EVALUATION_FILE,
                 'learning_curve.png', 'config.yaml'):
        assert (tmp_path / name).is_file(), name
    assert list((tmp_path / 'tb').glob('events.out.tfevents.*'))
    evaluation = json.loads((tmp_path / EVALUATION_FILE).read_text())
    assert evaluation['metric'] == 'return'               # Hopper has no success signal
    for label in ('base', 'selected'):
        for mode in ('deterministic', 'stochastic'):
            block = evaluation[label][mode]
            assert block['episodes'] == 2 and 'success_rate' not in block
            low, high = block['return_ci95']
            assert low <= block['return_mean'] <= high
    # The selected policy is the best-scoring evaluated one (the base counts as iteration 0).
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    evals = state['run']['history']['eval']
    assert [e['iteration'] for e in evals] == [0, 1, 2]
    scores = [max(e[m]['return_mean'] for m in ('deterministic', 'stochastic')) for e in evals]
    assert state['run']['best']['iteration'] == evaluation['selected_iteration']
    assert state['run']['best']['score'] <= max(scores)
    selected = load_policy(tmp_path / POLICY_FILE)
    assert selected.config.sampler_steps == config.finetune.flow_steps
    assert selected.sample(torch.zeros(1, 11), deterministic=True).shape == (1, 4, 3)
    assert state['run']['iteration'] == 2 and state['replay']['count'] == 2
    # One warm-up iteration then one actor iteration of 2 steps.
    assert state['learner']['actor_scheduler']['last_epoch'] == 2
    last = torch.load(tmp_path / LAST_POLICY_FILE, weights_only=True)['policy']
    assert all(torch.equal(last[k], state['learner']['policy'][k]) for k in last)

    resumed = run_finetune(load_config(SMOKE, ['finetune.iterations=3']), tmp_path, base,
                           resume=True, progress=False)
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert state['run']['iteration'] == 3 and state['replay']['count'] == 3
    assert state['learner']['actor_scheduler']['last_epoch'] == 4
    assert len(state['run']['history']['eval']) == 4     # base + one per iteration
    assert resumed['env_steps'] > summary['env_steps']
    assert resumed['base_deterministic'] == summary['base_deterministic']

    with pytest.raises(ValueError, match='finetune.gamma'):
        run_finetune(load_config(SMOKE, ['finetune.gamma=0.9']), tmp_path, base, resume=True,
                     progress=False)


def test_selection_never_returns_a_policy_worse_than_the_base(tmp_path, base):
    """A run whose updates only hurt must hand back the base: with a huge actor learning rate
    the iterates are wrecked, and selection keeps iteration 0."""
    config = load_config(SMOKE, ['finetune.iterations=2', 'finetune.warmup_iterations=0',
                                 'finetune.actor_lr=0.3', 'finetune.eval_episodes=4'])
    run_finetune(config, tmp_path, base, progress=False)
    evaluation = json.loads((tmp_path / EVALUATION_FILE).read_text())
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    evals = state['run']['history']['eval']
    base_scores = {m: evals[0][m]['return_mean'] for m in ('deterministic', 'stochastic')}
    for entry in evals[1:]:
        # The wrecked iterates are worse in some mode than the tolerance allows ...
        assert any(entry[m]['return_mean'] < base_scores[m] - 0.1 * abs(base_scores[m])
                   for m in base_scores)
    # ... so the base is what the run hands back.
    assert evaluation['selected_iteration'] == 0 and not evaluation['improved_on_base']
    # One held-out evaluation of the base, reported for both rows (not two noisy draws).
    assert evaluation['selected'] == evaluation['base']
    selected = torch.load(tmp_path / POLICY_FILE, weights_only=True)['policy']
    base_weights = load_policy(base).state_dict()
    assert all(torch.equal(selected[k], base_weights[k]) for k in base_weights)


def test_finetune_delta_with_pretrained_reference(tmp_path, base):
    config = load_config(SMOKE, ['finetune.iterations=2', 'finetune.transport=delta',
                                 'finetune.reference=pretrained', 'finetune.td_lambda=0.5',
                                 'finetune.deploy_mode=deterministic'])
    summary = run_finetune(config, tmp_path, base, progress=False)
    assert summary['transport'] == 'delta' and summary['reference'] == 'pretrained'
    assert summary['deploy_mode'] == 'deterministic'
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)['learner']
    base_weights = load_policy(base).state_dict()
    # The frozen pretrained reference is the base, untouched by the actor steps.
    assert all(torch.equal(state['reference'][k], base_weights[k]) for k in base_weights)
    assert any(not torch.equal(state['policy'][k], base_weights[k]) for k in base_weights)


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


def test_collect_segment_reads_final_obs_chunk_steps_and_success():
    """Gymnasium 1.4 SAME_STEP autoreset: the ended episode's last obs and step info live in
    info['final_obs'] / info['final_info']; the segment must store them, not the reset obs."""
    venv = gym.vector.SyncVectorEnv([lambda: ActionChunkWrapper(CountingEnv(), 2)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs, _ = venv.reset(seed=0)
    policy = FlowPolicy(PolicyConfig(obs_dim=1, action_dim=1, horizon=2, hidden_dim=8, depth=1,
                                     time_embed_dim=4, sampler_steps=2))
    config = FinetuneConfig(num_envs=1, rollout_steps=4, flow_steps=2, critic_split='none')
    learner = RLDTLearner(policy, config, (torch.full((2, 1), -1.0), torch.full((2, 1), 1.0)),
                          critic_obs_dim=1)
    tracker = {'return': np.zeros(1), 'finished': []}
    segment, _, env_steps = collect_segment(venv, obs, learner, 4, 2, tracker)
    # Chunks of 2 steps: t=0 runs steps 1-2, t=1 runs step 3 (terminal) only, then repeat.
    assert segment['obs/state'][:, 0, 0].tolist() == [0.0, 2.0, 0.0, 2.0]
    assert segment['next_obs/state'][:, 0, 0].tolist() == [2.0, 3.0, 2.0, 3.0]
    assert segment['reward'][:, 0].tolist() == [2.0, 1.0, 2.0, 1.0]
    assert segment['terminated'][:, 0].tolist() == [False, True, False, True]
    assert segment['success'][:, 0].tolist() == [False, True, False, True]
    assert env_steps == 6
    assert tracker['finished'] == [(3.0, True), (3.0, True)]


def test_evaluate_counts_the_last_chunk_of_an_episode():
    """Episode length = env steps really run, the final (partial) chunk included: Hopper with
    zero torques falls after a seed-dependent number of steps, counted here with the plain
    env."""
    from rldt_train.evaluate import evaluate
    result = evaluate(lambda obs: np.zeros((len(obs), 4, 3), np.float32), 'Hopper-v5',
                      episodes=2, horizon=4, seed=5, num_envs=2)
    expected = []
    for i in range(2):
        env = gym.make('Hopper-v5')
        env.reset(seed=5 + i)
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, _ = env.step(np.zeros(3))
            steps, done = steps + 1, terminated or truncated
        expected.append(steps)
    assert sorted(result.lengths.tolist()) == sorted(expected)
    assert any(n % 4 for n in expected)          # the test means something: partial chunks


def test_finetune_on_cube_push_reports_success(tmp_path):
    """The built-in task reports success: selection and the summary use the success rate."""
    torch.manual_seed(0)
    obs, chunks = torch.randn(128, 14), torch.rand(128, 4, 4) * 2 - 1
    policy = FlowPolicy(PolicyConfig(obs_dim=14, action_dim=4, horizon=4, hidden_dim=32,
                                     depth=2, sampler_steps=4))
    policy.fit_normalizers(obs, chunks)
    save_policy(tmp_path / 'base.pt', policy)
    config = load_config('config/train/smoke_cube_push.yaml')
    summary = run_finetune(config, tmp_path / 'run', tmp_path / 'base.pt', progress=False)
    assert summary['base_stochastic'].endswith('(2 ep)') and '%' in summary['base_stochastic']
    evaluation = json.loads((tmp_path / 'run' / EVALUATION_FILE).read_text())
    assert evaluation['metric'] == 'success'
    low, high = evaluation['selected']['stochastic']['success_ci95']
    assert 0.0 <= low <= evaluation['selected']['stochastic']['success_rate'] <= high <= 1.0
    state = torch.load(tmp_path / 'run' / STATE_FILE, weights_only=True)
    assert state['replay']['count'] == 2


def test_resume_refuses_a_changed_config_but_not_a_key_the_checkpoint_predates():
    from rldt_train.config import TrainConfig
    from rldt_train.config import config_to_dict
    from rldt_train.finetune import _check_resume_config
    defaults = config_to_dict(TrainConfig())
    saved = config_to_dict(TrainConfig())
    del saved['finetune']['selection_floor']      # a run started before the key existed
    current = config_to_dict(TrainConfig())
    _check_resume_config(saved, current, defaults)
    current['finetune']['selection_floor'] = 0.0  # ... but not with a non-default value
    with pytest.raises(ValueError, match='selection_floor'):
        _check_resume_config(saved, current, defaults)
    current = config_to_dict(TrainConfig())
    current['finetune']['actor_lr'] = 1.0
    with pytest.raises(ValueError, match='actor_lr'):
        _check_resume_config(config_to_dict(TrainConfig()), current, defaults)


def test_held_out_evaluation_hands_back_the_base_when_the_pick_is_worse():
    from rldt_train.finetune import held_out_fallback

    def block(det, stoch):
        return {'deterministic': {'success_rate': det, 'return_mean': 10 * det},
                'stochastic': {'success_rate': stoch, 'return_mean': 10 * stoch}}
    # cube_push seed 1 as measured: base 36% / 71%, the pick 63% / 57% (100 held-out episodes).
    reason = held_out_fallback({'base': block(0.36, 0.71), 'selected': block(0.63, 0.57)}, 8,
                               'success')
    assert reason is not None and 'iteration 8' in reason and '0.71' in reason
    # Best mode against best mode: a pick better in its best mode stands, whichever mode.
    assert held_out_fallback({'base': block(0.28, 0.67), 'selected': block(0.77, 0.55)}, 20,
                             'success') is None
    assert held_out_fallback({'base': block(0.5, 0.5), 'selected': block(0.5, 0.4)}, 3,
                             'return') is None
