"""The built-in cube_push task and its gymnasium env: layout, limits, determinism, expert."""
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rldt_ros.tasks import make_task
from rldt_ros.tasks.cube_push import CubePushTask
from rldt_train.envs.task_env import TaskEnv


@pytest.fixture(scope='module')
def task() -> CubePushTask:
    task = make_task('cube_push')
    yield task
    task.close()


def _rollout(task: CubePushTask, seed: int, policy, steps: int) -> bool:
    """True if the cube reached the goal within steps (episodes end on success)."""
    rng = np.random.default_rng(seed)
    task.reset(seed)
    for _ in range(steps):
        task.step(policy(rng))
        if task.success():
            return True
    return False


def test_layout_matches_contract(task):
    assert task.name == 'cube_push'
    assert task.actuated_joints == ['shoulder', 'elbow', 'wrist', 'gripper']
    assert task.observed_joints[:4] == task.actuated_joints
    assert {'cube_x', 'cube_y', 'cube_yaw'} <= set(task.observed_joints)
    assert task.state_dim == 2 * len(task.observed_joints) == 14
    assert task.action_low.shape == task.action_high.shape == (4,)
    assert np.all(task.action_low < task.action_high)
    assert 'front' in task.cameras
    assert task.control_rate_hz == 20.0


def test_state_is_positions_then_velocities_by_joint_name(task):
    task.reset(3)
    for _ in range(5):
        task.step(task.action_high)
    state = task.state()
    m, d = task.model, task.data
    pos = [d.qpos[m.joint(n).qposadr[0]] for n in task.observed_joints]
    vel = [d.qvel[m.joint(n).dofadr[0]] for n in task.observed_joints]
    assert state.dtype == np.float64 and state.shape == (task.state_dim,)
    np.testing.assert_array_equal(state, np.r_[pos, vel])
    np.testing.assert_array_equal(state, np.r_[task.joint_positions(), task.joint_velocities()])
    assert np.abs(task.joint_velocities()[:3]).max() > 0.1


def test_reset_is_deterministic_under_a_seed():
    a, b = CubePushTask(), CubePushTask()
    actions = np.random.default_rng(0).uniform(a.action_low, a.action_high, (20, 4))
    for task in (a, b):
        task.reset(seed=7)
        for act in actions:
            task.step(act)
    np.testing.assert_array_equal(a.state(), b.state())
    a.reset(seed=7)
    b.reset(seed=8)
    assert not np.allclose(a.cube_xy(), b.cube_xy())


def test_targets_are_clipped_and_joints_stay_in_range(task):
    task.reset(0)
    task.step(task.action_high + 10.0)
    np.testing.assert_array_equal(task.data.ctrl, task.action_high)
    rng = np.random.default_rng(1)
    for _ in range(60):
        task.step(rng.uniform(task.action_low - 1, task.action_high + 1))
        q = task.joint_positions()[:4]
        assert np.all(q >= task.action_low - 0.02) and np.all(q <= task.action_high + 0.02)
    act = task.expert_action(rng, noise_std=5.0)
    assert np.all(act >= task.action_low) and np.all(act <= task.action_high)


def test_expert_succeeds_without_noise(task):
    wins = [_rollout(task, s, lambda r: task.expert_action(r, 0.0), task.max_episode_steps)
            for s in range(6)]
    assert all(wins), wins


def test_random_policy_mostly_fails(task):
    wins = [_rollout(task, s, lambda r: r.uniform(task.action_low, task.action_high),
                     task.max_episode_steps) for s in range(10)]
    assert sum(wins) <= 2, wins


def test_reward_is_higher_near_the_goal(task):
    task.reset(0)
    far = task.reward()
    assert far < 0 and not task.success()
    _rollout(task, 0, lambda r: task.expert_action(r, 0.0), task.max_episode_steps)
    assert task.success() and task.reward() > far + 0.5


def test_render_returns_a_real_image(task):
    task.reset(0)
    for camera in task.cameras:
        img = task.render(camera, 48, 64)
        assert img.shape == (48, 64, 3) and img.dtype == np.uint8
        assert img.std() > 5.0
    with pytest.raises(ValueError, match='unknown camera'):
        task.render('nope', 48, 64)


def test_bad_names_and_rates_fail_fast():
    with pytest.raises(ValueError, match='unknown task'):
        make_task('cube_lift')
    with pytest.raises(ValueError, match='whole number'):
        CubePushTask(control_rate_hz=30.0)


# On purpose: joint velocities have no natural bound, and actions are absolute joint targets
# in robot units (the contract), not a normalized [-1, 1] box.
@pytest.mark.filterwarnings('ignore:.*Box observation space .*infinity')
@pytest.mark.filterwarnings('ignore:.*symmetric and normalized space')
@pytest.mark.filterwarnings('ignore:.*alternative render modes')
def test_gym_env_passes_checker_and_ends_episodes():
    env = TaskEnv('cube_push', render_mode='rgb_array', height=48, width=64)
    check_env(env, skip_render_check=False)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
    assert env.render().shape == (48, 64, 3)
    rng = np.random.default_rng(0)
    for steps in range(1, env.max_episode_steps + 1):
        obs, _, terminated, truncated, info = env.step(env.task.expert_action(rng, 0.0))
        if terminated or truncated:
            break
    assert terminated and info['success'] and steps < env.max_episode_steps
    env.reset(seed=0)
    for steps in range(1, env.max_episode_steps + 1):
        *_, terminated, truncated, _ = env.step(env.action_space.low)
        assert not terminated
    assert truncated
    env.close()
