"""MuJoCo simulation node: the robot's topics, backed by physics (docs/architecture.md 5).

Publishes, every control step and with the step's stamp, `<camera>/image_raw` +
`<camera>/camera_info` (by default the cameras the task's policy observes, at its image size),
then `joint_states` (the task's observed joints), then optionally `/clock`; takes position
targets on `<controller>/commands` (Float64MultiArray, actuator order) and
`<controller>/joint_trajectory` (JointTrajectory, by joint name), the ros2_control forward and
trajectory controller conventions, so a policy node runs unchanged against this node,
mujoco_ros2_control, gz_ros2_control or hardware. Episode results go to `~/episode` (JSON).
All callbacks share one executor thread: MuJoCo data is not thread-safe.
"""
import json
import math
import signal
import sys
import time

import numpy as np
import rclpy
from rclpy.clock import Clock
from rclpy.clock import ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rclpy.time import Time
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_msgs.msg import Header
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from rldt_ros.parameters import declare
from rldt_ros.parameters import SIM_PARAMETERS
from rldt_ros.spinning import spin

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def make_world(task: str, mjcf: str, control_rate_hz: float, max_episode_steps: int,
               randomization_file: str = ''):
    """A built-in task by name (perturbed per episode as `randomization_file` says), or any
    MJCF file wrapped by MjcfSim."""
    if mjcf:
        if randomization_file:
            raise ValueError('randomization_file needs a built-in task, not mjcf')
        from rldt_ros.mjcf_sim import MjcfSim
        return MjcfSim(mjcf, control_rate_hz or 50.0, max_episode_steps)
    from rldt_ros.tasks import make_task
    kw = {}
    if control_rate_hz:
        kw['control_rate_hz'] = control_rate_hz
    if max_episode_steps:
        kw['max_episode_steps'] = max_episode_steps
    if randomization_file:
        kw['randomization'] = load_randomization(randomization_file)
    return make_task(task, **kw)


def load_randomization(path: str):
    """The Randomization in a YAML file of ranges (the keys of a training config's
    env.randomization); an unknown key or a bad range is an error naming it."""
    from rldt_ros.randomization import Randomization
    from rldt_ros.safe_yaml import load_yaml
    data = load_yaml(path)
    try:
        return Randomization.from_dict(data)
    except ValueError as exc:
        raise ValueError(f'{path}: {exc}') from exc


class Trajectory:
    """A JointTrajectory being followed: piecewise linear from the target held at receipt."""

    def __init__(self, start: np.ndarray, times_s: list[float], points: list[np.ndarray]):
        self.times_s = np.array([0.0] + times_s)
        self.points = np.stack([start] + points)

    def at(self, t_s: float) -> np.ndarray:
        return np.array([np.interp(t_s, self.times_s, self.points[:, j])
                         for j in range(self.points.shape[1])])


