"""ROS 2 node that runs an exported flow policy (models/NAME) in real time, safely.

Wiring only: the observation, chunking, safety and sampler cores do the work
(docs/architecture.md 5).
Callbacks run on one executor thread; the chunk sampler runs in its own worker thread (ONNX
Runtime releases the GIL), so the control timer never waits for inference.
"""
import concurrent.futures
import json
import sys
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock
from rclpy.clock import ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
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
from rldt_ros.chunking import ActionQueue
from rldt_ros.chunking import BLENDINGS
from rldt_ros.model_card import load_model_card
from rldt_ros.model_card import ModelCard
from rldt_ros.observation import JointStateMapper
from rldt_ros.observation import LatestCache
from rldt_ros.observation import ObservationError
from rldt_ros.observation import decode_image
from rldt_ros.observation import to_model_rgb
from rldt_ros.safety import CommandFilter
from rldt_ros.safety import chunk_is_finite
from rldt_ros.safety import EStop
from rldt_ros.safety import Mode
from rldt_ros.safety import Watchdog
from rldt_ros.sampler import ChunkSampler

COMMAND_TYPES = ('commands', 'joint_trajectory')
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

# name: (default, description, range or None, read_only). Read-only: changing them live would
# swap the model, the topics or the timing under a moving robot.
PARAMETERS = {
    'model': ('', 'Model folder (policy.onnx + policy.yaml).', None, True),
    'providers': ('auto', (
        "ONNX Runtime providers: 'auto', 'cpu', 'cuda', 'tensorrt' or a comma-separated list; "
        'unavailable ones fall back with a warning.'), None, True),
    'intra_op_threads': (1, 'ONNX Runtime CPU threads (0 = ORT decides).', (0, 64), True),
    'seed': (0, 'Seed of the sampler noise.', (0, 2**31 - 1), True),
    'deterministic': (False, 'Zero initial noise (mode-like actions).', None, True),
    'joint_names': (Parameter.Type.STRING_ARRAY, (
        'Commanded joints in output order; unset = the model card action.names. '
        'Must be the same joints as the card.'), None, True),
    'cameras': (Parameter.Type.STRING_ARRAY, (
        "Camera names the robot provides; unset = the model card's. Must match the card."),
        None, True),
    'controller': ('forward_position_controller', 'Controller namespace of the command topic.',
                   None, True),
    'command_type': ('commands', "'commands' (Float64MultiArray) or 'joint_trajectory'.",
                     None, True),
    'trajectory_points': (4, 'Points per JointTrajectory (time_from_start = k / rate).',
                          (1, 64), True),
    'control_rate_hz': (0.0, 'Command rate; 0 = the model card control_rate_hz.',
                        (0.0, 1000.0), True),
    'refill_threshold': (-1, (
        'Request a new chunk when this many actions are left; '
        '-1 = chunk_length - steps_per_chunk.'), (-1, 1024), True),
    'inline_inference': (False, (
        'Sample a chunk inside the control tick when the queue runs low, so its first action '
        'goes out on the tick of its observation (the latency the policy was trained with). '
        'Only for samplers far faster than one control period; false = a worker thread.'),
        None, True),
    'blending': ('none', "Overlap blending: 'none' or 'ensemble'.", None, True),
    'ensemble_coef': (0.01, 'Temporal ensemble weight exp(-coef * i), i = 0 oldest.',
                      (0.0, 10.0), True),
    'max_obs_age_s': (0.2, 'Observations older than this are stale (hold, then stop).',
                      (0.001, 10.0), False),
    'starvation_grace_s': (0.5, 'How long the last command is held when stale or starved.',
                           (0.0, 10.0), False),
    'max_delta_per_tick': (0.1, 'Largest command change per tick per joint (rad or m).',
                           (1e-6, 100.0), False),
    'enable_control': (False, 'false: compute and publish on ~/debug/* only (dry run).',
                       None, False),
    'diagnostics_period_s': (1.0, 'Period of /diagnostics and ~/stats.', (0.01, 60.0), True),
}


class StartupError(RuntimeError):
    """The node cannot run: model, parameters or card disagree. The message says how."""


def _descriptor(description: str, limits, read_only: bool) -> ParameterDescriptor:
    d = ParameterDescriptor(description=description, read_only=read_only)
    if isinstance(limits, tuple) and isinstance(limits[0], float):
        d.floating_point_range = [FloatingPointRange(from_value=limits[0], to_value=limits[1])]
    elif isinstance(limits, tuple):
        d.integer_range = [IntegerRange(from_value=limits[0], to_value=limits[1], step=1)]
    return d


def _stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class PolicyNode(Node):
    """Subscribes observations, publishes commands at control_rate_hz (docs/architecture.md 5)."""

    def __init__(self, **kwargs):
        super().__init__('policy_node', **kwargs)
        # First, so destroy_node works even when startup fails below (threads start lazily).
        self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='sampler')
        p = {name: self.declare_parameter(name, default, _descriptor(desc, limits, ro)).value
             for name, (default, desc, limits, ro) in PARAMETERS.items()}
        # Unset string arrays read as None (an empty YAML list has no type): treat as empty.
        p['joint_names'] = p['joint_names'] or []
        p['cameras'] = p['cameras'] or []
        self.add_on_set_parameters_callback(self._on_set_parameters)
        card = self._load_card(p)
        self.card = card
        self.sampler = ChunkSampler(card, p['providers'], p['seed'], p['deterministic'],
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
        self.enable_control = p['enable_control']

        self.mapper = JointStateMapper(list(card.state_joints), list(card.state_fields))
        self.cache = LatestCache(['state'] + [c.name for c in card.cameras])
        self.queue = ActionQueue(card.action_dim, p['blending'], p['ensemble_coef'])
        self.filter = CommandFilter(card.action_low, card.action_high, p['max_delta_per_tick'])
        self.watchdog = Watchdog(p['starvation_grace_s'])
        self.estop = EStop()
        self._future = None
        self._future_tick = 0
        self._tick = 0
        self._last_command: np.ndarray | None = None
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
        self.create_timer(1.0 / self.rate_hz, self._on_tick)
        # Diagnostics on a steady clock: they must keep reporting when /clock stops (sim died).
        self.create_timer(p['diagnostics_period_s'], self._on_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f'model {card.name} {card.version} ({card.task}) on {self.sampler.provider}: '
            f'H={card.chunk_length}, {self.rate_hz} Hz, refill at {self.refill_threshold}, '
            f'control {"ENABLED" if self.enable_control else "disabled (debug topic only)"}')

    def _load_card(self, p: dict) -> ModelCard:
        """The card, checked against the robot config (joint and camera names)."""
        if not p['model']:
            raise StartupError("parameter 'model' is empty: pass model:=models/NAME")
        card = load_model_card(p['model'])
        joints = list(p['joint_names'])
        if joints and (len(joints) != card.action_dim
                       or set(joints) != set(card.action_names)):
            raise StartupError(
                f'joint_names {joints} ({len(joints)} joints) do not match the model card '
                f'action.names {list(card.action_names)} ({card.action_dim} joints)')
        self.out_index = np.array([card.action_names.index(j) for j in joints]
                                  if joints else range(card.action_dim), dtype=np.intp)
        self.joint_names = joints or list(card.action_names)
        cameras = sorted(p['cameras'])
        card_cameras = sorted(c.name for c in card.cameras)
        if cameras and cameras != card_cameras:
            raise StartupError(f'cameras {cameras} do not match the model card {card_cameras}')
        if p['command_type'] not in COMMAND_TYPES:
            raise StartupError(f'command_type must be one of {COMMAND_TYPES}, '
                               f'got {p["command_type"]!r}')
        if p['blending'] not in BLENDINGS:
            raise StartupError(f'blending must be one of {BLENDINGS}, got {p["blending"]!r}')
        if p['refill_threshold'] >= card.chunk_length:
            raise StartupError(f'refill_threshold {p["refill_threshold"]} must be < '
                               f'chunk_length {card.chunk_length}')
        return card

    def _on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == 'enable_control':
                self.enable_control = param.value
            elif param.name == 'max_obs_age_s':
                self.max_obs_age_s = param.value
            elif param.name == 'starvation_grace_s':
                self.watchdog.grace_s = param.value
            elif param.name == 'max_delta_per_tick':
                self.filter.max_delta_per_tick = param.value
        return SetParametersResult(successful=True)

    # ---- observations ---------------------------------------------------------------------

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            state = self.mapper.state(msg.name, msg.position, msg.velocity)
        except ObservationError as exc:
            # A NaN or a missing joint must not produce a command: keep the old (aging) state.
            self.counts['rejected_obs'] += 1
            self._problems['joint_states'] = str(exc)
            return
        self._problems.pop('joint_states', None)
        self.cache.put('state', (state, _stamp_ns(msg.header.stamp)))

    def _on_image(self, msg: Image, camera) -> None:
        try:
            raw = decode_image(msg.encoding, msg.height, msg.width, msg.step,
                               bool(msg.is_bigendian), msg.data)
            image = to_model_rgb(raw, msg.encoding, camera.height, camera.width)
        except ObservationError as exc:
            self.counts['rejected_obs'] += 1
            self._problems[camera.name] = f'{camera.topic}: {exc}'
            return
        if msg.encoding != 'rgb8' or (msg.height, msg.width) != (camera.height, camera.width):
            self.counts['converted_images'] += 1
        self._problems.pop(camera.name, None)
        self.cache.put(camera.name, image)

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
        if self.inline_inference and self._needs_chunk(snapshot):
            self._future = self.worker.submit(self._sample, *self._model_input(snapshot))
            self._future_tick = self._tick
            self._future.result()  # microseconds to a millisecond for small policies
            self._collect_chunk()
        action = self.queue.pop(self._tick)
        engaged = self.estop.engaged
        healthy = snapshot is not None and action is not None and not engaged
        mode = self.watchdog.update(now_s, healthy, self._last_command is not None and not engaged)
        if mode is Mode.RUN:
            self._last_command = self.filter.apply(action, self._last_command)
            self._publish(self._last_command, self.queue.peek(self.trajectory_points - 1))
            self.counts['published'] += 1
            if self._latency_stamp_ns:
                self.obs_to_cmd_ms.add((time.time_ns() - self._latency_stamp_ns) / 1e6)
            self._latency_stamp_ns = None
            self._ever_sent = True
        elif mode is Mode.HOLD:
            self._publish(self._last_command, [])
            self.counts['held'] += 1
        else:
            self.counts['stopped'] += 1
        if not self.inline_inference and self._needs_chunk(snapshot):
            self._future = self.worker.submit(self._sample, *self._model_input(snapshot))
            self._future_tick = self._tick + 1

    def _needs_chunk(self, snapshot: dict | None) -> bool:
        return (snapshot is not None and self._future is None and not self.estop.engaged
                and len(self.queue) <= self.refill_threshold)

    @staticmethod
    def _model_input(snapshot: dict) -> tuple[dict, int]:
        obs = {k: v for k, v in snapshot.items() if k != 'state'}
        obs['state'], stamp_ns = snapshot['state']
        return obs, stamp_ns

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

    def _publish(self, command: np.ndarray, upcoming: list[np.ndarray]) -> None:
        if self.command_type == 'commands':
            msg = Float64MultiArray(data=command[self.out_index].tolist())
        else:
            points, last = [command], command
            for action in upcoming:  # the same clamp and rate limit as if sent tick by tick
                last = np.clip(np.clip(action, self.filter.low, self.filter.high),
                               last - self.filter.max_delta_per_tick,
                               last + self.filter.max_delta_per_tick)
                points.append(last)
            msg = JointTrajectory(joint_names=self.joint_names)
            for k, point in enumerate(points, start=1):
                t_ns = round(k * 1e9 / self.rate_hz)
                msg.points.append(JointTrajectoryPoint(
                    positions=point[self.out_index].tolist(),
                    time_from_start=Duration(sec=t_ns // 10**9, nanosec=t_ns % 10**9)))
        (self.command_pub if self.enable_control else self.debug_pub).publish(msg)

    # ---- services and status --------------------------------------------------------------

    def _on_estop(self, request, response):
        self.estop.trigger('service ~/estop')
        self.queue.clear()
        self.get_logger().error('E-STOP latched: no commands until ~/reset_estop')
        response.success, response.message = True, 'e-stop latched'
        return response

    def _on_reset_estop(self, request, response):
        self.estop.reset()
        self.get_logger().warning('e-stop reset')
        response.success, response.message = True, 'e-stop released'
        return response

    def stats(self) -> dict:
        ages = self.cache.ages_s()
        return {
            'mode': self.watchdog.mode.value, 'provider': self.sampler.provider,
            'control_enabled': self.enable_control, 'estop': self.estop.engaged,
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
            list(self._problems.values()), stale)
        flat = {k: v for k, v in stats.items() if not isinstance(v, dict)}
        for group in ('sampler_ms', 'obs_to_cmd_ms', 'obs_age_ms'):
            flat.update({f'{group}.{k}': v for k, v in stats[group].items()})
        status = DiagnosticStatus(
            level=bytes([level]), name=f'{self.get_name()}: policy', message=message,
            hardware_id=f'{self.card.name} {self.card.version}',
            values=[KeyValue(key=k, value=str(v)) for k, v in flat.items()])
        header = Header(stamp=self.get_clock().now().to_msg())
        self.diag_pub.publish(DiagnosticArray(header=header, status=[status]))
        self.stats_pub.publish(String(data=json.dumps({'level': level, 'message': message,
                                                       **stats})))

    def destroy_node(self):
        self.worker.shutdown(wait=True, cancel_futures=True)
        super().destroy_node()


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        try:
            node = PolicyNode()
        except Exception as exc:  # noqa: BLE001 - any startup failure ends the process clearly
            print(f'policy_node: cannot start: {type(exc).__name__}: {exc}', file=sys.stderr)
            return 1
        try:
            rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
