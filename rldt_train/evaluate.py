"""Policy evaluation in vectorized, chunked environments (torch policies and ONNX models alike)."""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rldt_train.envs.registry import make_vector_env

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


def evaluate(policy: ChunkPolicy, task: str, episodes: int, horizon: int, seed: int = 1000,
             num_envs: int = 8, progress: bool = False) -> EvalResult:
    """Run `episodes` complete episodes (each env's episodes counted in order, so the set of
    episodes is fixed by the seed, not by which env finishes first)."""
    num_envs = max(1, min(num_envs, episodes))
    per_env = [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]
    venv = make_vector_env(task, num_envs, horizon, seed=seed)
    obs, _ = venv.reset(seed=seed)
    done_counts = np.zeros(num_envs, int)
    running_return = np.zeros(num_envs)
    running_length = np.zeros(num_envs, int)
    returns, successes, lengths = [], [], []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=episodes, desc=f'eval {task}', unit='ep', leave=False)
    while np.any(done_counts < per_env):
        chunks = np.asarray(policy(obs if isinstance(obs, dict) else obs.astype(np.float32)))
        obs, reward, terminated, truncated, info = venv.step(chunks)
        running_return += reward
        running_length += info.get('chunk_steps', np.full(num_envs, horizon))
        for i in np.flatnonzero(terminated | truncated):
            if done_counts[i] < per_env[i]:
                returns.append(running_return[i])
                lengths.append(running_length[i])
                successes.append(bool(_final_success(info, i)))
                done_counts[i] += 1
                if bar is not None:
                    bar.update(1)
            running_return[i] = 0.0
            running_length[i] = 0
    if bar is not None:
        bar.close()
    venv.close()
    return EvalResult(np.array(returns), np.array(successes, bool), np.array(lengths))


def _final_success(info: dict, i: int) -> bool:
    """Success of env i's finished episode (SAME_STEP autoreset puts it in final_info)."""
    final = info.get('final_info', {})
    if 'success' in final and (final['_success'][i] if '_success' in final else True):
        return bool(final['success'][i])
    return bool(info['success'][i]) if 'success' in info else False


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

    def act(obs: Observation) -> np.ndarray:
        if isinstance(obs, dict):
            obs_t = {k: torch.as_tensor(v, device=device) for k, v in obs.items()}
        else:
            obs_t = torch.as_tensor(obs, device=device)
        with torch.no_grad():
            out = policy.sample(obs_t, deterministic=deterministic)
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
