import numpy as np
import pytest

from rldt_train.data.episodes import Episode
from rldt_train.data.episodes import action_chunks
from rldt_train.data.hdf5_io import read_dataset
from rldt_train.data.hdf5_io import write_dataset


def _episodes(rng):
    out = []
    for length, success in [(5, True), (3, False), (7, True)]:
        dones = np.zeros(length, bool)
        dones[-1] = success
        out.append(Episode(obs={'state': rng.normal(size=(length, 4)).astype(np.float32)},
                           actions=rng.normal(size=(length, 2)).astype(np.float32),
                           rewards=rng.normal(size=length).astype(np.float32), dones=dones,
                           success=success))
    return out


@pytest.mark.parametrize('layout', ['robomimic', 'd4rl'])
def test_roundtrip(tmp_path, layout):
    episodes = _episodes(np.random.default_rng(0))
    path = tmp_path / f'{layout}.hdf5'
    write_dataset(path, episodes, {'env_name': 'cube_push'}, layout)
    loaded, env_args = read_dataset(path)
    assert env_args['env_name'] == 'cube_push'
    assert len(loaded) == len(episodes)
    for a, b in zip(episodes, loaded):
        np.testing.assert_array_equal(a.obs['state'], b.obs['state'])
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.rewards, b.rewards)
        np.testing.assert_array_equal(a.dones, b.dones)
        assert a.success == b.success


def test_robomimic_layout_is_standard(tmp_path):
    import h5py
    write_dataset(tmp_path / 'r.hdf5', _episodes(np.random.default_rng(1)), {'a': 1},
                  'robomimic')
    with h5py.File(tmp_path / 'r.hdf5') as f:
        assert set(f['data'].keys()) == {'demo_0', 'demo_1', 'demo_2'}
        assert f['data/demo_1/obs/state'].shape == (3, 4)
        assert f['data/demo_2'].attrs['num_samples'] == 7
        assert f['data'].attrs['total'] == 15


def test_chunks_pad_with_last_action():
    actions = np.arange(6, dtype=np.float32).reshape(3, 2)
    episode = Episode(obs={'state': np.zeros((3, 1))}, actions=actions, rewards=np.zeros(3),
                      dones=np.zeros(3, bool))
    obs, chunks = action_chunks([episode], horizon=4)
    assert obs.shape == (3, 1) and chunks.shape == (3, 4, 2)
    np.testing.assert_array_equal(chunks[0], actions[[0, 1, 2, 2]])
    np.testing.assert_array_equal(chunks[2], actions[[2, 2, 2, 2]])


def test_episode_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match='rewards'):
        Episode(obs={'state': np.zeros((3, 1))}, actions=np.zeros((3, 1)), rewards=np.zeros(2),
                dones=np.zeros(3, bool))


def test_collect_locomotion_with_sb3_writes_d4rl(tmp_path):
    """The Gym path of `collect`: a (briefly) trained SB3 SAC agent rolled out into a D4RL file."""
    from rldt_train.config import load_config
    from rldt_train.data.collect import run_collect
    config = load_config(None, ['task=Hopper-v5', 'collect.episodes=2', 'collect.format=d4rl',
                                'collect.expert_timesteps=200'])
    summary = run_collect(config, tmp_path / 'hopper.hdf5', progress=False)
    episodes, env_args = read_dataset(tmp_path / 'hopper.hdf5')
    assert summary['episodes'] == 2 and len(episodes) == 2
    assert env_args['env_name'] == 'Hopper-v5'
    assert episodes[0].obs['state'].shape[1] == 11 and episodes[0].actions.shape[1] == 3
    assert np.all(np.abs(np.concatenate([e.actions for e in episodes])) <= 1.0)
