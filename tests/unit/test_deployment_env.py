"""Training envs under the deployment's conditions: the policy node's command filter (anchored on
the measured joints at every episode start), action and observation delay, and the env section
of the training config that sets them."""
import hashlib
import json

import numpy as np
import pytest

from rldt_ros.safe_yaml import load_yaml
from rldt_ros.safety import CommandFilter
from rldt_train.config import EnvSection
from rldt_train.config import config_to_dict
from rldt_train.config import load_config
from rldt_train.data.collect import collect_builtin
from rldt_train.data.collect import dataset_path
from rldt_train.envs.chunk_wrapper import ActionChunkWrapper
from rldt_train.envs.deployment import DeploymentWrapper
from rldt_train.envs.registry import make_env
from rldt_train.envs.registry import make_vector_env
from rldt_train.envs.registry import use_conditions
from rldt_train.envs.task_env import TaskEnv

H = 4


def _chunks(env, count: int, seed: int = 0) -> np.ndarray:
    """Random chunks around the start pose (far enough apart for the filter to bite)."""
    rng = np.random.default_rng(seed)
    start = env.unwrapped.task.commanded_targets()
    low, high = env.unwrapped.task.action_low, env.unwrapped.task.action_high
    return np.clip(start + rng.normal(0.0, 0.4, (count, H, len(start))), low, high)


def _record_commands(env) -> list:
    """Every command the simulator receives, tick by tick."""
    executed = []
    base = env.unwrapped
    step = base.step
    base.step = lambda action: (executed.append(np.array(action, dtype=float)),
                                step(action))[1]
    return executed


def test_nominal_conditions_are_the_plain_chunk_wrapper_bit_for_bit():
    plain = make_env('cube_push', horizon=H)
    assert type(make_env('cube_push', horizon=H, conditions=EnvSection())) is ActionChunkWrapper
    # The deployment wrapper itself adds nothing without a filter or delays.
    deployed = DeploymentWrapper(TaskEnv('cube_push'), H, EnvSection())
    a, _ = plain.reset(seed=3)
    b, _ = deployed.reset(seed=3)
    np.testing.assert_array_equal(a, b)
    for chunk in _chunks(plain, 10):
        a, ra, ta, tra, _ = plain.step(chunk)
        b, rb, tb, trb, info = deployed.step(chunk)
        np.testing.assert_array_equal(a, b)
        assert (ra, ta, tra) == (rb, tb, trb) and info['held_ticks'] == 0


def test_filter_caps_every_command_from_the_measured_start():
    cap = 0.1
    env = make_env('cube_push', horizon=H, conditions=EnvSection(max_delta_per_tick=cap))
    assert isinstance(env, DeploymentWrapper)
    executed = _record_commands(env)
    obs, _ = env.reset(seed=1)
    measured = obs[:4]                                  # the commanded joints, by name
    chunks = _chunks(env, 6)
    limited = 0
    for chunk in chunks:
        limited += env.step(chunk)[4]['rate_limited_ticks']
    reference = CommandFilter(env.unwrapped.task.action_low, env.unwrapped.task.action_high,
                              cap)
    expected = [reference.apply(action, measured) for action in chunks.reshape(-1, 4)]
    np.testing.assert_allclose(executed, expected)
    steps = np.diff(np.vstack([measured, executed]), axis=0)
    assert np.abs(steps).max() <= cap + 1e-12
    assert limited == reference.rate_limited > 0
    # A new episode starts from the measured joints again, not from the last command.
    executed.clear()
    obs, _ = env.reset(seed=2)
    env.step(chunks[0])
    assert np.abs(executed[0] - obs[:4]).max() <= cap + 1e-12


@pytest.mark.parametrize('delay', [1, 2])
def test_action_delay_runs_the_previous_chunk_tail_then_the_new_chunk(delay):
    env = make_env('cube_push', horizon=H, conditions=EnvSection(
        action_delay_ticks=[delay, delay]))
    executed = _record_commands(env)
    env.reset(seed=0)
    start = env.unwrapped.task.commanded_targets()
    chunks = _chunks(env, 3)
    held = [env.step(chunk)[4]['held_ticks'] for chunk in chunks]
    # The command stream lags by `delay` ticks; the start pose is held until the first arrives.
    stream = np.vstack([np.repeat(start[None], delay, axis=0), chunks.reshape(-1, 4)])
    np.testing.assert_array_equal(np.array(executed), stream[:len(executed)])
    assert held == [delay, 0, 0]


def test_random_delays_hold_or_run_chunk_actions_and_are_reproducible():
    conditions = EnvSection(action_delay_ticks=[0, 2])
    runs = []
    for _ in range(2):
        env = make_env('cube_push', horizon=H, conditions=conditions)
        executed = _record_commands(env)
        env.reset(seed=4)
        chunks = _chunks(env, 12, seed=1)
        held = sum(env.step(chunk)[4]['held_ticks'] for chunk in chunks)
        runs.append((np.array(executed), held))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    executed, held = runs[0]
    actions = chunks.reshape(-1, 4)
    repeats = 0
    for t, command in enumerate(executed):
        from_chunk = np.any(np.all(actions == command, axis=1))
        repeat = t > 0 and np.array_equal(command, executed[t - 1])
        assert from_chunk or repeat or t < 2, t
        repeats += repeat
    assert 0 < held == repeats + (not np.any(np.all(actions == executed[0], axis=1)))


def test_observation_delay_returns_the_state_measured_earlier():
    delayed = make_env('cube_push', horizon=H, conditions=EnvSection(
        observation_delay_ticks=[1, 1]))
    per_tick = make_env('cube_push')                    # same world, one tick at a time
    delayed.reset(seed=6)
    per_tick.reset(seed=6)
    for chunk in _chunks(delayed, 5):
        obs = delayed.step(chunk)[0]
        states = [per_tick.step(action)[0] for action in chunk]
        np.testing.assert_array_equal(obs, states[H - 2])


