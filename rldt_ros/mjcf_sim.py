"""Any MJCF file as a simulation the sim node can run: the task API without a task.

The built-in tasks (rldt_ros.tasks) add rewards, success and resets with randomisation. A user's
own robot model has none of that, yet should still run in the loop unchanged: every named
1-DoF joint is published, every joint actuator takes position targets, episodes only count steps.
"""
import mujoco
import numpy as np

from rldt_ros.rendering import OffscreenCameras

_ONE_DOF = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


class MjcfSim:
    """Duck-types the task API used by the sim node (reset, step, joint_*, reward, render)."""

    name = 'mjcf'

    def __init__(self, path: str, control_rate_hz: float, max_episode_steps: int):
        self.model = mujoco.MjModel.from_xml_path(path)
        self.data = mujoco.MjData(self.model)
        joints = [self.model.joint(i) for i in range(self.model.njnt)]
        joints = [j for j in joints if j.name and int(self.model.jnt_type[j.id]) in _ONE_DOF]
        self.observed_joints = [j.name for j in joints]
        self._qadr = np.array([j.qposadr[0] for j in joints], dtype=np.intp)
        self._dadr = np.array([j.dofadr[0] for j in joints], dtype=np.intp)
        self.actuated_joints = []
        for i in range(self.model.nu):
            if int(self.model.actuator_trntype[i]) != int(mujoco.mjtTrn.mjTRN_JOINT):
                raise ValueError(f'{path}: actuator {i} does not drive a joint; only joint '
                                 'position actuators can take joint position commands')
            self.actuated_joints.append(self.model.joint(self.model.actuator_trnid[i, 0]).name)
        self.action_low = self.model.actuator_ctrlrange[:, 0].copy()
        self.action_high = self.model.actuator_ctrlrange[:, 1].copy()
        unlimited = ~self.model.actuator_ctrllimited.astype(bool)
        self.action_low[unlimited], self.action_high[unlimited] = -np.inf, np.inf
        self.control_rate_hz = float(control_rate_hz)
        self.max_episode_steps = int(max_episode_steps)
        self.cameras = [self.model.camera(i).name for i in range(self.model.ncam)]
        self.state_dim = 2 * len(self.observed_joints)
        self._substeps = max(1, round(1.0 / control_rate_hz / self.model.opt.timestep))
        self._cameras = OffscreenCameras(self.model)

    def reset(self, seed: int | None = None) -> None:
        mujoco.mj_resetData(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)

    def step(self, q_target: np.ndarray) -> None:
        self.data.ctrl[:] = np.clip(q_target, self.action_low, self.action_high)
        mujoco.mj_step(self.model, self.data, nstep=self._substeps)

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._dadr].copy()

    def reward(self) -> float:
        return 0.0

    def success(self) -> bool:
        return False

    def render(self, camera: str, height: int, width: int) -> np.ndarray:
        return self._cameras.render(self.data, camera, height, width)

    def close(self) -> None:
        self._cameras.close()
