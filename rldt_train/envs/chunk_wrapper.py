"""One policy step = one action chunk.

A flow policy predicts H actions at once; this wrapper executes them in order so that RL sees
one transition per chunk (docs/architecture.md section 4: rewards are summed over the chunk, the
critic scores the executed chunk).

Termination and truncation: the chunk stops at the first step that terminates or truncates;
the remaining actions are dropped, `terminated` / `truncated` are those of that step, and
`info['chunk_steps']` says how many actions really ran (the TD target must not bootstrap past a
termination, and a truncation is not a termination).

Images: the policy only sees the observation at a chunk boundary, so an env that renders
cameras (TaskEnv: `images_on_step`) steps without images inside the chunk and renders once at
its end (a chunk of H actions costs one frame per camera, not H).
"""
import gymnasium as gym
import numpy as np


class ActionChunkWrapper(gym.Wrapper):
    """Executes (H, A) action chunks; reward is the sum over executed steps."""

    def __init__(self, env: gym.Env, horizon: int):
        super().__init__(env)
        if horizon < 1:
            raise ValueError(f'horizon must be >= 1, got {horizon}')
        self.horizon = horizon
        inner = env.action_space
        self.action_space = gym.spaces.Box(
            low=np.repeat(inner.low[None], horizon, axis=0),
            high=np.repeat(inner.high[None], horizon, axis=0), dtype=inner.dtype)
        base = env.unwrapped
        self._renders_at_boundary = bool(getattr(base, 'cameras', None)) and \
            hasattr(base, 'images_on_step')
        if self._renders_at_boundary:
            base.images_on_step = False

    def step(self, chunk):
        chunk = np.asarray(chunk)
        if chunk.shape != self.action_space.shape:
            raise ValueError(f'expected an action chunk of shape {self.action_space.shape}, '
                             f'got {chunk.shape}')
        total = 0.0
        info = {}
        for i in range(self.horizon):
            obs, reward, terminated, truncated, info = self.env.step(chunk[i])
            total += float(reward)
            if terminated or truncated:
                break
        if self._renders_at_boundary:
            obs = self.env.unwrapped.observation()
        info = dict(info)
        info['chunk_steps'] = i + 1
        return obs, total, terminated, truncated, info
