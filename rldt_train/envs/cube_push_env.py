"""Gymnasium view of the built-in cube_push task, for training (the sim node uses the task)."""
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from rldt_ros.tasks.cube_push import CONTROL_RATE_HZ, CubePushTask


class CubePushEnv(gym.Env):
    """obs = task.state() float32; action = absolute joint targets (A,) in [low, high].

    Success terminates the episode: the bonus is paid once and the dense negative reward then
    favours pushing quickly. Otherwise the episode is truncated after max_episode_steps.
    info['success'] is reported on every reset and step.
    """

    metadata: ClassVar[dict[str, Any]] = {'render_modes': ['rgb_array'],
                                          'render_fps': CONTROL_RATE_HZ}

    def __init__(self, render_mode: str | None = None, camera: str = 'front',
                 height: int = 240, width: int = 320):
        if render_mode not in (None, 'rgb_array'):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task = CubePushTask()
        if camera not in self.task.cameras:
            raise ValueError(f'unknown camera {camera!r}; known: {self.task.cameras}')
        self.render_mode = render_mode
        self.camera, self.height, self.width = camera, height, width
        self.max_episode_steps = self.task.max_episode_steps
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.task.state_dim,),
                                                np.float32)
        self.action_space = gym.spaces.Box(self.task.action_low.astype(np.float32),
                                           self.task.action_high.astype(np.float32))
        self._elapsed = 0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        # Drawn from the env's generator so reset(seed=None) continues one seeded stream.
        self.task.reset(seed=int(self.np_random.integers(2**31)))
        self._elapsed = 0
        return self._obs(), {'success': self.task.success()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.task.step(np.asarray(action, dtype=np.float64))
        self._elapsed += 1
        success = self.task.success()
        truncated = self._elapsed >= self.max_episode_steps
        return self._obs(), self.task.reward(), success, truncated, {'success': success}

    def render(self) -> np.ndarray | None:
        if self.render_mode != 'rgb_array':
            return None
        return self.task.render(self.camera, self.height, self.width)

    def close(self) -> None:
        self.task.close()

    def _obs(self) -> np.ndarray:
        return self.task.state().astype(np.float32)
