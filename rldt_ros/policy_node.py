"""ROS 2 node that runs an exported flow policy (models/NAME) in real time, safely.

Wiring only: the observation, chunking, safety, joint-limit and sampler cores do the work and
rldt_ros.parameters holds the parameters (docs/architecture.md 5). Callbacks run on one
executor thread; with inline_inference false the chunk sampler runs in a worker thread (ONNX
Runtime releases the GIL), so the control timer never waits for inference.
"""
import concurrent.futures
import json
import signal
import sys
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock
from rclpy.clock import ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_msgs.msg import Header
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from trajectory_msgs.msg import JointTrajectoryPoint

from rldt_ros import diagnostics
from rldt_ros import joint_limits
from rldt_ros.chunking import ActionQueue
from rldt_ros.model_card import load_model_card
from rldt_ros.observation import decode_image
from rldt_ros.observation import JointStateMapper
from rldt_ros.observation import LatestCache
from rldt_ros.observation import ObservationError
from rldt_ros.observation import stamp_age_s
from rldt_ros.observation import to_model_rgb
from rldt_ros.parameters import check_value
from rldt_ros.parameters import declare
from rldt_ros.parameters import POLICY_PARAMETERS
from rldt_ros.robot_fit import fit
from rldt_ros.safety import check_max_delta
from rldt_ros.safety import chunk_is_finite
from rldt_ros.safety import CommandFilter
from rldt_ros.safety import EStop
from rldt_ros.safety import Mode
from rldt_ros.safety import ReadingCheck
from rldt_ros.safety import Watchdog
from rldt_ros.sampler import ChunkSampler

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class StartupError(RuntimeError):
    """The node cannot run: model, parameters or card disagree. The message says how."""


def _stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class PolicyNode(Node):
    """Subscribes observations, publishes commands at control_rate_hz (docs/architecture.md 5)."""

    def __init__(self, **kwargs):
        super().__init__('policy_node', **kwargs)
        # First, so destroy_node works even when startup fails below (threads start lazily).
        self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='sampler')
        self.filter = None  # built below; the parameter callback applies changes once it is
        self.add_on_set_parameters_callback(self._on_set_parameters)
        p = declare(self, POLICY_PARAMETERS)
        if not p['model']:
            raise StartupError("parameter 'model' is empty: pass model:=models/NAME")
        self.card = card = load_model_card(p['model'])
        robot = fit(card, p)
        self.joint_names, self.out_index = robot.joint_names, robot.out_index
        if robot.limits_from == 'model card':
            self.get_logger().warning('no robot joint limits given (joint_limits_low/high or '
                                      "robot_description): using the model card's alone")
        deterministic = card.deterministic if p['deterministic'] == 'card' else p['deterministic']
        self.sampler = ChunkSampler(card, p['providers'], p['seed'], deterministic,
                                    p['intra_op_threads'])
        wanted = p['providers'].split(',')[0].strip().lower()
        if wanted not in ('auto', self.sampler.provider.lower(),
                          self.sampler.provider.lower().replace('executionprovider', '')):
            self.get_logger().warning(
                f'providers={p["providers"]!r}: running on {self.sampler.provider} instead')
        self.sampler.warmup(3)

        self.rate_hz = p['control_rate_hz'] or card.control_rate_hz
        if abs(self.rate_hz - card.control_rate_hz) > 1e-9:
            self.get_logger().warning(f'control_rate_hz {self.rate_hz} differs from the rate the '
                                      f'model was trained at ({card.control_rate_hz})')
        self.refill_threshold = (card.chunk_length - card.steps_per_chunk
                                 if p['refill_threshold'] < 0 else p['refill_threshold'])
        self.inline_inference = p['inline_inference']
        self.command_type = p['command_type']
        self.trajectory_points = p['trajectory_points']
        self.max_obs_age_s = p['max_obs_age_s']
        self.staleness_clock = p['staleness_clock']
        self.stamp_tolerance_s = p['stamp_tolerance_s']
        self.enable_control = p['enable_control']

        self.mapper = JointStateMapper(list(card.state_joints), list(card.state_fields))
        self.arm = JointStateMapper(list(card.action_names), ['position'])
        self.readings = ReadingCheck(list(card.action_names), robot.low, robot.high,
                                     p['joint_limit_margin'], p['max_joint_velocity'])
        self.cache = LatestCache(['state'] + [c.name for c in card.cameras])
        self.queue = ActionQueue(card.action_dim, p['blending'], p['ensemble_coef'])
        self.watchdog = Watchdog(p['starvation_grace_s'], p['auto_resume'])
        self.estop = EStop()
        self._future = None
        self._future_tick = 0
        self._tick = 0
        self._measured: np.ndarray | None = None  # latest plausible arm position, card order
        self._last_tick_s: float | None = None
        self._latency_stamp_ns: int | None = None
        self._problems: dict[str, str] = {}
        self._ever_sent = False
        self.counts = dict.fromkeys(
            ('ticks', 'published', 'held', 'stopped', 'chunks', 'rejected_chunks',
             'skipped_actions', 'rejected_obs', 'converted_images', 'missed_ticks'), 0)
        self.sampler_ms = diagnostics.Window()
        self.obs_to_cmd_ms = diagnostics.Window()

        self.create_subscription(JointState, 'joint_states', self._on_joint_state, RELIABLE)
        for camera in card.cameras:
            self.create_subscription(Image, camera.topic,
                                     lambda msg, c=camera: self._on_image(msg, c),
                                     qos_profile_sensor_data)
        msg_type = Float64MultiArray if self.command_type == 'commands' else JointTrajectory
        self.command_pub = self.create_publisher(
            msg_type, f'{p["controller"]}/{self.command_type}', RELIABLE)
        self.debug_pub = self.create_publisher(msg_type, f'~/debug/{self.command_type}', RELIABLE)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.stats_pub = self.create_publisher(String, '~/stats', 10)
        self.create_service(Trigger, '~/estop', self._on_estop)
        self.create_service(Trigger, '~/reset_estop', self._on_reset_estop)
        self.create_service(Trigger, '~/rearm', self._on_rearm)
        self.create_timer(1.0 / self.rate_hz, self._on_tick)
        # Diagnostics on a steady clock: they must keep reporting when /clock stops (sim died).
        self.create_timer(p['diagnostics_period_s'], self._on_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        # Last: from here on the parameter callback applies changes to the parts built above.
        self.filter = CommandFilter(robot.low, robot.high, p['max_delta_per_tick'])
        limits = joint_limits.describe(card.action_names, robot.low, robot.high,
                                       card.action_units)
        for line in (
                f'model {card.name} {card.version} ({card.task}) on {self.sampler.provider}: '
                f'H={card.chunk_length}, {self.rate_hz} Hz, refill at {self.refill_threshold}, '
                f'{"inline" if self.inline_inference else "worker"} inference, deterministic='
                f'{deterministic} ({"card" if p["deterministic"] == "card" else "parameter"})',
                f'staleness by {self.staleness_clock} time, auto_resume={p["auto_resume"]}, '
                f'max_delta_per_tick={p["max_delta_per_tick"]}',
                f'joint limits in force ({robot.limits_from}): {limits}',
                f'control {"ENABLED" if self.enable_control else "disabled (debug topic only)"}'):
            self.get_logger().info(line)

    def _on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            reason = check_value(param.name, param.value)
            if reason is None and param.name == 'max_delta_per_tick':
                try:
                    check_max_delta(param.value)
                except ValueError as exc:
                    reason = str(exc)
                if (reason is None and self.filter is not None and self.enable_control
                        and param.value > self.filter.max_delta_per_tick):
                    reason = ('max_delta_per_tick cannot be raised while enable_control is '
                              'true (lowering is allowed); disable control first')
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        if self.filter is not None:  # a change at run time, not a declaration
            for param in params:
                self._apply(param.name, param.value)
        return SetParametersResult(successful=True)

    def _apply(self, name: str, value) -> None:
        if name == 'enable_control' and value != self.enable_control:
            if value:  # an operator's go-ahead: start again from where the arm is
                self.watchdog.rearm()
            else:
                self._stop('control disabled')
            self.filter.restart()
            self.enable_control = value
            self.get_logger().warning(f'enable_control {value}')
        elif name == 'max_obs_age_s':
            self.max_obs_age_s = value
        elif name == 'starvation_grace_s':
            self.watchdog.grace_s = value
        elif name == 'max_delta_per_tick':
            self.filter.max_delta_per_tick = value

    # ---- observations ---------------------------------------------------------------------

    def _age_s(self, stamp) -> float:
        if self.staleness_clock == 'receive':
            return 0.0
        return stamp_age_s(_stamp_ns(stamp), self.get_clock().now().nanoseconds,
                           self.stamp_tolerance_s)

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            state = self.mapper.state(msg.name, msg.position, msg.velocity)
            measured, velocity = self.arm.positions_velocities(msg.name, msg.position,
                                                               msg.velocity)
            implausible = self.readings.problem(measured, velocity)
            if implausible:
                raise ObservationError(implausible)
            age_s = self._age_s(msg.header.stamp)
        except ObservationError as exc:
            # Not a state to act on: keep the old (aging) one; the tick holds, then stops.
            self.counts['rejected_obs'] += 1
            if 'joint_states' not in self._problems:
                self.get_logger().error(str(exc))
            self._problems['joint_states'] = str(exc)
            return
        self._problems.pop('joint_states', None)
        self._measured = measured
        self.cache.put('state', (state, measured, _stamp_ns(msg.header.stamp)), age_s)

    def _on_image(self, msg: Image, camera) -> None:
        try:
            raw = decode_image(msg.encoding, msg.height, msg.width, msg.step,
                               bool(msg.is_bigendian), msg.data)
            image = to_model_rgb(raw, msg.encoding, camera.height, camera.width)
            age_s = self._age_s(msg.header.stamp)
        except ObservationError as exc:
            self.counts['rejected_obs'] += 1
            self._problems[camera.name] = f'{camera.topic}: {exc}'
            return
        if msg.encoding != 'rgb8' or (msg.height, msg.width) != (camera.height, camera.width):
            self.counts['converted_images'] += 1
        self._problems.pop(camera.name, None)
        self.cache.put(camera.name, image, age_s)

    # ---- control loop ---------------------------------------------------------------------

    def _on_tick(self) -> None:
        now_s = time.monotonic()
        if self._last_tick_s is not None:
            late = (now_s - self._last_tick_s) * self.rate_hz
            if late > 1.5:
                self.counts['missed_ticks'] += round(late) - 1
        self._last_tick_s = now_s
        self._tick += 1
        self.counts['ticks'] += 1
        self._collect_chunk()
        snapshot = self.cache.snapshot(self.max_obs_age_s)
        inputs_ok = snapshot is not None and not self._problems and not self.estop.engaged
        if (inputs_ok and self._future is None and not self.watchdog.latched
                and len(self.queue) <= self.refill_threshold):
            self._request_chunk(snapshot)
        action = self.queue.pop(self._tick)
        mode = self.watchdog.update(now_s, inputs_ok and action is not None,
                                    self.filter.last is not None)
        if mode is Mode.RUN:
            command = self.filter.apply(action, snapshot['state'][1])
            upcoming = self.filter.preview(self.queue.peek(self.trajectory_points - 1))
            self._publish([command] + upcoming)
            self.counts['published'] += 1
            if self._latency_stamp_ns:
                self.obs_to_cmd_ms.add((time.time_ns() - self._latency_stamp_ns) / 1e6)
            self._latency_stamp_ns = None
            self._ever_sent = True
        elif mode is Mode.HOLD:
            self._publish([self.filter.last])
            self.counts['held'] += 1
        else:
            self._stop('stopped')

    def _request_chunk(self, snapshot: dict) -> None:
        """Samples a chunk from this tick's observation: its actions start at the next tick,
        or, inline, at this one (the tick waits for it: microseconds to a millisecond)."""
        obs = {k: v for k, v in snapshot.items() if k != 'state'}
        obs['state'], _, stamp_ns = snapshot['state']
        self._future = self.worker.submit(self._sample, obs, stamp_ns)
        self._future_tick = self._tick if self.inline_inference else self._tick + 1
        if self.inline_inference:
            self._future.result()
            self._collect_chunk()

    def _sample(self, obs: dict, stamp_ns: int) -> tuple[np.ndarray, float, int]:
        start = time.perf_counter()
        chunk = self.sampler.sample(obs)
        return chunk, (time.perf_counter() - start) * 1e3, stamp_ns

    def _collect_chunk(self) -> None:
        if self._future is None or not self._future.done():
            return
        future, self._future = self._future, None
        chunk, ms, stamp_ns = future.result()
        self.sampler_ms.add(ms)
        if not chunk_is_finite(chunk):
            self.counts['rejected_chunks'] += 1
            self.get_logger().warning('non-finite action chunk rejected',
                                      throttle_duration_sec=5.0)
            return
        self.counts['chunks'] += 1
        self.counts['skipped_actions'] += self.queue.push(chunk, self._future_tick)
        if self._latency_stamp_ns is None:
            # Header stamps are wall-clock on a live robot; with sim time they are not comparable.
            wall = abs(time.time_ns() - stamp_ns) < 10**10
            self._latency_stamp_ns = stamp_ns if wall else None

    def _stop(self, why: str) -> None:
        """Sends nothing more; a trajectory controller is told to hold the measured position
        (else it would finish the last trajectory). The next start ramps from the arm."""
        if self.filter.last is not None and self.command_type == 'joint_trajectory' \
                and self._measured is not None:
            self._publish([self._measured], hold=True)
            self.get_logger().warning(f'{why}: sent a hold at the measured position')
        self.filter.restart()
        self.queue.clear()
        self.counts['stopped'] += 1

    def _publish(self, points: list[np.ndarray], hold: bool = False) -> None:
        """Commands: the first point; trajectories: every point at 1/rate spacing."""
        if self.command_type == 'commands':
            msg = Float64MultiArray(data=points[0][self.out_index].tolist())
        else:
            msg = JointTrajectory(joint_names=self.joint_names)
            for k, point in enumerate(points, start=1):
                t_ns = round(k * 1e9 / self.rate_hz)
                msg.points.append(JointTrajectoryPoint(
                    positions=point[self.out_index].tolist(),
                    velocities=[0.0] * len(self.out_index) if hold else [],
                    time_from_start=Duration(sec=t_ns // 10**9, nanosec=t_ns % 10**9)))
        (self.command_pub if self.enable_control else self.debug_pub).publish(msg)

    # ---- services and status --------------------------------------------------------------

    def _on_estop(self, request, response):
        self.estop.trigger('service ~/estop')
        self._stop('E-STOP')
        self.get_logger().error('E-STOP latched: no commands until ~/reset_estop')
        response.success, response.message = True, 'e-stop latched'
        return response

    def _on_reset_estop(self, request, response):
        self.estop.reset()
        self.watchdog.rearm()  # releasing the e-stop is the operator's go-ahead
        self.filter.restart()
        self.get_logger().warning('e-stop reset: control restarts from the measured position')
        response.success, response.message = True, 'e-stop released'
        return response

    def _on_rearm(self, request, response):
        if self.estop.engaged:
            response.success, response.message = False, 'e-stop latched: use ~/reset_estop'
            return response
        self.watchdog.rearm()
        self.filter.restart()
        self.get_logger().warning('re-armed: control restarts from the measured position')
        response.success, response.message = True, 're-armed'
        return response

    def stats(self) -> dict:
        ages = self.cache.ages_s()
        return {
            'mode': self.watchdog.mode.value, 'provider': self.sampler.provider,
            'control_enabled': self.enable_control, 'estop': self.estop.engaged,
            'rearm_needed': self.watchdog.latched,
            'queue_depth': len(self.queue), **self.counts,
            'clamped': self.filter.clamped, 'rate_limited': self.filter.rate_limited,
            'sampler_ms': self.sampler_ms.percentiles(),
            'obs_to_cmd_ms': self.obs_to_cmd_ms.percentiles(),
            'obs_age_ms': {k: round(v * 1e3, 3) if np.isfinite(v) else None
                           for k, v in ages.items()},
            'problems': dict(self._problems),
        }

    def _on_diagnostics(self) -> None:
        stats = self.stats()
        stale = [k for k, age in self.cache.ages_s().items() if age > self.max_obs_age_s]
        level, message = diagnostics.health(
            stats['mode'], self._ever_sent, self.estop.reason if self.estop.engaged else None,
            list(self._problems.values()), stale, self.watchdog.latched)
        status = DiagnosticStatus(
            level=bytes([level]), name=f'{self.get_name()}: policy', message=message,
            hardware_id=f'{self.card.name} {self.card.version}',
            values=[KeyValue(key=k, value=v) for k, v in diagnostics.flatten(stats).items()])
        header = Header(stamp=self.get_clock().now().to_msg())
        self.diag_pub.publish(DiagnosticArray(header=header, status=[status]))
        self.stats_pub.publish(String(data=json.dumps({'level': level, 'message': message,
                                                       **stats})))

    def destroy_node(self):
        self.worker.shutdown(wait=False, cancel_futures=True)
        super().destroy_node()


def main(args=None) -> int:
    """Exits quietly on Ctrl-C or SIGTERM, also when a second signal lands during cleanup (a
    terminal signals the nodes and launch forwards another)."""
    try:
        with rclpy.init(args=args):
            try:
                node = PolicyNode()
            except (KeyboardInterrupt, ExternalShutdownException):
                raise
            except Exception as exc:  # noqa: BLE001 - any startup failure ends the process clearly
                print(f'policy_node: cannot start: {type(exc).__name__}: {exc}', file=sys.stderr)
                return 1
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # shutting down already
    return 0


if __name__ == '__main__':
    sys.exit(main())
