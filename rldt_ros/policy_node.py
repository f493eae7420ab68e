"""ROS 2 node that runs an exported flow policy (models/NAME) in real time, safely.

Wiring only: the observation, chunking, safety, joint-limit and sampler cores do the work and
rldt_ros.parameters holds the parameters (docs/architecture.md 5). Callbacks run on one
executor thread; with inline_inference false the chunk sampler runs in a worker thread (ONNX
Runtime releases the GIL), so the control timer never waits for inference.

A control slot is served by `_serve_slot`: from the control timer, or (inference_trigger
'observation') from the arrival of the observation a new chunk needs, which then re-phases
the timer; chunks come from one `_request_chunk` path either way. Under use_sim_time there is
no timer: /clock updates are the ticks (`_on_clock`, rldt_ros/sim_time.py).
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
from rclpy.clock import JumpThreshold
from rclpy.duration import Duration as RosDuration
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
from rldt_ros.chunking import ObservationClock
from rldt_ros.model_card import load_model_card
from rldt_ros.observation import check_image_size
from rldt_ros.observation import decode_image
from rldt_ros.observation import episode_end_stamp_ns
from rldt_ros.observation import JointStateMapper
from rldt_ros.observation import LatestCache
from rldt_ros.observation import ObservationError
from rldt_ros.observation import stamp_age_s
from rldt_ros.observation import to_model_rgb
from rldt_ros.parameters import check_value
from rldt_ros.parameters import declare
from rldt_ros.parameters import POLICY_PARAMETERS
from rldt_ros.robot_fit import fit
from rldt_ros.robot_fit import training_mismatch
from rldt_ros.safety import check_max_delta
from rldt_ros.safety import chunk_is_finite
from rldt_ros.safety import CommandFilter
from rldt_ros.safety import EStop
from rldt_ros.safety import Mode
from rldt_ros.safety import ReadingCheck
from rldt_ros.safety import Watchdog
from rldt_ros.sampler import ChunkSampler
from rldt_ros.sim_time import SimTimeSlots
from rldt_ros.spinning import spin
from rldt_ros.spinning import with_message_info

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
RELIABLE_IMAGES = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
# Observation -> command latency is measured from the DDS source timestamp of the oldest part
# of the observation (the publisher's wall clock); values outside this are another computer's
# unsynchronized clock and are not counted.
MAX_LATENCY_NS = 10**10


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
        # Under sim time the ticks are /clock updates, which the simulator publishes after each
        # step's observation, and a slot waits for the state stamped at it (sim_time.py): the
        # tick is already the observation's event, so there is nothing to re-phase.
        sim_time = self.get_parameter('use_sim_time').value
        self.event_driven = p['inference_trigger'] == 'observation' and not sim_time
        self.max_image_pixels = p['max_image_pixels']
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
        inputs = ['state'] + [c.name for c in card.cameras]
        self.cache = LatestCache(inputs)
        self.obs_clock = ObservationClock(inputs, 1.0 / self.rate_hz)
        self.queue = ActionQueue(card.action_dim, p['blending'], p['ensemble_coef'])
        self.watchdog = Watchdog(p['starvation_grace_s'], p['auto_resume'])
        self.estop = EStop()
        self._future = None
        self._future_tick = 0
        self._tick = 0
        self._measured: np.ndarray | None = None  # latest plausible arm position, card order
        self._last_slot_ns: int | None = None  # node clock of the last served slot
        self._slot_s = -np.inf  # monotonic time of the last served slot
        self._since_s = -np.inf  # an observation completes when all its parts are newer
        self._waiting = False  # a slot's tick came; the next whole observation serves it
        self._slot_skipped = False  # a slot waited for a new episode's first observation
        self._pending_slot_ns: int | None = None  # sim time: a slot waits for its state
        self._fresh_after_s = -np.inf  # chunks only from observations newer than this
        self._generation = 0  # chunks sampled before an episode ended are dropped
        self._latency_from: tuple[int, int] | None = None  # (published, arrived) ns, wall
        self._problems: dict[str, str] = {}
        self._warnings: dict[str, str] = {}
        self._ever_sent = False
        self.counts = dict.fromkeys(
            ('ticks', 'published', 'held', 'stopped', 'chunks', 'rejected_chunks',
             'skipped_actions', 'rejected_obs', 'converted_images', 'missed_ticks',
             'early_slots', 'late_slots', 'stale_ticks', 'episodes'), 0)
        span = p['stats_window_s']
        self.sampler_ms = diagnostics.Window(span)
        self.obs_to_cmd_ms = diagnostics.Window(span)
        # obs_to_cmd = delivery (published -> handed to this node's callback: DDS and the
        # executor) + in_node (observation complete here -> command published).
        self.delivery_ms = diagnostics.Window(span)
        self.in_node_ms = diagnostics.Window(span)
        self.image_ms = diagnostics.Window(span)

        # The episode report first: rclpy's single-threaded executor handles a batch of ready
        # messages in subscription order, and the report must clear the old episode's actions
        # before the new episode's first state is served (the simulator sends it first).
        if p['episode_topic']:
            self.create_subscription(String, p['episode_topic'], self._on_episode_end, RELIABLE)
        self.create_subscription(JointState, 'joint_states',
                                 with_message_info(self._on_joint_state), RELIABLE)
        image_qos = qos_profile_sensor_data if p['image_reliability'] == 'best_effort' \
            else RELIABLE_IMAGES
        for camera in card.cameras:
            self.create_subscription(Image, camera.topic, self._image_callback(camera),
                                     image_qos)
        msg_type = Float64MultiArray if self.command_type == 'commands' else JointTrajectory
        self.command_pub = self.create_publisher(
            msg_type, f'{p["controller"]}/{self.command_type}', RELIABLE)
        self.debug_pub = self.create_publisher(msg_type, f'~/debug/{self.command_type}', RELIABLE)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.stats_pub = self.create_publisher(String, '~/stats', 10)
        self.create_service(Trigger, '~/estop', self._on_estop)
        self.create_service(Trigger, '~/reset_estop', self._on_reset_estop)
        self.create_service(Trigger, '~/rearm', self._on_rearm)
        if sim_time:  # ticks are /clock updates (rldt_ros/sim_time.py): no control timer
            self.timer = None
            self.sim_slots = SimTimeSlots(round(1e9 / self.rate_hz))
            self._clock_jumps = self.get_clock().create_jump_callback(
                JumpThreshold(min_forward=RosDuration(nanoseconds=1),
                              min_backward=RosDuration(nanoseconds=-1)),
                post_callback=self._on_clock)
        else:
            self.sim_slots = None
            self.timer = self.create_timer(1.0 / self.rate_hz, self._on_timer)
        # Diagnostics on a steady clock: they must keep reporting when /clock stops (sim died).
        self.create_timer(p['diagnostics_period_s'], self._on_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        # Last: from here on the parameter callback applies changes to the parts built above.
        self.filter = CommandFilter(robot.low, robot.high, p['max_delta_per_tick'])
        self._check_training_conditions()
        limits = joint_limits.describe(card.action_names, robot.low, robot.high,
                                       card.action_units)
        trigger = 'observation' if self.event_driven else '/clock tick' if sim_time \
            else 'timer tick'
        for line in (
                f'model {card.name} {card.version} ({card.task}) on {self.sampler.provider}: '
                f'H={card.chunk_length}, {self.rate_hz} Hz, refill at {self.refill_threshold}, '
                f'{"inline" if self.inline_inference else "worker"} inference on the '
                f'{trigger}, deterministic={deterministic} '
                f'({"card" if p["deterministic"] == "card" else "parameter"})',
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
            if param.name == 'use_sim_time' and self.filter is not None and \
                    bool(param.value) != (self.sim_slots is not None):
                reason = ('use_sim_time is read at start (the control ticks are a wall-clock '
                          'timer or /clock updates): restart the node to change it')
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
            self._check_training_conditions()

    def _check_training_conditions(self) -> None:
        """WARN (log and /diagnostics) while the command filter differs from the one the model
        was trained with (model card training_conditions)."""
        mismatch = training_mismatch(self.card, self.filter.max_delta_per_tick)
        if mismatch and self._warnings.get('training_conditions') != mismatch:
            self.get_logger().warning(mismatch)
        if mismatch:
            self._warnings['training_conditions'] = mismatch
        else:
            self._warnings.pop('training_conditions', None)

    # ---- observations ---------------------------------------------------------------------

    def _age_s(self, stamp) -> float:
        if self.staleness_clock == 'receive':
            return 0.0
        return stamp_age_s(_stamp_ns(stamp), self.get_clock().now().nanoseconds,
                           self.stamp_tolerance_s)

    def _on_joint_state(self, msg: JointState, info) -> None:
        timing = (info['source_timestamp'], time.time_ns())
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
        self.cache.put('state', (state, measured, timing), age_s,
                       _stamp_ns(msg.header.stamp))
        self._on_observation('state')

    def _image_callback(self, camera):
        return with_message_info(lambda msg, info: self._on_image(msg, info, camera))

    def _on_image(self, msg: Image, info, camera) -> None:
        start = time.perf_counter()
        timing = (info['source_timestamp'], time.time_ns())
        try:
            # The size check reads the header only: an 8k image is refused untouched.
            check_image_size(msg.height, msg.width, self.max_image_pixels)
            raw = decode_image(msg.encoding, msg.height, msg.width, msg.step,
                               bool(msg.is_bigendian), msg.data)
            image = to_model_rgb(raw, msg.encoding, camera.height, camera.width)
            age_s = self._age_s(msg.header.stamp)
        except ObservationError as exc:
            self.counts['rejected_obs'] += 1
            problem = f'camera {camera.name} ({camera.topic}): {exc}'
            if self._problems.get(camera.name) != problem:
                self.get_logger().error(problem)
            self._problems[camera.name] = problem
            self.image_ms.add((time.perf_counter() - start) * 1e3)
            return
        if msg.encoding != 'rgb8' or (msg.height, msg.width) != (camera.height, camera.width):
            self.counts['converted_images'] += 1
        self._problems.pop(camera.name, None)
        self.cache.put(camera.name, (image, timing), age_s,
                       _stamp_ns(msg.header.stamp))
        self.image_ms.add((time.perf_counter() - start) * 1e3)
        self._on_observation(camera.name)

    def _on_observation(self, key: str) -> None:
        """Event-driven inference (docs/architecture.md 5): when a slot needs a new chunk and
        this arrival completes a whole new observation, serve the slot now if it is the
        observation nearest to the slot (or the slot's tick already came and waits), and
        re-phase the timer to it; a worker samples on it and its chunk starts at the next tick.
        """
        now_s = time.monotonic()
        self.obs_clock.arrived(key, now_s)
        if self._pending_slot_ns is not None and key == 'state' and \
                self.cache.stamp_ns('state') >= self._pending_slot_ns:
            self._pending_slot_ns = None  # sim time: the state this slot waited for
            self._serve_observed_slot()
            return
        if self._slot_skipped and self.cache.arrived_since(self._fresh_after_s):
            # The new episode's first observation, for a slot that could not wait for the
            # next tick: under sim time a lockstep sim sends no /clock until it is answered.
            if self.event_driven:
                self.timer.reset()  # as for any slot served by its observation
            self._serve_observed_slot()
            return
        if not self.event_driven or not self._refill_due() or \
                not self.cache.arrived_since(self._since_s):
            return
        if not self.inline_inference:
            self._since_s = now_s
            self._request_chunk(self.cache.snapshot(self.max_obs_age_s))
            return
        until_slot_s = (self.timer.time_until_next_call() or 0) * 1e-9
        if not (self._waiting or self.obs_clock.serves_early(until_slot_s)):
            self._since_s = now_s  # too early for the slot: a newer observation will be nearer
            return
        self.counts['late_slots' if self._waiting else 'early_slots'] += 1
        self._waiting = False
        self.timer.reset()  # the next slot one period after this observation
        self._serve_slot()

    def _on_episode_end(self, msg: String) -> None:
        """The simulator reset its world: what is queued was planned for the old one, and
        training never carries a chunk across a reset (the shipped vision model: 96% offline,
        60% when up to 3 actions of the old chunk run on in the new episode).

        The new episode starts with the first observation stamped after the report's
        'end_stamp_ns'. Topics are not ordered against each other, so that observation (or
        some of its parts) can be handled before this message (a loaded node handles a batch
        of ready messages in subscription order); it must count as fresh, or a lockstep
        simulator, which waits for the answer to it, would stall. Without the stamp, what
        arrives after this message is the new episode's."""
        self.queue.clear()
        self.filter.restart()
        self._generation += 1
        self._fresh_after_s = self._since_s = time.monotonic()
        end_ns = episode_end_stamp_ns(msg.data)
        if end_ns is not None:
            # Parts of the new episode's first observation already here count as arrived now.
            self.cache.renew_stamped_after(end_ns, self._fresh_after_s + 1e-6)
        self.counts['episodes'] += 1

    # ---- control loop ---------------------------------------------------------------------

    def _refill_due(self) -> bool:
        """The next slot needs a new chunk, and healthy inputs could give it one."""
        return (self._future is None and len(self.queue) <= self.refill_threshold
                and not self._problems and not self.estop.engaged and not self.watchdog.latched
                and self.cache.snapshot(self.max_obs_age_s) is not None
                and self.cache.arrived_since(self._fresh_after_s))

    def _serve_observed_slot(self) -> None:
        """A slot served on an observation's arrival. Under sim time it is the slot at the
        state's stamp: the clock reaching that time is not another one."""
        if self.sim_slots is None:
            self._serve_slot()
            return
        stamp_ns = self.cache.stamp_ns('state')
        self._serve_slot(stamp_ns or None)
        self.sim_slots.served_through(stamp_ns)

    def _on_clock(self, jump) -> None:
        """Sim time: a /clock update (rldt_ros/sim_time.py). A slot when it reaches the next
        one, served now if the state stamped at it is here, else when it comes; a slot still
        waiting at the next update is served then with the latest state, as a timer would."""
        now_ns = self.get_clock().now().nanoseconds
        if self.sim_slots.due(now_ns):
            if 0 < self.cache.stamp_ns('state') < now_ns:
                self._pending_slot_ns = now_ns
                return
        elif self._pending_slot_ns is None:
            return
        self._pending_slot_ns = None
        self._serve_slot()

    def _on_timer(self) -> None:
        if (self.timer.time_until_next_call() or 0) > 1.5e9 / self.rate_hz:
            # A stale call: rcl counted it as the next tick, so the next is two periods off.
            # The EventsExecutor makes them (rldt_ros/spinning.py): a call that fell due before
            # the timer was re-phased, or a due timer dispatched twice (sim time). Serving it
            # would send a second command in one slot and skip the next: reset instead.
            self.counts['stale_ticks'] += 1
            self.timer.reset()
            return
        self._collect_chunk()
        if self.event_driven and self.inline_inference and not self._waiting \
                and self._refill_due():
            # Served by the next whole observation (_on_observation); by the next tick if none
            # comes within a period (the fallback: the latest observation, as the timer would).
            self._waiting = True
            return
        self._waiting = False
        self._serve_slot()

    def _serve_slot(self, slot_ns: int | None = None) -> None:
        """One control slot: refill the queue if it runs low, pop this slot's action, and send
        it (RUN), resend the last command (HOLD) or send nothing (STOP) as the watchdog says.
        `slot_ns`: the slot's time on the node clock, if not now (sim time: the stamp of the
        state that arrived before the clock got there)."""
        now_s = time.monotonic()
        now_ns = self.get_clock().now().nanoseconds if slot_ns is None else slot_ns
        if not self.cache.arrived_since(self._fresh_after_s) and \
                now_s - self._fresh_after_s < self.max_obs_age_s:
            # An episode just ended; its successor's first observation is on its way and
            # serves this slot when it comes (_on_observation). Skipped on purpose, not a
            # missed tick: the next slot counts from this one.
            self._last_slot_ns = now_ns
            self._slot_skipped = True
            return
        self._slot_skipped = False
        if self._last_slot_ns is not None:
            late = (now_ns - self._last_slot_ns) * 1e-9 * self.rate_hz
            if late > 1.5:
                self.counts['missed_ticks'] += round(late) - 1
        self._last_slot_ns = now_ns
        self._slot_s = self._since_s = now_s
        self._tick += 1
        self.counts['ticks'] += 1
        self._collect_chunk()
        snapshot = self.cache.snapshot(self.max_obs_age_s)
        inputs_ok = snapshot is not None and not self._problems and not self.estop.engaged
        # With a worker on the observation trigger, arrivals request refills (_on_observation);
        # the slot only when the queue ran dry.
        low = len(self.queue) <= (self.refill_threshold if self.inline_inference
                                  or not self.event_driven else 0)
        if inputs_ok and self._future is None and not self.watchdog.latched and low \
                and self.cache.arrived_since(self._fresh_after_s):
            self._request_chunk(snapshot)
        action = self.queue.pop(self._tick)
        mode = self.watchdog.update(now_s, inputs_ok and action is not None,
                                    self.filter.last is not None)
        if mode is Mode.RUN:
            command = self.filter.apply(action, snapshot['state'][1])
            upcoming = self.filter.preview(self.queue.peek(self.trajectory_points - 1))
            self._publish([command] + upcoming)
            self.counts['published'] += 1
            if self._latency_from is not None:
                self._add_latency(*self._latency_from)
            self._latency_from = None
            self._ever_sent = True
        elif mode is Mode.HOLD:
            self._publish([self.filter.last])
            self.counts['held'] += 1
        else:
            self._stop('stopped')

    def _request_chunk(self, snapshot: dict) -> None:
        """Samples a chunk from this observation. Inline, its first action is for the slot
        being served (the slot waits for it: microseconds to a millisecond); from the worker,
        its actions start at the next slot."""
        obs = {k: v[0] for k, v in snapshot.items() if k != 'state'}
        obs['state'], _, timing = snapshot['state']
        timings = [timing] + [v[1] for k, v in snapshot.items() if k != 'state']
        # From the oldest part's publication; complete when its last part arrived.
        timing = (min(t[0] for t in timings), max(t[1] for t in timings))
        if not self.inline_inference:
            self._future = self.worker.submit(self._sample, obs, timing, self._generation)
            self._future_tick = self._tick + 1
            return
        # Inline: sampled on this (executor) thread. A hand-off to the worker and back would
        # add two thread wake-ups to every chunk's latency, on cores the simulator shares.
        self._future_tick = self._tick
        self._accept_chunk(*self._sample(obs, timing, self._generation))

    def _sample(self, obs: dict, timing: tuple[int, int], generation: int):
        start = time.perf_counter()
        chunk = self.sampler.sample(obs)
        return chunk, (time.perf_counter() - start) * 1e3, timing, generation

    def _collect_chunk(self) -> None:
        if self._future is None or not self._future.done():
            return
        future, self._future = self._future, None
        self._accept_chunk(*future.result())

    def _accept_chunk(self, chunk: np.ndarray, ms: float, timing: tuple[int, int],
                      generation: int) -> None:
        """Queues a sampled chunk from self._future_tick on, unless its episode has ended or
        it is not finite."""
        self.sampler_ms.add(ms)
        if generation != self._generation:
            return  # planned in an episode that has ended
        if not chunk_is_finite(chunk):
            self.counts['rejected_chunks'] += 1
            self.get_logger().warning('non-finite action chunk rejected',
                                      throttle_duration_sec=5.0)
            return
        self.counts['chunks'] += 1
        self.counts['skipped_actions'] += self.queue.push(chunk, self._future_tick)
        if self._latency_from is None:
            self._latency_from = timing

    def _add_latency(self, published_ns: int, arrived_ns: int) -> None:
        """Latency of the command just sent from the observation its chunk was sampled on.
        The publication time is the sender's clock: another computer's, unsynchronized, can
        put it in the future or far back, and then it is not counted."""
        now_ns = time.time_ns()
        if 0 <= now_ns - published_ns < MAX_LATENCY_NS and published_ns <= arrived_ns:
            self.obs_to_cmd_ms.add((now_ns - published_ns) / 1e6)
            self.delivery_ms.add((arrived_ns - published_ns) / 1e6)
        self.in_node_ms.add((now_ns - arrived_ns) / 1e6)

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
            'delivery_ms': self.delivery_ms.percentiles(),
            'in_node_ms': self.in_node_ms.percentiles(),
            'image_ms': self.image_ms.percentiles(),
            'observation_interval_ms': round(self.obs_clock.interval_s() * 1e3, 3),
            'obs_age_ms': {k: round(v * 1e3, 3) if np.isfinite(v) else None
                           for k, v in ages.items()},
            'problems': dict(self._problems),
            'warnings': dict(self._warnings),
        }

    def _on_diagnostics(self) -> None:
        stats = self.stats()
        stale = [k for k, age in self.cache.ages_s().items() if age > self.max_obs_age_s]
        level, message = diagnostics.health(
            stats['mode'], self._ever_sent, self.estop.reason if self.estop.engaged else None,
            list(self._problems.values()), stale, self.watchdog.latched,
            list(self._warnings.values()))
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
            spin(node, node.get_parameter('executor').value)
    except (KeyboardInterrupt, ExternalShutdownException):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # shutting down already
    return 0


if __name__ == '__main__':
    sys.exit(main())
