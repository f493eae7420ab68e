"""The camera task: one definition for env, expert and sim; what the policy sees; rendering only
at chunk boundaries; images through the dataset unchanged."""
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rldt_ros.tasks import TASKS
from rldt_ros.tasks import make_task
from rldt_train.data.episodes import Episode
from rldt_train.data.episodes import image_key
from rldt_train.data.hdf5_io import read_dataset
from rldt_train.data.hdf5_io import write_dataset
from rldt_train.envs.registry import BUILTIN
from rldt_train.envs.registry import make_env
from rldt_train.envs.registry import make_vector_env
from rldt_train.envs.task_env import TaskEnv
from rldt_train.task_spec import task_spec

VISION = 'cube_push_vision'


@pytest.fixture(scope='module')
def env():
    env = make_env(VISION)
    yield env
    env.close()


def test_one_registry_serves_env_and_spec():
    assert BUILTIN == tuple(TASKS) and VISION in BUILTIN
    spec = task_spec(VISION)
    assert spec.state_joints == ['shoulder', 'elbow', 'wrist', 'gripper']
    assert spec.state_dim == 8 and spec.action_state_index == [0, 1, 2, 3]
    assert spec.cameras == ['front', 'wrist'] and spec.image_size == (64, 64)
    assert spec.privileged_dim == 14
    state = task_spec('cube_push')
    assert state.cameras == [] and state.privileged_dim == 0 and state.state_dim == 14


def test_policy_state_has_no_cube_but_privileged_state_does():
    vision, state = make_task(VISION), make_task('cube_push')
    actions = np.random.default_rng(0).uniform(state.action_low, state.action_high, (15, 4))
    for task in (vision, state):
        task.reset(seed=11)
        for action in actions:
            task.step(action)
    assert not set(vision.observed_joints) & {'cube_x', 'cube_y', 'cube_yaw'}
    # Same world, same seed, same actions: the same physics, whichever variant.
    np.testing.assert_array_equal(vision.privileged_state(), state.state())
    np.testing.assert_array_equal(vision.state(), np.r_[state.state()[:4], state.state()[7:11]])
    vision.close()
    state.close()


def test_observation_is_what_the_cameras_rendered(env):
    obs, _ = env.reset(seed=3)
    assert set(obs) == {'state', 'front', 'wrist', 'privileged'}
    assert env.observation_space.contains(obs)
    task = env.unwrapped.task
    for camera in ('front', 'wrist'):
        assert obs[camera].dtype == np.uint8 and obs[camera].shape == (64, 64, 3)
        np.testing.assert_array_equal(obs[camera], task.render(camera, 64, 64))
    assert not np.array_equal(obs['front'], obs['wrist'])
    np.testing.assert_array_equal(obs['state'], task.state().astype(np.float32))
    np.testing.assert_array_equal(obs['privileged'], task.privileged_state().astype(np.float32))


def test_chunked_env_renders_once_per_chunk_at_its_end():
    env = make_env(VISION, horizon=4)
    env.reset(seed=0)
    task = env.unwrapped.task
    rendered = []
    real_render = task.render
    task.render = lambda camera, h, w: rendered.append(camera) or real_render(camera, h, w)
    hold = np.repeat(task.joint_positions()[None, :4], 4, axis=0)
    obs, _, _, _, info = env.step(hold)
    assert info['chunk_steps'] == 4
    assert sorted(rendered) == ['front', 'wrist']  # one frame per camera, not 4
    task.render = real_render
    np.testing.assert_array_equal(obs['front'], task.render('front', 64, 64))
    np.testing.assert_array_equal(obs['state'], task.state().astype(np.float32))
    env.close()


def test_vector_env_batches_dict_observations():
    venv = make_vector_env(VISION, num_envs=2, horizon=4, seed=0)
    obs, _ = venv.reset(seed=0)
    assert obs['front'].shape == (2, 64, 64, 3) and obs['front'].dtype == np.uint8
    assert obs['state'].shape == (2, 8) and obs['privileged'].shape == (2, 14)
    venv.close()


@pytest.mark.filterwarnings('ignore:.*Box observation space .*infinity')
@pytest.mark.filterwarnings('ignore:.*symmetric and normalized space')
@pytest.mark.filterwarnings('ignore:.*alternative render modes')
def test_camera_env_passes_gym_checker():
    env = TaskEnv(VISION)
    check_env(env, skip_render_check=True)
    env.close()


def test_task_refuses_cameras_it_does_not_have():
    from rldt_ros.tasks.cube_push_vision import CubePushVisionTask

    class Blind(CubePushVisionTask):
        OBSERVED_CAMERAS = ('side',)
    with pytest.raises(ValueError, match='side'):
        Blind()


def test_uint8_images_round_trip_through_the_dataset(tmp_path, env):
    obs, _ = env.reset(seed=1)
    frames = np.stack([obs['front'], 255 - obs['front']])
    episode = Episode(obs={'state': np.zeros((2, 8), np.float32), image_key('front'): frames},
                      actions=np.zeros((2, 4), np.float32), rewards=np.zeros(2, np.float32),
                      dones=np.zeros(2, bool))
    write_dataset(tmp_path / 'd.hdf5', [episode], {'env_name': VISION}, 'robomimic')
    import h5py
    with h5py.File(tmp_path / 'd.hdf5') as f:
        assert f['data/demo_0/obs/front_image'].dtype == np.uint8
    loaded, _ = read_dataset(tmp_path / 'd.hdf5')
    np.testing.assert_array_equal(loaded[0].obs['front_image'], frames)
    assert loaded[0].obs['front_image'].dtype == np.uint8
