"""Make demonstration datasets locally (nothing can be downloaded).

cube_push: the task's scripted expert with Gaussian noise on its joint targets, so a BC policy
is good but not perfect. Gym locomotion: a SAC agent (stable-baselines3) trained for a limited
budget to a "medium" level, then rolled out with a little action noise (the D4RL recipe).
"""
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rldt_train.config import TrainConfig
from rldt_train.data.episodes import Episode
from rldt_train.data.episodes import dataset_obs
from rldt_train.data.hdf5_io import write_dataset
from rldt_train.envs.registry import BUILTIN
from rldt_train.envs.registry import make_env


def _rollout(env, act, seed: int) -> Episode:
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, dones = [], [], [], []
    info: dict = {}
    while True:
        action = act(obs)
        observations.append(obs if isinstance(obs, dict) else {'state': obs})
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        dones.append(terminated)
        if terminated or truncated:
            break
    # Camera tasks observe a dict: images stay uint8, under robomimic's <camera>_image keys.
    stacked = {k: np.stack([o[k] for o in observations]) for k in observations[0]}
    stacked = {k: v if v.dtype == np.uint8 else v.astype(np.float32) for k, v in stacked.items()}
    return Episode(obs=dataset_obs(stacked, getattr(env.unwrapped, 'cameras', [])),
                   actions=np.asarray(actions, np.float32),
                   rewards=np.asarray(rewards, np.float32), dones=np.asarray(dones, bool),
                   success=bool(info.get('success', False)))


def collect_builtin(task_id: str, episodes: int, noise_std: float, seed: int,
                    progress: bool = True) -> list[Episode]:
    env = make_env(task_id)
    task = env.unwrapped.task
    if noise_std < 0:
        from rldt_ros.tasks import cube_push
        noise_std = cube_push.DEMO_NOISE_STD
    rng = np.random.default_rng(seed)

    def act(_obs: np.ndarray) -> np.ndarray:
        return task.expert_action(rng, noise_std)
    out = [_rollout(env, act, seed + i)
           for i in tqdm(range(episodes), desc=f'collect {task_id}', unit='ep',
                         disable=not progress)]
    env.close()
    return out


def train_locomotion_expert(task_id: str, timesteps: int, seed: int, progress: bool = True):
    """SAC for a limited budget: a 'medium' (not expert) behaviour policy."""
    from stable_baselines3 import SAC
    env = make_env(task_id, seed=seed)
    agent = SAC('MlpPolicy', env, seed=seed, verbose=0, device='auto')
    agent.learn(total_timesteps=timesteps, progress_bar=progress)
    return agent


def collect_locomotion(task_id: str, episodes: int, noise_std: float, seed: int,
                       expert_timesteps: int, progress: bool = True) -> list[Episode]:
    agent = train_locomotion_expert(task_id, expert_timesteps, seed, progress)
    env = make_env(task_id)
    rng = np.random.default_rng(seed)
    noise_std = 0.1 if noise_std < 0 else noise_std
    low, high = env.action_space.low, env.action_space.high

    def act(obs: np.ndarray) -> np.ndarray:
        action, _ = agent.predict(obs, deterministic=True)
        return np.clip(action + noise_std * rng.standard_normal(action.shape), low, high)
    out = [_rollout(env, act, seed + i)
           for i in tqdm(range(episodes), desc=f'collect {task_id}', unit='ep',
                         disable=not progress)]
    env.close()
    return out


def run_collect(config: TrainConfig, out_path: str | Path, progress: bool = True) -> dict:
    """Collect and write a dataset; returns its summary."""
    c = config.collect
    if config.task in BUILTIN:
        episodes = collect_builtin(config.task, c.episodes, c.noise_std, config.seed, progress)
    else:
        episodes = collect_locomotion(config.task, c.episodes, c.noise_std, config.seed,
                                      c.expert_timesteps, progress)
    env_args = {'env_name': config.task, 'type': 'rldt_ros', 'env_kwargs': {},
                'noise_std': c.noise_std}
    write_dataset(out_path, episodes, env_args, c.format)
    returns = np.array([e.total_return for e in episodes])
    return {'path': str(out_path), 'episodes': len(episodes),
            'steps': int(sum(len(e) for e in episodes)),
            'return_mean': float(returns.mean()),
            'success_rate': float(np.mean([e.success for e in episodes]))}
