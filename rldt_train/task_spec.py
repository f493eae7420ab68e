"""What a model card says about a task: joints observed and commanded, cameras, limits, rate.

Built-in tasks are described by their task class (rldt_ros.tasks), Gym tasks by their env.
"""
from dataclasses import dataclass
from dataclasses import field

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
    cameras: list[str] = field(default_factory=list)
    """Cameras in the policy's observation (each uint8 RGB of image_size)."""
    image_size: tuple[int, int] | None = None
    """(height, width) of the camera images; None without cameras."""
    privileged_dim: int = 0
    """Length of the simulator-only state a camera task's env adds for a critic (0: none)."""


def task_spec(task_id: str) -> TaskSpec:
    if task_id in BUILTIN:
        from rldt_ros.tasks import make_task
        import mujoco
        task = make_task(task_id)
        # Per joint: hinge targets are radians, slide targets metres (the gripper).
        units = ['m' if task.model.joint(j).type[0] == mujoco.mjtJoint.mjJNT_SLIDE else 'rad'
                 for j in task.actuated_joints]
        cameras = list(task.observed_cameras)
        spec = TaskSpec(task_id, list(task.observed_joints), ['position', 'velocity'],
                        task.state_dim, list(task.actuated_joints), units,
                        np.asarray(task.action_low, float), np.asarray(task.action_high, float),
                        float(task.control_rate_hz),
                        [list(task.observed_joints).index(j) for j in task.actuated_joints],
                        cameras, tuple(task.image_size) if cameras else None,
                        task.privileged_dim if cameras else 0)
        task.close()
        return spec
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
