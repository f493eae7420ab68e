"""Chunk semantics: summed rewards, early stop at termination/truncation, steps executed."""
import gymnasium as gym
import numpy as np
import pytest

from rldt_train.envs.chunk_wrapper import ActionChunkWrapper


class CountingEnv(gym.Env):
    """reward = action; terminates when the running sum of actions reaches 10;
    truncates after `limit` steps."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float64)
    action_space = gym.spaces.Box(-100, 100, (1,), np.float64)

    def __init__(self, limit=6):
        self.limit = limit

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.total, self.t = 0.0, 0
        return np.array([0.0]), {}

    def step(self, action):
        self.total += float(action[0])
        self.t += 1
        return (np.array([self.total]), float(action[0]), self.total >= 10,
                self.t >= self.limit, {})


def test_rewards_summed_over_full_chunk():
    env = ActionChunkWrapper(CountingEnv(), horizon=3)
    env.reset()
    obs, reward, terminated, truncated, info = env.step(np.ones((3, 1)))
    assert (reward, terminated, truncated, info['chunk_steps']) == (3.0, False, False, 3)
    assert obs[0] == 3.0


def test_stops_at_termination_and_drops_rest():
    env = ActionChunkWrapper(CountingEnv(), horizon=4)
    env.reset()
    _, reward, terminated, truncated, info = env.step(np.array([[4.0], [6.0], [100.0], [1.0]]))
    assert (reward, terminated, truncated, info['chunk_steps']) == (10.0, True, False, 2)


def test_truncation_is_not_termination():
    env = ActionChunkWrapper(CountingEnv(limit=5), horizon=4)
    env.reset()
    env.step(np.zeros((4, 1)))
    _, reward, terminated, truncated, info = env.step(np.ones((4, 1)))
    assert (reward, terminated, truncated, info['chunk_steps']) == (1.0, False, True, 1)


def test_wrong_chunk_shape_is_an_error():
    env = ActionChunkWrapper(CountingEnv(), horizon=2)
    env.reset()
    with pytest.raises(ValueError, match='shape'):
        env.step(np.zeros((3, 1)))


def test_vector_env_of_hopper_chunks():
    from rldt_train.envs.registry import make_vector_env
    venv = make_vector_env('Hopper-v5', num_envs=2, horizon=4, seed=0)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (2, 11)
    assert venv.action_space.shape == (2, 4, 3)
    obs, reward, terminated, truncated, info = venv.step(np.zeros((2, 4, 3)))
    assert reward.shape == (2,) and np.all(info['chunk_steps'] <= 4)
    venv.close()
