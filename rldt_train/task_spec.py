"""What a model card says about a task: joints observed and commanded, limits, rate."""
from dataclasses import dataclass

import numpy as np

from rldt_train.envs.registry import BUILTIN
from rldt_train.envs.registry import make_env


@dataclass
class TaskSpec:
    """Robot-facing description of a task's observation and action."""

    task: str
    state_joints: list[str]
    state_fields: list[str]
    state_dim: int
    action_names: list[str]
    action_units: str
    action_low: np.ndarray
    action_high: np.ndarray
    control_rate_hz: float


def task_spec(task_id: str) -> TaskSpec:
    if task_id in BUILTIN:
        from rldt_ros.tasks import make_task
        task = make_task(task_id)
        return TaskSpec(task_id, list(task.observed_joints), ['position', 'velocity'],
                        task.state_dim, list(task.actuated_joints), 'rad',
                        np.asarray(task.action_low, float), np.asarray(task.action_high, float),
                        float(task.control_rate_hz))
    # Gym locomotion: observations are not a JointState mapping (no joint names), actions are
    # actuator torques. The model card says so with an empty joint list.
    env = make_env(task_id)
    model = env.unwrapped.model
    names = [model.actuator(i).name for i in range(model.nu)]
    rate = 1.0 / float(env.unwrapped.dt)
    spec = TaskSpec(task_id, [], [], int(env.observation_space.shape[0]), names, 'normalized',
                    env.action_space.low.astype(float), env.action_space.high.astype(float),
                    rate)
    env.close()
    return spec
