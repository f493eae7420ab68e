"""Reading a gymnasium vector env's step output, the one place that knows its conventions.

Gymnasium 1.x with SAME_STEP autoreset: an env whose episode ended this step returns the
reset observation at once; its last real observation is in info['final_obs'] and its step
info in info['final_info'] (each key with a '_key' mask), while info itself holds the reset
info for that env. Fine-tuning and evaluation both read per-env values through here.
"""
import numpy as np
import torch


def per_env(info: dict, done: np.ndarray, key: str, default) -> np.ndarray:
    """info[key] of this step for every env (B,): from info['final_info'] for envs that just
    ended, from info for the others, `default` where the env did not report the key."""
    out = np.full(len(done), default)
    if key in info:
        out = np.where(info.get(f'_{key}', True), info[key], out)
    final = info.get('final_info', {})
    if key in final:
        out = np.where(done & final.get(f'_{key}', True), final[key], out)
    return out


def final_observations(obs, info: dict, done: np.ndarray):
    """The true next observation of every env: the final one where an episode just ended.

    obs: the step's observation (an array, or a dict of arrays for camera tasks).
    """
    if not done.any():
        return obs
    ended = np.flatnonzero(done)
    if isinstance(obs, dict):
        out = {key: value.copy() for key, value in obs.items()}
        for i in ended:
            for key in out:
                out[key][i] = info['final_obs'][i][key]
        return out
    out = obs.copy()
    for i in ended:
        out[i] = info['final_obs'][i]
    return out


def obs_to_torch(obs, device: torch.device) -> dict[str, torch.Tensor]:
    """Env observations (an array = the state, or a dict of arrays) -> tensors on device.

    Float arrays become float32; integer arrays (camera images, uint8) keep their dtype.
    """
    fields = obs if isinstance(obs, dict) else {'state': obs}
    out = {}
    for key, value in fields.items():
        value = np.asarray(value)
        dtype = torch.float32 if np.issubdtype(value.dtype, np.floating) else None
        out[key] = torch.as_tensor(value, dtype=dtype, device=device)
    return out