def test_camera_observation_delay_renders_the_stale_tick_and_keeps_privileged_current():
    delayed = make_env('cube_push_vision', horizon=H, conditions=EnvSection(
        observation_delay_ticks=[2, 2]))
    per_tick = make_env('cube_push_vision')
    delayed.reset(seed=2)
    per_tick.reset(seed=2)
    for chunk in _chunks(delayed, 3):
        obs = delayed.step(chunk)[0]
        ticks = [per_tick.step(action)[0] for action in chunk]
        stale, now = ticks[H - 3], ticks[H - 1]
        for key in ('state', 'front', 'wrist'):
            np.testing.assert_array_equal(obs[key], stale[key], err_msg=key)
        np.testing.assert_array_equal(obs['privileged'], now['privileged'])
    delayed.close()
    per_tick.close()


def test_use_conditions_reaches_every_env_of_a_run_and_explicit_ones_win():
    conditions = EnvSection(max_delta_per_tick=0.1, action_delay_ticks=[0, 1])
    with use_conditions(conditions):
        venv = make_vector_env('cube_push', 2, H, seed=0)
        assert all(isinstance(e, DeploymentWrapper) for e in venv.envs)
        bare = make_env('cube_push', horizon=H, conditions=EnvSection())
        assert type(bare) is ActionChunkWrapper
        again = make_vector_env('cube_push', 2, H, seed=0)
    assert type(make_env('cube_push', horizon=H)) is ActionChunkWrapper
    chunks = np.stack([_chunks(venv.envs[0], 1, seed=s)[0] for s in (0, 1)])
    for _ in range(5):
        np.testing.assert_array_equal(venv.step(chunks)[0], again.step(chunks)[0])
    venv.close()
    again.close()


def test_env_section_errors_name_the_field(tmp_path):
    path = tmp_path / 'c.yaml'
    for text, message in [
            ('env: {delay: 1}', 'unknown config key "env.delay"'),
            ('env: {randomization: {mass: [1, 2]}}',
             'unknown config key "env.randomization.mass"'),
            ('env: {randomization: {friction_scale: [2, 1]}}', 'friction_scale must have'),
            ('env: {max_delta_per_tick: 3}', 'env.max_delta_per_tick must be in'),
            ('env: {action_delay_ticks: [2, 1]}', 'env.action_delay_ticks must be'),
            ('env: {observation_delay_ticks: [0.5, 1]}', 'env.observation_delay_ticks must be')]:
        path.write_text(text)
        with pytest.raises(ValueError, match=message.replace('[', '\\[')):
            load_config(path)
    with pytest.raises(ValueError, match='must stay below the chunk length'):
        make_env('cube_push', horizon=H, conditions=EnvSection(observation_delay_ticks=[0, 4]))
    with pytest.raises(ValueError, match='need a built-in task'):
        make_env('Hopper-v5', conditions=EnvSection(max_delta_per_tick=0.1))


def test_robust_config_trains_with_the_robot_filter():
    config = load_config('config/train/cube_push_robust.yaml')
    robot = load_yaml('config/policy.yaml')['policy_node']['ros__parameters']
    assert config.env.max_delta_per_tick == robot['max_delta_per_tick'] == 0.1
    assert not config.env.randomization.is_nominal
    nominal = load_config('config/train/cube_push.yaml')
    assert nominal.env.is_nominal
    assert nominal.env.describe() == 'none (the bare simulator)'
    text = config.env.describe()
    assert 'command filter 0.1/tick' in text and 'action delay [0, 2] ticks' in text
    assert "'friction_scale': [0.5, 1.5]" in text and 'light_scale' not in text
    robust, plain = config_to_dict(config), config_to_dict(nominal)
    assert {k: v for k, v in robust.items() if k != 'env'} == \
        {k: v for k, v in plain.items() if k != 'env'}


def test_demonstrations_run_under_the_filter_and_record_the_expert_intent(monkeypatch):
    executed = []
    step = TaskEnv.step
    monkeypatch.setattr(TaskEnv, 'step', lambda self, action: (
        executed.append(np.array(action, dtype=float)), step(self, action))[1])
    cap = 0.1
    episodes = collect_builtin('cube_push', 2, 0.1, seed=0, progress=False,
                               conditions=EnvSection(max_delta_per_tick=cap))
    actions = np.concatenate([e.actions for e in episodes])
    assert len(actions) == len(executed)
    assert np.abs(np.diff(actions[:, :3], axis=0)).max() > cap      # intents: not capped
    first = len(episodes[0])
    commands = np.array(executed)
    for part in (commands[1:first], commands[first + 1:]):         # within each episode
        assert np.abs(np.diff(part, axis=0)).max() <= cap + 1e-12


def test_dataset_names_change_only_when_demonstrations_change():
    nominal = load_config('config/train/cube_push.yaml')
    key = json.dumps({'task': nominal.task, 'seed': nominal.seed,
                      'collect': config_to_dict(nominal)['collect']}, sort_keys=True)
    assert dataset_path(nominal).name == \
        f'cube_push_{hashlib.sha256(key.encode()).hexdigest()[:12]}.hdf5'
    delay_only = load_config('config/train/cube_push.yaml', ['env.action_delay_ticks=[0,2]'])
    assert dataset_path(delay_only) == dataset_path(nominal)   # demos run without delays
    filtered = load_config('config/train/cube_push.yaml', ['env.max_delta_per_tick=0.1'])
    assert dataset_path(filtered) != dataset_path(nominal)
