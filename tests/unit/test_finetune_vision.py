"""`rldt-train finetune` on the camera task at a tiny scale: the real env renders, the replay
stores images once, the critic reads the privileged state, and a killed run resumes."""
import json

import torch

from rldt_train.config import load_config
from rldt_train.finetune import EVALUATION_FILE
from rldt_train.finetune import STATE_FILE
from rldt_train.finetune import run_finetune
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import PolicyConfig
from rldt_train.policy.flow_policy import save_policy

TINY = ['finetune.warmup_iterations=1', 'finetune.num_envs=2', 'finetune.rollout_steps=6',
        'finetune.flow_steps=4', 'finetune.particles=2', 'finetune.critic_hidden_dim=16',
        'finetune.critic_depth=1', 'finetune.critic_steps=2', 'finetune.critic_rounds=1',
        'finetune.actor_steps=1', 'finetune.replay_rollouts=2', 'finetune.eval_every=1',
        'finetune.eval_episodes=1', 'finetune.final_eval_episodes=1', 'device=cpu']


def test_vision_finetune_runs_stores_images_once_and_resumes(tmp_path):
    torch.manual_seed(0)
    policy = FlowPolicy(PolicyConfig(obs_dim=8, action_dim=4, horizon=4, hidden_dim=16,
                                     depth=1, sampler_steps=4, cameras=['front', 'wrist'],
                                     image_size=[64, 64], image_features=4, image_channels=4,
                                     action_reference_index=[0, 1, 2, 3]))
    policy.fit_normalizers(torch.randn(64, 8), 0.1 * torch.randn(64, 4, 4))
    save_policy(tmp_path / 'base.pt', policy)
    config = load_config('config/train/cube_push_vision.yaml',
                         TINY + ['finetune.iterations=1'])
    run_finetune(config, tmp_path / 'run', tmp_path / 'base.pt', progress=False)
    state = torch.load(tmp_path / 'run' / STATE_FILE, weights_only=True)
    data = state['replay']['data']
    assert data['obs/front'].dtype == torch.uint8 and data['obs/front'].shape[-3:] == (64, 64, 3)
    assert 'next_obs/front' not in data and 'next_obs/wrist' not in data   # stored once
    assert state['replay']['next_images'][0]['front'].shape[0] >= 2        # the last row

    config = load_config('config/train/cube_push_vision.yaml',
                         TINY + ['finetune.iterations=2'])
    summary = run_finetune(config, tmp_path / 'run', tmp_path / 'base.pt', resume=True,
                           progress=False)
    assert summary['iterations'] == 2
    evaluation = json.loads((tmp_path / 'run' / EVALUATION_FILE).read_text())
    assert evaluation['critic_observation'] == 'privileged'
    assert evaluation['metric'] == 'success'
    state = torch.load(tmp_path / 'run' / STATE_FILE, weights_only=True)
    assert state['replay']['count'] == 2 and state['learner']['critic_normalizer_fitted']
