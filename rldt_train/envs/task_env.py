"""Gymnasium view of any registered built-in task (rldt_ros.tasks), for training.

The sim node runs the same task objects, so training and the robot loop share one definition.
"""
from typing import Any
from typing import ClassVar

import gymnasium as gym
import numpy as np

from rldt_ros.randomization import Randomization
from rldt_ros.tasks import make_task

PRIVILEGED_KEY = 'privileged'


class TaskEnv(gym.Env):
    """A built-in task as a gymnasium env; action = absolute joint targets (A,) in [low, high].

    Observation: a state task (no cameras) gives `task.state()` as float32 (D,). A camera task
    gives a dict: 'state' float32 (D,) (the observed joints), one uint8 (h, w, 3) RGB image per
    observed camera under the camera's name, and 'privileged' float32 (P,), the simulator's full
    joint state (cube included) for a critic that only exists in simulation; policies ignore it.

    Images cost most of a step, so a chunked env (ActionChunkWrapper) sets `images_on_step`
    False: step() then leaves the images out and the wrapper asks for `observation()` once, at
    the chunk boundary, the only observation the policy sees.

    randomization: the task's per-episode domain randomization (rldt_ros.randomization), drawn
    from each episode's seed; None: the nominal task.

    Success terminates the episode: the bonus is paid once and the dense negative reward then
    favours pushing quickly. Otherwise the episode is truncated after max_episode_steps.
    info['success'] is reported on every reset and step.
    """

    metadata: ClassVar[dict[str, Any]] = {'render_modes': ['rgb_array']}

    def __init__(self, task_id: str, render_mode: str | None = None, camera: str = 'front',
                 height: int = 240, width: int = 320,
                 randomization: Randomization | None = None):
        if render_mode not in (None, 'rgb_array'):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task = make_task(task_id, randomization=randomization)
        if camera not in self.task.cameras:
            raise ValueError(f'unknown camera {camera!r}; known: {self.task.cameras}')
        self.metadata = {**self.metadata, 'render_fps': self.task.control_rate_hz}
        self.render_mode = render_mode
        self.camera, self.height, self.width = camera, height, width
        self.max_episode_steps = self.task.max_episode_steps
        self.cameras = list(self.task.observed_cameras)
        self.images_on_step = True
        state = gym.spaces.Box(-np.inf, np.inf, (self.task.state_dim,), np.float32)
        if self.cameras:
            image = gym.spaces.Box(0, 255, (*self.task.image_size, 3), np.uint8)
            self.observation_space = gym.spaces.Dict({
                'state': state, **{c: image for c in self.cameras},
                PRIVILEGED_KEY: gym.spaces.Box(-np.inf, np.inf, (self.task.privileged_dim,),
                                               np.float32)})
        else:
            self.observation_space = state
        self.action_space = gym.spaces.Box(self.task.action_low.astype(np.float32),
                                           self.task.action_high.astype(np.float32))
        self._elapsed = 0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        # Drawn from the env's generator so reset(seed=None) continues one seeded stream.
        self.task.reset(seed=int(self.np_random.integers(2**31)))
        self._elapsed = 0
        return self.observation(), {'success': self.task.success()}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        self.task.step(np.asarray(action, dtype=np.float64))
        self._elapsed += 1
        success = self.task.success()
        truncated = self._elapsed >= self.max_episode_steps
        obs = self.observation(images=self.images_on_step)
        return obs, self.task.reward(), success, truncated, {'success': success}

    def observation(self, images: bool = True) -> Any:
        """The policy's observation of the current simulator state (see the class doc)."""
        state = self.task.state().astype(np.float32)
        if not self.cameras:
            return state
        obs = {'state': state,
               PRIVILEGED_KEY: self.task.privileged_state().astype(np.float32)}
        if images:
            obs.update(self.task.images())
        return obs

    def render(self) -> np.ndarray | None:
        if self.render_mode != 'rgb_array':
            return None
        return self.task.render(self.camera, self.height, self.width)

    def close(self) -> None:
        self.task.close()
