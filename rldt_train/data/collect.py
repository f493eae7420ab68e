"""Make demonstration datasets locally (nothing can be downloaded).

cube_push: the task's scripted expert with Gaussian noise on its joint targets, so a BC policy
is good but not perfect. Gym locomotion: a PPO agent trained to a "medium" return band
(rldt_train.data.medium_agent), then rolled out with its own stochastic policy until the
requested number of transitions is recorded (the D4RL-medium recipe).

Datasets are cached: `dataset_path` names a file by a hash of everything that determines its
content (task, seed, collect section), so a second `rldt-train collect` with the same config
reuses the file instead of training the agent again.
"""
import hashlib
import json
from dataclasses import asdict
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rldt_train.config import EnvSection
from rldt_train.config import TrainConfig
from rldt_train.config import config_to_dict
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
        actions.append(np.reshape(action, -1))
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


def demo_conditions(env: EnvSection) -> EnvSection:
    """What of the env section demonstrations are collected under: the command filter and the
    randomization (the states the policy will meet on the robot), not the delays. The scripted
    expert is reactive and knows nothing of latency: one or two ticks of delay take it from 97%
    to 71% / 55% success (docs/architecture.md 6); tolerating latency is fine-tuning's job."""
    return replace(env, action_delay_ticks=[0, 0], observation_delay_ticks=[0, 0])


def collect_builtin(task_id: str, episodes: int, noise_std: float, seed: int,
                    progress: bool = True, conditions: EnvSection | None = None
                    ) -> list[Episode]:
    """Scripted-expert episodes, run under `conditions` when given. The expert acts on the
    simulator's true state and its intended targets are recorded, not the filtered commands:
    the filter's state (the last command) is not in the observation, so filtered commands
    would be labels a policy cannot predict, while intents pass the same filter when the
    policy runs."""
    env = make_env(task_id, conditions=conditions or EnvSection())
    task = env.unwrapped.task
    if noise_std < 0:
        from rldt_ros.tasks import cube_push
        noise_std = cube_push.DEMO_NOISE_STD
    rng = np.random.default_rng(seed)
    shape = env.action_space.shape       # (A,), or (1, A) through the deployment wrapper

    def act(_obs: np.ndarray) -> np.ndarray:
        return task.expert_action(rng, noise_std).reshape(shape)
    out = [_rollout(env, act, seed + i)
           for i in tqdm(range(episodes), desc=f'collect {task_id}', unit='ep',
                         disable=not progress)]
    env.close()
    return out


def collect_locomotion(config: TrainConfig, progress: bool = True
                       ) -> tuple[list[Episode], dict]:
    """Train the medium agent, then record episodes until c.transitions env steps (or
    c.episodes episodes when transitions is 0); returns (episodes, agent record)."""
    from rldt_train.data.medium_agent import train_medium_agent
    from rldt_train.pretrain import configure_torch
    configure_torch(config)          # thread count: 2 busy cores stall with extra threads
    c = config.collect
    agent = train_medium_agent(config.task, c.expert_timesteps, c.medium_return_low,
                               c.medium_return_high, c.expert_eval_every, config.seed, progress)
    env = make_env(config.task)
    rng = np.random.default_rng(config.seed)
    noise_std = max(c.noise_std, 0.0)
    low, high = env.action_space.low, env.action_space.high

    def act(obs: np.ndarray) -> np.ndarray:
        action = agent.act(obs)
        if noise_std > 0:
            action = action + noise_std * rng.standard_normal(action.shape)
        return np.clip(action, low, high)
    out: list[Episode] = []
    target = c.transitions or None
    bar = tqdm(total=target or c.episodes, desc=f'collect {config.task}',
               unit='step' if target else 'ep', disable=not progress)
    while (sum(len(e) for e in out) < target) if target else (len(out) < c.episodes):
        out.append(_rollout(env, act, config.seed + len(out)))
        bar.update(len(out[-1]) if target else 1)
    bar.close()
    env.close()
    record = {'algorithm': 'PPO (stable-baselines3), observation normalisation',
              'timesteps': agent.timesteps, 'eval_return_mean': agent.eval_return,
              'eval_return_sd': agent.eval_return_sd,
              'return_band': [c.medium_return_low, c.medium_return_high]}
    return out, record


def dataset_path(config: TrainConfig, root: str | Path = 'data') -> Path:
    """data/<task>_<hash>.hdf5, the hash over task, seed, the collect section and, when they
    add anything, the conditions demonstrations run under (nominal names stay as they were)."""
    content = {'task': config.task, 'seed': config.seed,
               'collect': config_to_dict(config)['collect']}
    conditions = demo_conditions(config.env)
    if not conditions.is_nominal:
        content['env'] = asdict(conditions)
    key = json.dumps(content, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(root) / f'{config.task}_{digest}.hdf5'


def summary_path(dataset: str | Path) -> Path:
    return Path(dataset).with_suffix('.json')


def run_collect(config: TrainConfig, out_path: str | Path, progress: bool = True,
                reuse: bool = False) -> dict:
    """Collect and write a dataset (and its summary JSON beside it); returns the summary.

    reuse: if the dataset and its summary already exist, return the summary without
    collecting (the caller named the file by `dataset_path`, so the content matches).
    """
    out_path = Path(out_path)
    if reuse and out_path.is_file() and summary_path(out_path).is_file():
        with open(summary_path(out_path)) as f:
            return {**json.load(f), 'cached': True}
    c = config.collect
    env_args = {'env_name': config.task, 'type': 'rldt_ros', 'env_kwargs': {},
                'noise_std': c.noise_std}
    if config.task in BUILTIN:
        conditions = demo_conditions(config.env)
        episodes = collect_builtin(config.task, c.episodes, c.noise_std, config.seed, progress,
                                   conditions)
        if not conditions.is_nominal:
            env_args['env_kwargs'] = {'conditions': asdict(conditions)}
    else:
        episodes, env_args['behaviour'] = collect_locomotion(config, progress)
    write_dataset(out_path, episodes, env_args, c.format)
    returns = np.array([e.total_return for e in episodes])
    summary = {'path': str(out_path), 'task': config.task, 'episodes': len(episodes),
               'steps': int(sum(len(e) for e in episodes)),
               'return_mean': float(returns.mean()),
               'return_sd': float(returns.std(ddof=1)) if len(returns) > 1 else 0.0,
               'success_rate': float(np.mean([e.success for e in episodes]))}
    if 'behaviour' in env_args:
        summary['behaviour_policy'] = env_args['behaviour']
    with open(summary_path(out_path), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary
