"""cube_push: a planar 3-link arm with a gripper pushes a cube onto a fixed goal on a table.

Pure numpy + mujoco, because the robot-side sim node runs it (no torch, no gymnasium here).
The cube moves on its own named joints (cube_x, cube_y, cube_yaw), so in this (state) task its
pose reaches the policy through joint_states by name, exactly like the arm's joints.

A task is ONE class registered once (rldt_ros.tasks.TASKS): the class attributes below say what
a policy observes (joints, cameras, image size) and what only a simulator knows (privileged
joints); the gymnasium env (rldt_train.envs.task_env), the model card (rldt_train.task_spec) and
the sim node all read them from here.
"""
from pathlib import Path

import mujoco
import numpy as np

from rldt_ros.randomization import ModelRandomizer
from rldt_ros.randomization import Randomization
from rldt_ros.rendering import OffscreenCameras

XML_PATH = Path(__file__).with_name('cube_push.xml')
ARM_JOINTS = ('shoulder', 'elbow', 'wrist')
ACTUATED_JOINTS = ARM_JOINTS + ('gripper',)
CUBE_JOINTS = ('cube_x', 'cube_y', 'cube_yaw')
SIM_JOINTS = ACTUATED_JOINTS + CUBE_JOINTS
OBJECT_BODIES = ('cube',)

CONTROL_RATE_HZ = 20.0
MAX_EPISODE_STEPS = 100
GOAL_XY = np.array([0.46, 0.0])
SUCCESS_RADIUS_M = 0.03
CUBE_START_LOW = np.array([0.26, -0.12])
CUBE_START_HIGH = np.array([0.34, 0.12])
# Arm start: pusher behind the cube region, pointing at the goal, plus this much joint jitter.
HOME_PUSHER_XY = np.array([0.18, 0.0])
HOME_JITTER_RAD = 0.05

# Gaussian noise (rad) the scripted expert adds to its arm joint targets when recording demos.
# Success within max_episode_steps, 200 episodes each: noise 0 -> 100%, 0.1 -> 98%,
# 0.15 -> 77%, 0.175 -> 68%, 0.2 -> 51%, 0.3 -> 29%; uniform random targets -> 3.5%.
# At this value demos are good but clearly imperfect, leaving RL room to improve on BC.
DEMO_NOISE_STD = 0.15

# Expert tuning (metres): pusher centre to cube centre at contact, how far behind the cube it
# lines up, how well aligned it must be to push, and its top speed per control step.
_CONTACT_M = 0.025 + 0.008
_BACKOFF_M = 0.03
_ALIGN_TOL_M = 0.012
_PUSH_LEAD_M = 0.03
_MAX_STEP_M = 0.03
_HOLD_RADIUS_M = 0.015


# Second seed word of the perturbation generator (an independent stream from the same seed).
_PERTURBATION_STREAM = 0x5EED


def _wrap(angle: float) -> float:
    return (angle + np.pi) % (2 * np.pi) - np.pi