class SimNode(Node):
    """Steps a MuJoCo world at its control rate and speaks ros2_control's topics."""

    def __init__(self, **kwargs):
        super().__init__('sim_node', **kwargs)
        p = declare(self, SIM_PARAMETERS)
        self.world = make_world(p['task'], p['mjcf'], p['control_rate_hz'],
                                p['max_episode_steps'], p['randomization_file'])
        # By default the cameras and image size the task's policy observes (a plain MJCF
        # observes none): what a model trained on the task needs, nothing more to render.
        cameras = p['cameras'] or list(getattr(self.world, 'observed_cameras', []))
        unknown = sorted(set(cameras) - set(self.world.cameras))
        if unknown:
            raise ValueError(f'cameras {unknown} are not in the model; it has '
                             f'{self.world.cameras}')
        self.cameras = cameras
        task_size = getattr(self.world, 'image_size', (64, 64))
        self.image_size = (p['image_height'] or task_size[0], p['image_width'] or task_size[1])
        self._observed_images = (cameras == list(getattr(self.world, 'observed_cameras', []))
                                 and cameras and self.image_size == tuple(task_size))
        self.period_s = 1.0 / self.world.control_rate_hz
        self.seed = p['seed']
        self.wait_for_command = p['wait_for_command']
        self.auto_reset = p['auto_reset']
        self.publish_clock = p['publish_clock']
        self.lockstep = p['lockstep']
        self.lockstep_timeout_s = p['lockstep_timeout_s']
        self._published_s = 0.0
        self._last_stamp_ns = 0
        names = self.world.observed_joints
        self._act_index = np.array([names.index(j) for j in self.world.actuated_joints])
        self.sim_time_ns = 0
        self._trajectory_start_ns = 0
        self.episode = -1
        self._new_episode()

        self.joint_pub = self.create_publisher(JointState, 'joint_states', RELIABLE)
        self.clock_pub = self.create_publisher(ClockMsg, '/clock', 10) if self.publish_clock \
            else None
        self.episode_pub = self.create_publisher(String, '~/episode', RELIABLE)
        self.image_pubs = {
            c: (self.create_publisher(Image, f'{c}/image_raw', qos_profile_sensor_data),
                self.create_publisher(CameraInfo, f'{c}/camera_info', qos_profile_sensor_data))
            for c in cameras}
        self.create_subscription(Float64MultiArray, f'{p["controller"]}/commands',
                                 self._on_commands, RELIABLE)
        self.create_subscription(JointTrajectory, f'{p["controller"]}/joint_trajectory',
                                 self._on_trajectory, RELIABLE)
        self.create_service(Trigger, '~/reset', self._on_reset)
        # Wall-clock timers: this node is the source of sim time, it must not wait for it.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(self.period_s / p['real_time_factor'], self._on_step, clock=steady)
        size = f' at {self.image_size[0]}x{self.image_size[1]}' if cameras else ''
        self.get_logger().info(
            f'{self.world.name}: {len(names)} joints, actuated {self.world.actuated_joints}, '
            f'{self.world.control_rate_hz} Hz x {p["real_time_factor"]}, cameras {cameras}'
            f'{size}')

    def _new_episode(self) -> None:
        self.episode += 1
        self.world.reset(seed=self.seed + self.episode)
        self.target = self.world.joint_positions()[self._act_index]
        self.trajectory: Trajectory | None = None
        self.steps = 0
        self.steps_without_command = 0
        self.episode_return = 0.0
        self.commanded = not self.wait_for_command
        # Commands sent before this episode's first state went out were planned for the old
        # world (a policy still finishing its chunk): they must not move the new one.
        self._new_state_sent = False
        self._answered = True  # lockstep: nothing to wait for before that first state

    # ---- commands -------------------------------------------------------------------------

    def _on_commands(self, msg: Float64MultiArray) -> None:
        if not self._new_state_sent:
            return
        target = np.asarray(msg.data, dtype=np.float64)
        if target.shape != self.target.shape or not np.all(np.isfinite(target)):
            self.get_logger().warning(
                f'ignored command: need {self.target.size} finite values in the order '
                f'{self.world.actuated_joints}, got {list(msg.data)}', throttle_duration_sec=2.0)
            return
        self.target = target
        self.trajectory = None
        self.commanded = self._answered = True

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if not self._new_state_sent:
            return
        unknown = sorted(set(msg.joint_names) - set(self.world.actuated_joints))
        if unknown or not msg.points:
            self.get_logger().warning(f'ignored trajectory: unknown joints {unknown} or no '
                                      'points', throttle_duration_sec=2.0)
            return
        index = [self.world.actuated_joints.index(j) for j in msg.joint_names]
        points = []
        for point in msg.points:
            target = self.target.copy() if not points else points[-1].copy()
            target[index] = point.positions
            points.append(target)
        if not all(np.all(np.isfinite(pt)) for pt in points):
            self.get_logger().warning('ignored trajectory with non-finite positions',
                                      throttle_duration_sec=2.0)
            return
        times = [pt.time_from_start.sec + pt.time_from_start.nanosec * 1e-9 for pt in msg.points]
        self.trajectory = Trajectory(self.target.copy(), times, points)
        self._trajectory_start_ns = self.sim_time_ns
        self.commanded = self._answered = True

    # ---- simulation -----------------------------------------------------------------------

    def _on_step(self) -> None:
        if self.lockstep and not self._answered and \
                time.monotonic() - self._published_s < self.lockstep_timeout_s:
            return  # the policy has not answered the last state yet
        if self.commanded:
            if self.trajectory is not None:
                elapsed_s = (self.sim_time_ns - self._trajectory_start_ns) * 1e-9 + self.period_s
                self.target = self.trajectory.at(elapsed_s)
            self.world.step(self.target)
            self.steps += 1
            # The policy had not answered the last state: this step ran on an older command
            # (the sim ran ahead of the policy, or lockstep gave up waiting).
            self.steps_without_command += not self._answered
            self.episode_return += self.world.reward()
        # Sim time runs while waiting too: a policy on use_sim_time needs it to tick at all.
        self.sim_time_ns += round(self.period_s * 1e9)
        limit = self.world.max_episode_steps
        ended = self.commanded and (self.world.success() or (limit and self.steps >= limit))
        if ended and self.auto_reset:
            # The report, then the new episode's first state in place of the final one: no
            # command is wanted for a final state, and so every state sent asks for exactly one
            # command, planned in the same world (lockstep waits for it). A final state sent
            # and answered while the report is on its way had its answer taken for the new
            # world's first: a quarter of the episodes of a lockstep loop started on a command
            # from the old world, and the loop then ran a state behind until the next reset.
            self._end_episode()
        self._publish_state()
        if ended and not self.auto_reset:
            self._end_episode()

    def _end_episode(self) -> None:
        result = {'episode': self.episode, 'seed': self.seed + self.episode, 'steps': self.steps,
                  'steps_without_command': self.steps_without_command,
                  'return': self.episode_return, 'success': self.world.success(),
                  'sim_time_s': self.sim_time_ns * 1e-9,
                  # The stamp of this episode's last observation: a policy node tells the next
                  # episode's observations by stamp, whatever order the topics arrive in.
                  'end_stamp_ns': self._last_stamp_ns}
        perturbation = getattr(self.world, 'perturbation', None)
        if perturbation:  # what this episode's randomization drew (logged with its result)
            result['perturbation'] = perturbation
        self.episode_pub.publish(String(data=json.dumps(result)))
        self.get_logger().info(f'episode {json.dumps(result)}')
        if self.auto_reset:
            # With wait_for_command, paused until a command planned from the new episode's
            # first state arrives (a policy drops its queue on ~/episode: episode_topic).
            self._new_episode()

    def _stamp(self):
        if self.publish_clock:
            return Time(nanoseconds=self.sim_time_ns).to_msg()
        return self.get_clock().now().to_msg()

    def _publish_state(self) -> None:
        """One step's observation, all with one stamp: images, then joint states, then the
        clock. Rendered before anything is sent, so the parts leave together; images first
        and clock last, so a policy that acts on joint_states or ticks on /clock has the
        step's images already (they are the observation of the same tick)."""
        stamp = self._stamp()
        self._last_stamp_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
        height, width = self.image_size
        if self._observed_images:  # with the task's pixel noise, when it randomizes
            images = self.world.images()
        else:
            images = {c: self.world.render(c, height, width) for c in self.cameras}
        for camera, pixels in images.items():
            header = Header(stamp=stamp, frame_id=camera)
            image_pub, info_pub = self.image_pubs[camera]
            image_pub.publish(Image(header=header, height=height, width=width, encoding='rgb8',
                                    is_bigendian=0, step=width * 3, data=pixels.tobytes()))
            info_pub.publish(self._camera_info(camera, header))
        if hasattr(self.world, 'state'):  # a task's readings, with its sensor noise if any
            positions, velocities = np.split(self.world.state(), 2)
        else:
            positions, velocities = self.world.joint_positions(), self.world.joint_velocities()
        self.joint_pub.publish(JointState(
            header=Header(stamp=stamp), name=self.world.observed_joints,
            position=positions.tolist(), velocity=velocities.tolist()))
        if self.clock_pub is not None:
            self.clock_pub.publish(ClockMsg(clock=stamp))
        self._new_state_sent = True
        self._answered = False
        self._published_s = time.monotonic()

    def _camera_info(self, camera: str, header: Header) -> CameraInfo:
        """Pinhole intrinsics from the MJCF vertical field of view (square pixels)."""
        height, width = self.image_size
        fovy = math.radians(float(self.world.model.camera(camera).fovy[0]))
        f = 0.5 * height / math.tan(0.5 * fovy)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        return CameraInfo(header=header, height=height, width=width, distortion_model='plumb_bob',
                          d=[0.0] * 5, k=[f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0],
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                          p=[f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0])

    def _on_reset(self, request, response):
        self._new_episode()
        response.success, response.message = True, f'episode {self.episode} started'
        return response


def main(args=None) -> int:
    """Exits quietly on Ctrl-C or SIGTERM, also when a second signal lands during cleanup."""
    try:
        with rclpy.init(args=args):
            try:
                node = SimNode()
            except (KeyboardInterrupt, ExternalShutdownException):
                raise
            except Exception as exc:  # noqa: BLE001 - any startup failure ends the process clearly
                print(f'sim_node: cannot start: {type(exc).__name__}: {exc}', file=sys.stderr)
                return 1
            try:
                spin(node, node.get_parameter('executor').value)
            finally:
                node.world.close()
    except (KeyboardInterrupt, ExternalShutdownException):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # shutting down already
    return 0


if __name__ == '__main__':
    sys.exit(main())
