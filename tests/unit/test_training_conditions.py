"""The model card records what the policy was trained under (`training_conditions`): the
fine-tuning run's env section, a BC policy's demonstration conditions, nothing when unknown."""
import json
import shutil

from rldt_ros.model_card import load_model_card
from rldt_ros.randomization import Randomization
from rldt_train.config import load_config
from rldt_train.config import save_config
from rldt_train.export import export_policy
from rldt_train.policy.flow_policy import load_policy
from rldt_train.policy.flow_policy import save_policy

ENV = ['env.max_delta_per_tick=0.1', 'env.action_delay_ticks=[0,2]',
       'env.randomization.friction_scale=[0.5,1.5]',
       'env.randomization.joint_position_noise_std=0.01',
       'env.randomization.image_noise_std=2.0']


def _run_dir(tmp_path, bc_checkpoint, name: str, extra: dict, config=None):
    run = tmp_path / name
    run.mkdir()
    save_policy(run / 'policy.pt', load_policy(bc_checkpoint), extra=extra)
    if config is not None:
        save_config(config, run / 'config.yaml')
    return run / 'policy.pt'


def test_finetuned_policy_card_records_the_env_section(tmp_path, bc_checkpoint):
    config = load_config('config/train/cube_push.yaml', ENV)
    checkpoint = _run_dir(tmp_path, bc_checkpoint, 'rldt', {'kind': 'selected'}, config)
    card = load_model_card(export_policy(checkpoint, tmp_path / 'm', task='cube_push'))
    conditions = card.raw['training_conditions']
    assert conditions['command_filter'] == {'max_delta_per_tick': 0.1}
    assert conditions['action_delay_ticks'] == [0, 2]
    assert conditions['observation_noise'] == {'joint_position_std': 0.01,
                                               'joint_velocity_std': 0.0, 'image_std': 2.0}
    assert Randomization.from_dict(conditions['randomization']) == config.env.randomization


def test_bc_card_records_its_demonstrations_conditions(tmp_path, bc_checkpoint):
    # The run's config asks for delays, but BC learned from demonstrations collected under
    # the filter only: the card says what the data came from.
    config = load_config('config/train/cube_push.yaml', ENV)
    env_args = {'env_name': 'cube_push', 'env_kwargs': {'conditions': {
        'max_delta_per_tick': 0.1, 'action_delay_ticks': [0, 0],
        'observation_delay_ticks': [0, 0], 'randomization': {}}}}
    checkpoint = _run_dir(tmp_path, bc_checkpoint, 'bc', {'env_args': json.dumps(env_args)},
                          config)
    card = load_model_card(export_policy(checkpoint, tmp_path / 'm', task='cube_push'))
    conditions = card.raw['training_conditions']
    assert conditions['command_filter'] == {'max_delta_per_tick': 0.1}
    assert conditions['action_delay_ticks'] == [0, 0]
    assert Randomization.from_dict(conditions['randomization']).is_nominal


def test_nominal_bc_card_says_no_filter_and_unknown_runs_say_nothing(tmp_path, bc_checkpoint,
                                                                     exported_model):
    conditions = load_model_card(exported_model).raw['training_conditions']
    assert conditions['command_filter'] is None
    assert conditions['action_delay_ticks'] == [0, 0]
    assert set(conditions['observation_noise'].values()) == {0.0}
    lone = tmp_path / 'lone'
    lone.mkdir()
    shutil.copy2(bc_checkpoint, lone / 'policy.pt')       # no config.yaml beside it
    card = load_model_card(export_policy(lone / 'policy.pt', tmp_path / 'm', task='cube_push'))
    assert 'training_conditions' not in card.raw
