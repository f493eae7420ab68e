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
    action_units: str | list[str]
    action_low: np.ndarray
    action_high: np.ndarray
    control_rate_hz: float
    action_state_index: list[int] | None
    """Index in the state of each commanded joint's position (position control), else None."""


def task_spec(task_id: str) -> TaskSpec:
    if task_id in BUILTIN:
        from rldt_ros.tasks import make_task
        import mujoco
        task = make_task(task_id)
        # Per joint: hinge targets are radians, slide targets metres (the gripper).
        units = ['m' if task.model.joint(j).type[0] == mujoco.mjtJoint.mjJNT_SLIDE else 'rad'
                 for j in task.actuated_joints]
        return TaskSpec(task_id, list(task.observed_joints), ['position', 'velocity'],
                        task.state_dim, list(task.actuated_joints), units,
                        np.asarray(task.action_low, float), np.asarray(task.action_high, float),
                        float(task.control_rate_hz),
                        [list(task.observed_joints).index(j) for j in task.actuated_joints])
    # Gym locomotion: observations are not a JointState mapping (no joint names), actions are
    # actuator torques. The model card says so with an empty joint list.
    env = make_env(task_id)
    model = env.unwrapped.model
    names = [model.actuator(i).name for i in range(model.nu)]
    rate = 1.0 / float(env.unwrapped.dt)
    spec = TaskSpec(task_id, [], [], int(env.observation_space.shape[0]), names, 'normalized',
                    env.action_space.low.astype(float), env.action_space.high.astype(float),
                    rate, None)
    env.close()
    return spec
