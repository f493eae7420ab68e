"""Policy evaluation in vectorized, chunked environments (torch policies and ONNX models alike)."""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rldt_train.envs.registry import make_vector_env
from rldt_train.envs.vector_io import per_env
from rldt_train.reporting import MODES
from rldt_train.reporting import summarize

# Batched observations -> (B, H, A) action chunks in robot units. Observations are (B, D)
# float32 for state tasks, a dict of batched arrays ('state', '<camera>' uint8 images, ...) for
# camera tasks.
Observation = np.ndarray | dict[str, np.ndarray]
ChunkPolicy = Callable[[Observation], np.ndarray]


@dataclass
class EvalResult:
    """Per-episode returns and successes of a finished evaluation."""

    returns: np.ndarray
    successes: np.ndarray
    lengths: np.ndarray

    @property
    def return_mean(self) -> float:
        return float(self.returns.mean())

    @property
    def return_std(self) -> float:
        return float(self.returns.std())

    @property
    def success_rate(self) -> float:
        return float(self.successes.mean())

    def as_dict(self) -> dict:
        return {'episodes': int(len(self.returns)), 'return_mean': self.return_mean,
                'return_std': self.return_std, 'success_rate': self.success_rate,
                'length_mean': float(self.lengths.mean())}

    def summary(self, has_success: bool) -> dict:
        """Means with 95% intervals (rldt_train.reporting.summarize)."""
        return summarize(self.returns, self.successes if has_success else None, self.lengths)


def evaluate(policy: ChunkPolicy, task: str, episodes: int, horizon: int, seed: int = 1000,
             num_envs: int = 8, progress: bool = False, conditions=None) -> EvalResult:
    """Run `episodes` complete episodes (each env's episodes counted in order, so the set of
    episodes is fixed by the seed, not by which env finishes first). conditions: the env
    section to run under (rldt_train.envs.registry.make_env; default: the active one)."""
    num_envs = max(1, min(num_envs, episodes))
    episodes_per_env = [episodes // num_envs + (i < episodes % num_envs)
                        for i in range(num_envs)]
    venv = make_vector_env(task, num_envs, horizon, seed=seed, conditions=conditions)
    obs, _ = venv.reset(seed=seed)
    done_counts = np.zeros(num_envs, int)
    running_return = np.zeros(num_envs)
    running_length = np.zeros(num_envs, int)
    returns, successes, lengths = [], [], []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=episodes, desc=f'eval {task}', unit='ep', leave=False)
    while np.any(done_counts < episodes_per_env):
        chunks = np.asarray(policy(_policy_input(obs)))
        obs, reward, terminated, truncated, info = venv.step(chunks)
        done = terminated | truncated
        running_return += reward
        running_length += per_env(info, done, 'chunk_steps', horizon).astype(int)
        success = per_env(info, done, 'success', False).astype(bool)
        for i in np.flatnonzero(done):
            if done_counts[i] < episodes_per_env[i]:
                returns.append(running_return[i])
                lengths.append(running_length[i])
                successes.append(bool(success[i]))
                done_counts[i] += 1
                if bar is not None:
                    bar.update(1)
            running_return[i] = 0.0
            running_length[i] = 0
    if bar is not None:
        bar.close()
    venv.close()
    return EvalResult(np.array(returns), np.array(successes, bool), np.array(lengths))


def task_has_success(task: str) -> bool:
    """Whether the task reports 'success' in its info (its reset info says so)."""
    from rldt_train.envs.registry import make_env
    env = make_env(task)
    _, info = env.reset(seed=0)
    env.close()
    return 'success' in info


def _policy_input(obs):
    """The state as float32; camera images (dict observations) keep their uint8."""
    if isinstance(obs, dict):
        return {k: v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v
                for k, v in obs.items()}
    return obs.astype(np.float32)


def evaluate_modes(make_policy: Callable[[bool], ChunkPolicy], task: str, episodes: int,
                   horizon: int, seed: int, has_success: bool, num_envs: int = 16,
                   progress: bool = False, conditions=None) -> dict:
    """Both sampling modes on the same episode seeds: {mode: summary with 95% intervals}.

    make_policy(deterministic) -> ChunkPolicy. 'deterministic' is x0 = 0, 'stochastic' is
    x0 ~ N(0, I); a model is deployed in one of them, so both are always reported.
    """
    return {mode: evaluate(make_policy(mode == 'deterministic'), task, episodes, horizon,
                           seed=seed, num_envs=num_envs, progress=progress,
                           conditions=conditions).summary(has_success)
            for mode in MODES}


def random_policy(low: np.ndarray, high: np.ndarray, horizon: int, seed: int = 0
                  ) -> ChunkPolicy:
    """Uniform random joint targets: the baseline every trained policy must beat."""
    rng = np.random.default_rng(seed)

    def act(obs: Observation) -> np.ndarray:
        batch = len(obs['state'] if isinstance(obs, dict) else obs)
        return rng.uniform(low, high, size=(batch, horizon, len(low)))
    return act


def torch_policy(policy, deterministic: bool = False, device: str = 'cpu') -> ChunkPolicy:
    import torch

    from rldt_train.envs.vector_io import obs_to_torch

    def act(obs: Observation) -> np.ndarray:
        with torch.no_grad():
            out = policy.sample(obs_to_torch(obs, device), deterministic=deterministic)
        return out.cpu().numpy()
    return act


def onnx_policy(model_dir: str, deterministic: bool = False, seed: int = 0) -> ChunkPolicy:
    from rldt_ros.model_card import load_model_card
    from rldt_ros.sampler import ChunkSampler
    sampler = ChunkSampler(load_model_card(model_dir), providers='cpu', seed=seed,
                           deterministic=deterministic)

    def act(obs: Observation) -> np.ndarray:
        return sampler.sample_batch(obs if isinstance(obs, dict) else {'state': obs})
    return act
