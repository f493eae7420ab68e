"""Dataset files: the robomimic HDF5 layout and a D4RL/Minari-style flat layout.

robomimic: data/demo_<i>/{obs/<key>, actions, rewards, dones}, data.attrs['env_args'] (JSON) and
data.attrs['total'], demo attrs['num_samples'].
D4RL: flat observations (N, D), actions, rewards, terminals, timeouts; episodes end where
terminals or timeouts is set.
"""
import json
from pathlib import Path

import h5py
import numpy as np

from rldt_train.data.episodes import Episode


def write_robomimic(path: str | Path, episodes: list[Episode], env_args: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, 'w') as f:
        data = f.create_group('data')
        data.attrs['env_args'] = json.dumps(env_args)
        data.attrs['total'] = int(sum(len(e) for e in episodes))
        for i, episode in enumerate(episodes):
            demo = data.create_group(f'demo_{i}')
            demo.attrs['num_samples'] = len(episode)
            demo.attrs['success'] = bool(episode.success)
            for key, value in episode.obs.items():
                demo.create_dataset(f'obs/{key}', data=value, compression='gzip')
            demo.create_dataset('actions', data=episode.actions)
            demo.create_dataset('rewards', data=episode.rewards)
            demo.create_dataset('dones', data=episode.dones.astype(np.int64))


def read_robomimic(path: str | Path) -> tuple[list[Episode], dict]:
    with h5py.File(path, 'r') as f:
        if 'data' not in f:
            raise ValueError(f'{path}: not a robomimic dataset (no "data" group)')
        data = f['data']
        env_args = json.loads(data.attrs.get('env_args', '{}'))
        names = sorted(data.keys(), key=lambda n: int(n.split('_')[-1]))
        episodes = []
        for name in names:
            demo = data[name]
            dones = demo['dones'][()].astype(bool)
            episodes.append(Episode(
                obs={k: demo['obs'][k][()] for k in demo['obs'].keys()},
                actions=demo['actions'][()], rewards=demo['rewards'][()], dones=dones,
                success=bool(demo.attrs.get('success', dones[-1] if len(dones) else False))))
    return episodes, env_args


def write_d4rl(path: str | Path, episodes: list[Episode], env_args: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    timeouts = [np.zeros(len(e), bool) for e in episodes]
    for episode, timeout in zip(episodes, timeouts):
        timeout[-1] = not episode.dones[-1]
    with h5py.File(path, 'w') as f:
        f.attrs['env_args'] = json.dumps(env_args)
        f.create_dataset('observations', data=np.concatenate([e.obs['state'] for e in episodes]))
        f.create_dataset('actions', data=np.concatenate([e.actions for e in episodes]))
        f.create_dataset('rewards', data=np.concatenate([e.rewards for e in episodes]))
        f.create_dataset('terminals', data=np.concatenate([e.dones for e in episodes]))
        f.create_dataset('timeouts', data=np.concatenate(timeouts))
        f.create_dataset('success', data=np.array([e.success for e in episodes]))


def read_d4rl(path: str | Path) -> tuple[list[Episode], dict]:
    with h5py.File(path, 'r') as f:
        missing = {'observations', 'actions', 'rewards', 'terminals', 'timeouts'} - set(f.keys())
        if missing:
            raise ValueError(f'{path}: not a D4RL-style dataset, missing {sorted(missing)}')
        obs, actions = f['observations'][()], f['actions'][()]
        rewards, terminals = f['rewards'][()], f['terminals'][()].astype(bool)
        timeouts = f['timeouts'][()].astype(bool)
        success = f['success'][()] if 'success' in f else None
        env_args = json.loads(f.attrs.get('env_args', '{}'))
    ends = np.flatnonzero(terminals | timeouts)
    if len(ends) == 0 or ends[-1] != len(actions) - 1:
        ends = np.append(ends, len(actions) - 1)  # a trailing partial episode
    episodes, start = [], 0
    for i, end in enumerate(ends):
        sl = slice(start, end + 1)
        episodes.append(Episode(obs={'state': obs[sl]}, actions=actions[sl], rewards=rewards[sl],
                                dones=terminals[sl],
                                success=bool(success[i]) if success is not None else False))
        start = end + 1
    return episodes, env_args


def read_dataset(path: str | Path) -> tuple[list[Episode], dict]:
    """Either layout, detected from the file."""
    with h5py.File(path, 'r') as f:
        is_robomimic = 'data' in f
    return read_robomimic(path) if is_robomimic else read_d4rl(path)


def write_dataset(path: str | Path, episodes: list[Episode], env_args: dict,
                  layout: str) -> None:
    if layout == 'robomimic':
        write_robomimic(path, episodes, env_args)
    elif layout == 'd4rl':
        write_d4rl(path, episodes, env_args)
    else:
        raise ValueError(f"dataset layout must be 'robomimic' or 'd4rl', got {layout!r}")
