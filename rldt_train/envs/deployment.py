"""Action chunks executed the way the policy node executes them on a robot.

The bare chunk wrapper applies a chunk's actions at once and exactly. The policy node does not:
its commands pass the safety filter (rldt_ros.safety.CommandFilter: a per-tick delta cap anchored
on the MEASURED joint positions when control starts, then on the last command, then the clamp),
and they lag the observation they were computed from. A policy that never saw either is
optimised for a robot that does not exist (docs/architecture.md 6), so fine-tuning and
evaluation run through this wrapper, with the node's own filter and action queue code:

- action delay d (drawn per chunk from env.action_delay_ticks): a chunk sampled from the
  observation at tick T holds the commands for ticks T+d .. T+d+H-1 (rldt_ros.chunking
  ActionQueue, newest chunk wins). Until it starts, the previous chunk's remaining actions run,
  or, when none are left, the last command is held (at episode start: the start pose);
- observation delay o (drawn per chunk from env.observation_delay_ticks): the observation at
  the end of a chunk is the one measured o ticks earlier (camera images rendered at that tick;
  the simulator-only `privileged` state stays current: only a critic reads it);
- every command goes through the CommandFilter, restarted at every episode start.

`info['held_ticks']` and `info['rate_limited_ticks']` count, per chunk, the ticks that held the
last command and the ticks whose command the delta cap changed.
"""
from collections import deque

import gymnasium as gym
import numpy as np

from rldt_ros.chunking import ActionQueue
from rldt_ros.safety import CommandFilter
from rldt_train.envs.chunk_wrapper import ActionChunkWrapper

# Second seed word of the delay generator (its own stream: an env's episodes start the same
# whatever the delays).
_DELAY_STREAM = 0xDE1A


class DeploymentWrapper(ActionChunkWrapper):
    """ActionChunkWrapper with the policy node's command filter and latency (see module doc).

    env: a TaskEnv (the built-in tasks: joints by name, position targets). conditions: the
    training config's env section (rldt_train.config.EnvSection).
    """

    def __init__(self, env: gym.Env, horizon: int, conditions):
        super().__init__(env, horizon)
        base = env.unwrapped
        task = base.task
        self.action_delay = tuple(conditions.action_delay_ticks)
        self.observation_delay = tuple(conditions.observation_delay_ticks)
        if self.observation_delay[1] >= horizon:
            raise ValueError(f'env.observation_delay_ticks {list(self.observation_delay)} must '
                             f'stay below the chunk length {horizon}')
        cap = conditions.max_delta_per_tick
        self.filter = CommandFilter(task.action_low, task.action_high, cap) if cap else None
        # The filter's start anchor: the measured positions of the commanded joints, by name.
        self._anchor_index = [task.observed_joints.index(j) for j in task.actuated_joints]
        self._rng = np.random.default_rng()
        self._queue = ActionQueue(len(task.actuated_joints))
        self._tick = 0
        self._command = task.commanded_targets()
        self._states: deque = deque(maxlen=self.observation_delay[1] + 1)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng([seed, _DELAY_STREAM])
        self._queue = ActionQueue(self._queue.action_dim)
        self._tick = 0
        if self.filter is not None:
            self.filter.restart()
        self._command = self.env.unwrapped.task.commanded_targets()
        self._states.clear()
        self._states.append(self._state(obs))
        return obs, info

    def step(self, chunk):
        chunk = np.asarray(chunk)
        if chunk.shape != self.action_space.shape:
            raise ValueError(f'expected an action chunk of shape {self.action_space.shape}, '
                             f'got {chunk.shape}')
        base = self.env.unwrapped
        self._queue.push(chunk, self._tick + self._draw(self.action_delay))
        stale = self._draw(self.observation_delay)
        total, held, limited = 0.0, 0, 0
        images = None
        for i in range(self.horizon):
            action = self._queue.pop(self._tick)
            if action is None:
                held += 1                       # nothing for this tick yet: hold the last one
            elif self.filter is None:
                self._command = action
            else:
                before = self.filter.rate_limited
                measured = self._states[-1][self._anchor_index]
                self._command = self.filter.apply(action, measured)
                limited += self.filter.rate_limited - before
            obs, reward, terminated, truncated, info = self.env.step(self._command)
            self._tick += 1
            total += float(reward)
            self._states.append(self._state(obs))
            if self._renders_at_boundary and stale and i == self.horizon - 1 - stale:
                images = base.task.images()     # the frames of the stale observation
            if terminated or truncated:
                break
        obs = self._stale_observation(obs, stale, images)
        info = dict(info)
        info['chunk_steps'] = i + 1
        info['held_ticks'] = held
        info['rate_limited_ticks'] = limited
        return obs, total, terminated, truncated, info

    def _draw(self, bounds: tuple[int, int]) -> int:
        low, high = bounds
        return low if low == high else int(self._rng.integers(low, high + 1))

    @staticmethod
    def _state(obs) -> np.ndarray:
        return obs['state'] if isinstance(obs, dict) else obs

    def _stale_observation(self, obs, stale: int, images: dict | None):
        """The observation measured `stale` ticks ago (fewer right after a reset)."""
        state = self._states[-1 - min(stale, len(self._states) - 1)]
        if not self._renders_at_boundary:
            return {**obs, 'state': state} if isinstance(obs, dict) else state
        # A chunk cut short by the episode's end has no frame from `stale` ticks ago: the
        # latest one stands in (after the end only a critic, which reads `privileged`, sees it).
        fresh = self.env.unwrapped.observation(images=images is None)
        return {**fresh, **(images or {}), 'state': state}