class CubePushTask:
    """The task behind the sim node, the gymnasium env and the scripted expert.

    The policy observes every joint, the cube's included (no cameras): the state task.
    `randomization` (rldt_ros.randomization) perturbs the world per episode, drawn in reset()
    from the episode seed: dynamics, measurement noise in state() and images(), control-period
    jitter in step(), cameras, light, colours. joint_positions() / joint_velocities() /
    privileged_state() stay the simulator's truth.
    """

    name = 'cube_push'
    OBSERVED_JOINTS: tuple[str, ...] = SIM_JOINTS
    """Joints in the policy's state (positions, then velocities) and on the sim's
    joint_states."""
    OBSERVED_CAMERAS: tuple[str, ...] = ()
    """Cameras in the policy's observation (each an RGB uint8 image of IMAGE_SIZE)."""
    IMAGE_SIZE: tuple[int, int] = (64, 64)
    """(height, width) of the observed camera images."""
    PRIVILEGED_JOINTS: tuple[str, ...] = SIM_JOINTS
    """Joints of the simulator's full state (what a critic in simulation may see)."""

    def __init__(self, control_rate_hz: float = CONTROL_RATE_HZ,
                 max_episode_steps: int = MAX_EPISODE_STEPS,
                 randomization: Randomization | None = None):
        self.model = mujoco.MjModel.from_xml_path(str(XML_PATH))
        self.data = mujoco.MjData(self.model)
        self.actuated_joints = list(ACTUATED_JOINTS)
        self.observed_joints = list(self.OBSERVED_JOINTS)
        self.control_rate_hz = float(control_rate_hz)
        self.max_episode_steps = int(max_episode_steps)
        self.cameras = [self.model.camera(i).name for i in range(self.model.ncam)]
        self.observed_cameras = list(self.OBSERVED_CAMERAS)
        self.image_size = tuple(self.IMAGE_SIZE)
        unknown = sorted(set(self.observed_cameras) - set(self.cameras))
        if unknown:
            raise ValueError(f'{self.name}: observed cameras {unknown} are not in the model; '
                             f'it has {self.cameras}')
        self.state_dim = 2 * len(self.observed_joints)
        self.privileged_dim = 2 * len(self.PRIVILEGED_JOINTS)

        # A control period must be a whole number of physics steps, or the rate silently drifts.
        period_s = 1.0 / self.control_rate_hz
        self._substeps = round(period_s / self.model.opt.timestep)
        if self._substeps < 1 or abs(self._substeps * self.model.opt.timestep - period_s) > 1e-9:
            raise ValueError(f'control_rate_hz={control_rate_hz} is not a whole number of '
                             f'{self.model.opt.timestep} s physics steps')

        self._qadr, self._dadr = self._addresses(self.observed_joints)
        self._sim_qadr, _ = self._addresses(SIM_JOINTS)
        self._cube_qadr, _ = self._addresses(CUBE_JOINTS)
        self._priv_qadr, self._priv_dadr = self._addresses(self.PRIVILEGED_JOINTS)
        # The action vector is written straight into data.ctrl, so actuator i must drive joint i.
        for i, name in enumerate(self.actuated_joints):
            driven = self.model.joint(self.model.actuator_trnid[i, 0]).name
            if driven != name:
                raise ValueError(f'actuator {i} drives {driven!r}, expected {name!r}')
        self.action_low = self.model.actuator_ctrlrange[:, 0].copy()
        self.action_high = self.model.actuator_ctrlrange[:, 1].copy()

        self._pusher = self.model.site('pusher').id
        self._goal = self.model.site('goal').id
        self._l1 = float(self.model.body('forearm').pos[0])
        self._l2 = float(self.model.body('hand').pos[0])
        self._l3 = float(self.model.site('pusher').pos[0])
        self._home = self._ik(HOME_PUSHER_XY, 0.0, elbow_sign=1.0)
        self._rng = np.random.default_rng()
        self._cameras = OffscreenCameras(self.model)
        self.randomization = randomization or Randomization()
        # Nominal: no randomizer, no draws, the exact nominal simulation. Perturbations draw
        # from their own generator, so an episode's start state does not depend on them.
        self._randomizer = None if self.randomization.is_nominal else \
            ModelRandomizer(self.model, self.randomization, OBJECT_BODIES)
        self._noise_rng = np.random.default_rng()
        r, n = self.randomization, len(self._qadr)
        self._reading_std = None if r.joint_position_noise_std == r.joint_velocity_noise_std \
            == 0 else np.r_[np.full(n, r.joint_position_noise_std),
                            np.full(n, r.joint_velocity_noise_std)]
        self.perturbation: dict = {}
        """This episode's drawn perturbation (scales, offsets; lists), empty when nominal."""
        self.reset()

    def _addresses(self, names) -> tuple[np.ndarray, np.ndarray]:
        """qpos and qvel addresses of 1-DoF joints, in the given order."""
        joints = [self.model.joint(n) for n in names]
        return (np.array([j.qposadr[0] for j in joints], dtype=np.intp),
                np.array([j.dofadr[0] for j in joints], dtype=np.intp))

    # ---- simulation -------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """New episode: arm near home, cube uniformly in its start region with a random yaw."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._noise_rng = np.random.default_rng([seed, _PERTURBATION_STREAM])
        if self._randomizer is not None and self.randomization.changes_model:
            self.perturbation = self._randomizer.sample(self._noise_rng, self.data)
        mujoco.mj_resetData(self.model, self.data)
        q_arm = self._home + self._rng.uniform(-HOME_JITTER_RAD, HOME_JITTER_RAD, 3)
        cube = np.r_[self._rng.uniform(CUBE_START_LOW, CUBE_START_HIGH),
                     self._rng.uniform(-np.pi / 4, np.pi / 4)]
        self.data.qpos[self._sim_qadr] = np.r_[q_arm, 0.0, cube]
        self.data.ctrl[:] = np.r_[q_arm, 0.0]
        mujoco.mj_forward(self.model, self.data)

    def step(self, q_target: np.ndarray) -> None:
        """Hold the (clipped) joint targets for one control period."""
        self.data.ctrl[:] = np.clip(q_target, self.action_low, self.action_high)
        if self.randomization.control_period_jitter > 0:
            self.model.opt.timestep = self._randomizer.control_timestep(self._noise_rng)
        mujoco.mj_step(self.model, self.data, nstep=self._substeps)

    def commanded_targets(self) -> np.ndarray:
        """(A,) the joint targets the actuators hold now (after reset: the start pose)."""
        return self.data.ctrl.copy()

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._dadr].copy()

    def state(self) -> np.ndarray:
        """(state_dim,) float64: what a policy node rebuilds from one JointState message,
        with the randomization's measurement noise (a fresh draw per call, like a reading)."""
        state = np.concatenate([self.data.qpos[self._qadr], self.data.qvel[self._dadr]])
        if self._reading_std is not None:
            state = state + self._reading_std * self._noise_rng.standard_normal(len(state))
        return state

    def privileged_state(self) -> np.ndarray:
        """(privileged_dim,) float64: the full joint state, cube included (simulation only)."""
        return np.concatenate([self.data.qpos[self._priv_qadr],
                               self.data.qvel[self._priv_dadr]])

    def images(self) -> dict[str, np.ndarray]:
        """The observed cameras' images: name -> (height, width, 3) uint8 RGB, with the
        randomization's pixel noise."""
        images = {c: self.render(c, *self.image_size) for c in self.observed_cameras}
        std = self.randomization.image_noise_std
        if std > 0:
            images = {c: np.clip(image + std * self._noise_rng.standard_normal(image.shape),
                                 0, 255).round().astype(np.uint8)
                      for c, image in images.items()}
        return images

    def cube_xy(self) -> np.ndarray:
        return self.data.qpos[self._cube_qadr[:2]].copy()

    def pusher_xy(self) -> np.ndarray:
        """Centre of the closed fingers at cube height, in the table frame."""
        return self.data.site_xpos[self._pusher, :2].copy()

    # ---- objective --------------------------------------------------------------------------

    def reward(self) -> float:
        """Dense: cube-goal distance, a smaller pusher-cube term to guide reaching, a bonus."""
        cube = self.cube_xy()
        to_goal = float(np.linalg.norm(GOAL_XY - cube))
        to_cube = float(np.linalg.norm(self.pusher_xy() - cube))
        return -to_goal - 0.2 * to_cube + (1.0 if to_goal < SUCCESS_RADIUS_M else 0.0)

    def success(self) -> bool:
        return bool(np.linalg.norm(GOAL_XY - self.cube_xy()) < SUCCESS_RADIUS_M)

    # ---- rendering --------------------------------------------------------------------------

    def render(self, camera: str, height: int, width: int) -> np.ndarray:
        """(height, width, 3) uint8 RGB; one lazily built renderer per image size."""
        if camera not in self.cameras:
            raise ValueError(f'unknown camera {camera!r}; known: {self.cameras}')
        return self._cameras.render(self.data, camera, height, width)

    def close(self) -> None:
        """Free the GL contexts of the renderers."""
        self._cameras.close()

    # ---- scripted expert --------------------------------------------------------------------

    def expert_action(self, rng: np.random.Generator, noise_std: float) -> np.ndarray:
        """(A,) joint targets: line up behind the cube on the goal line, then push through it.

        Reactive (a function of the current state only), so it recovers from its own noise.
        noise_std (rad) is Gaussian noise on the arm joint targets; the gripper stays closed
        because closed fingers make the flat pushing face.
        """
        cube, pusher = self.cube_xy(), self.pusher_xy()
        to_goal = GOAL_XY - cube
        dist = float(np.linalg.norm(to_goal))
        heading = self._pusher_heading()
        if dist < _HOLD_RADIUS_M:
            # Done: back off a little (a fixed point, so noise jitters around it, not drifts).
            away = pusher - cube
            target = cube + away * (_CONTACT_M + _BACKOFF_M) / max(np.linalg.norm(away), 1e-6)
        else:
            u = to_goal / dist
            n = np.array([-u[1], u[0]])
            heading = float(np.arctan2(u[1], u[0]))
            along, lateral = float((pusher - cube) @ u), float((pusher - cube) @ n)
            if along < -_CONTACT_M + 0.005 and abs(lateral) < _ALIGN_TOL_M:
                target = cube + u * (min(dist, _PUSH_LEAD_M) - _CONTACT_M)
            elif along < -_CONTACT_M:
                target = cube - u * (_CONTACT_M + _BACKOFF_M)
            else:
                # Beside or in front of the cube: step sideways clear of it, then go behind.
                side = n * np.copysign(_CONTACT_M + 0.04, lateral)
                if abs(lateral) < _CONTACT_M + 0.03:
                    target = cube + side + u * along
                else:
                    target = cube + side - u * (_CONTACT_M + _BACKOFF_M)
        step = target - pusher
        norm = float(np.linalg.norm(step))
        if norm > _MAX_STEP_M:
            step *= _MAX_STEP_M / norm
        elbow = self.data.qpos[self._sim_qadr[1]]
        q_arm = self._ik(pusher + step, heading, elbow_sign=1.0 if elbow >= 0 else -1.0)
        q_arm = q_arm + rng.normal(0.0, noise_std, 3) if noise_std > 0 else q_arm
        return np.clip(np.r_[q_arm, 0.0], self.action_low, self.action_high)

    def _pusher_heading(self) -> float:
        return float(np.sum(self.data.qpos[self._sim_qadr[:3]]))

    def _ik(self, pusher_xy: np.ndarray, heading: float, elbow_sign: float) -> np.ndarray:
        """(3,) arm joints that put the pusher at pusher_xy pointing along heading (rad)."""
        wrist = pusher_xy - self._l3 * np.array([np.cos(heading), np.sin(heading)])
        l1, l2 = self._l1, self._l2
        r = float(np.clip(np.linalg.norm(wrist), abs(l1 - l2) + 1e-3, l1 + l2 - 1e-3))
        q2 = elbow_sign * np.arccos(np.clip((r * r - l1 * l1 - l2 * l2) / (2 * l1 * l2), -1, 1))
        q1 = np.arctan2(wrist[1], wrist[0]) - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2))
        return np.array([_wrap(q1), q2, _wrap(heading - q1 - q2)])
