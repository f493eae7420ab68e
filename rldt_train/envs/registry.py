"""Which environments exist and how to build them (single or vectorized, chunked).

Built-in tasks can run under deployment conditions (rldt_train.config.EnvSection: the policy
node's command filter and latency, domain randomization). They are passed as `conditions`, or
set for a whole run with `use_conditions` (what `rldt-train finetune` does, so that every env
the run builds, for collection and for evaluation, runs under the run's conditions).
"""
import contextlib
import contextvars
from typing import Callable

import gymnasium as gym

from rldt_ros.tasks import TASKS
from rldt_train.envs.chunk_wrapper import ActionChunkWrapper

GYM_LOCOMOTION = ('Hopper-v5', 'Walker2d-v5', 'HalfCheetah-v5')
BUILTIN = tuple(TASKS)  # the built-in tasks' one registry
TASK_IDS = BUILTIN + GYM_LOCOMOTION


_ACTIVE = contextvars.ContextVar('env_conditions', default=None)


@contextlib.contextmanager
def use_conditions(conditions):
    """Envs built inside this block without explicit `conditions` get these (an EnvSection;
    None: the bare simulator)."""
    token = _ACTIVE.set(conditions)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _resolve(conditions):
    """Explicit conditions, else the active ones; None when they add nothing."""
    conditions = _ACTIVE.get() if conditions is None else conditions
    return None if conditions is None or conditions.is_nominal else conditions


def _make_base(task_id: str, render_mode: str | None, conditions=None) -> gym.Env:
    if task_id in BUILTIN:
        from rldt_train.envs.task_env import TaskEnv
        randomization = conditions.randomization if conditions is not None else None
        return TaskEnv(task_id, render_mode=render_mode, randomization=randomization)
    if conditions is not None:
        raise ValueError(f'env conditions (command filter, delays, randomization) need a '
                         f'built-in task ({", ".join(BUILTIN)}), not {task_id!r}')
    if task_id in GYM_LOCOMOTION:
        return gym.make(task_id, render_mode=render_mode)
    raise ValueError(f'unknown task {task_id!r}; known: {", ".join(TASK_IDS)}')


def make_env(task_id: str, seed: int | None = None, horizon: int = 1,
             render_mode: str | None = None, conditions=None) -> gym.Env:
    """One environment; horizon > 1 wraps it to execute action chunks. conditions: an
    EnvSection (default: the active one, see use_conditions); a command filter or delays
    execute the chunks through DeploymentWrapper (also at horizon 1: then actions are
    (1, A) chunks)."""
    conditions = _resolve(conditions)
    env = _make_base(task_id, render_mode, conditions)
    if conditions is not None and _needs_deployment(conditions):
        from rldt_train.envs.deployment import DeploymentWrapper
        env = DeploymentWrapper(env, horizon, conditions)
    elif horizon > 1:
        env = ActionChunkWrapper(env, horizon)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def _needs_deployment(conditions) -> bool:
    """A filter or delays change how chunks run; randomization alone lives in the task."""
    return bool(conditions.max_delta_per_tick) or \
        list(conditions.action_delay_ticks) != [0, 0] or \
        list(conditions.observation_delay_ticks) != [0, 0]


def env_factory(task_id: str, horizon: int, conditions=None) -> Callable[[], gym.Env]:
    # Resolved here, not in the worker: an 'async' env is built in another process.
    conditions = _resolve(conditions)
    return lambda: make_env(task_id, horizon=horizon, conditions=conditions)


def make_vector_env(task_id: str, num_envs: int, horizon: int, seed: int | None = None,
                    vectorization: str = 'sync', conditions=None) -> gym.vector.VectorEnv:
    """num_envs chunked copies, stepped together.

    Autoreset is SAME_STEP: an episode that ends returns the reset observation at once and the
    last real observation in info['final_obs'], so no step is wasted on a reset transition.
    'sync' is fastest on few cores (measured: Async is 2-3x slower on 2 cores); 'async' runs
    envs in worker processes and pays off with many cores.
    """
    fns = [env_factory(task_id, horizon, conditions) for _ in range(num_envs)]
    mode = gym.vector.AutoresetMode.SAME_STEP
    if vectorization == 'sync':
        venv = gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)
    elif vectorization == 'async':
        venv = gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode, context='spawn')
    else:
        raise ValueError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")
    if seed is not None:
        venv.reset(seed=seed)
        venv.action_space.seed(seed)
    return venv
