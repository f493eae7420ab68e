"""The nodes' parameters in one place: names, defaults, descriptions, ranges, checks, and which
parameter files each node starts with (the same for `ros2 launch` and `rldt-ros run`).

Defaults here equal config/policy.yaml and config/sim.yaml (a test compares them), so a node
started without a file behaves as one started with it. config/policy_sim.yaml holds only what
differs in simulation and is loaded after policy.yaml.
"""
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.parameter import Parameter

from rldt_ros.chunking import BLENDINGS
from rldt_ros.observation import STALENESS_CLOCKS
from rldt_ros.safety import MAX_DELTA_RANGE
from rldt_ros.spinning import EXECUTORS

COMMAND_TYPES = ('commands', 'joint_trajectory')
INFERENCE_TRIGGERS = ('observation', 'timer')
RELIABILITIES = ('best_effort', 'reliable')
ANY_TYPE = 'any type'  # marks a parameter that takes more than one type (deterministic)

# Both nodes: which rclpy executor runs their callbacks (rldt_ros/spinning.py).
EXECUTOR_PARAMETER = ('events', (
    "rclpy executor running the callbacks: 'events' (rclpy.experimental.EventsExecutor: "
    'dispatch from C++, lower latency and about 35% less CPU; falls back to single_threaded '
    "with a warning where rclpy has none, e.g. Jazzy) or 'single_threaded' (rclpy's Python "
    'executor).'), None, True)

# name: (default or type if unset, description, range or None, read_only). Read-only: changing
# them live would swap the model, the topics, the limits or the timing under a moving robot.
POLICY_PARAMETERS = {
    'model': ('', 'Model folder (policy.onnx + policy.yaml).', None, True),
    'providers': ('auto', (
        "ONNX Runtime providers: 'auto', 'cpu', 'cuda', 'tensorrt' or a comma-separated list; "
        'unavailable ones fall back with a warning.'), None, True),
    'intra_op_threads': (1, 'ONNX Runtime CPU threads (0 = ORT decides).', (0, 64), True),
    'seed': (0, 'Seed of the sampler noise.', (0, 2**31 - 1), True),
    'deterministic': ('card', (
        "Zero initial noise (mode-like actions): true, false, or 'card' = the sampling mode "
        'the model was selected in (model card sampler.deterministic).'), ANY_TYPE, True),
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
    'inference_trigger': ('observation', (
        "When a chunk is sampled: 'observation' = when the observation it needs arrives "
        '(joint_states and every camera), its first action published at once and the control '
        "timer re-phased to it; 'timer' = on the next control tick (up to a period later). "
        'With use_sim_time both are the /clock tick, served with the state stamped at it.'),
        None, True),
    'executor': EXECUTOR_PARAMETER,
    'inline_inference': (True, (
        'Sample a chunk inside the control tick when the queue runs low, so its first action '
        'goes out on the tick of its observation (the latency the policy was trained with). '
        'Only for samplers far faster than one control period; false = a worker thread.'),
        None, True),
    'image_reliability': ('best_effort', (
        "QoS of the camera subscriptions: 'best_effort' (sensor data; matches any camera) or "
        "'reliable' (needed for images over ~64 KB on Fast DDS's default transport, which "
        'drops most fragmented best-effort frames; the camera must publish reliable).'),
        None, True),
    'max_image_pixels': (1_000_000, (
        'Images with more pixels are refused before decoding (ERROR naming the camera, hold, '
        'then stop): decoding and resizing run on the control thread.'),
        (1, 100_000_000), True),
    'blending': ('none', "Overlap blending: 'none' or 'ensemble'.", None, True),
    'ensemble_coef': (0.01, 'Temporal ensemble weight exp(-coef * i), i = 0 oldest.',
                      (0.0, 10.0), True),
    'staleness_clock': ('receive', (
        "What an observation's age is measured from: 'receive' (arrival on this computer's "
        "clock; needs no clock sync) or 'stamp' (header.stamp vs this node's clock; also "
        'catches data delayed before it arrived; needs synchronized clocks).'), None, True),
    'stamp_tolerance_s': (0.05, (
        "With staleness_clock 'stamp': clock skew accepted; stamps further in the future "
        'are rejected.'), (0.0, 10.0), True),
    'max_obs_age_s': (0.2, 'Observations older than this are stale (hold, then stop).',
                      (0.001, 10.0), False),
    'starvation_grace_s': (0.5, 'How long the last command is held when stale or starved.',
                           (0.0, 10.0), False),
    'auto_resume': (False, (
        'Restart by itself when data is healthy again after a stop (simulation). false: stay '
        'stopped until ~/rearm, ~/reset_estop or enable_control false -> true.'), None, True),
    'max_delta_per_tick': (0.1, (
        'Largest command change per tick per joint (rad or m), from the measured position '
        'when control (re)starts. Raising it is refused while enable_control is true.'),
        MAX_DELTA_RANGE, False),
    'joint_limits_low': (Parameter.Type.DOUBLE_ARRAY, (
        "The robot's lower joint limits in the commanded joints' order; intersected with the "
        "model card's and robot_description's."), None, True),
    'joint_limits_high': (Parameter.Type.DOUBLE_ARRAY, (
        "The robot's upper joint limits in the commanded joints' order."), None, True),
    'robot_description': ('', (
        "URDF of the robot; its joints' <limit lower upper> are intersected with the model "
        "card's limits. Empty = none."), None, True),
    'joint_limit_margin': (0.05, (
        'A joint reading beyond its limits by more than this (rad or m) is implausible.'),
        (0.0, 1.0), True),
    'max_joint_velocity': (10.0, (
        'A commanded joint reading faster than this (rad/s or m/s) is implausible.'),
        (0.0, 1000.0), True),
    'episode_topic': ('', (
        'std_msgs/String topic whose messages end an episode (simulation: sim_node/episode): '
        'queued actions are dropped and the next chunk comes from an observation that arrived '
        'after it, as after a reset in training. Empty: none (a robot has no resets).'),
        None, True),
    'enable_control': (False, 'false: compute and publish on ~/debug/* only (dry run).',
                       None, False),
    'diagnostics_period_s': (1.0, 'Period of /diagnostics and ~/stats.', (0.01, 60.0), True),
    'stats_window_s': (10.0, (
        'Latency percentiles in /diagnostics and ~/stats cover the last this many seconds '
        '(computed on the control thread: longer windows cost it more).'),
        (0.1, 60.0), True),
}

# The sim node builds its world once: every parameter is read-only.
SIM_PARAMETERS = {
    'task': ('cube_push', 'Built-in task (rldt_ros.tasks) to simulate; ignored if mjcf is set.',
             None, True),
    'mjcf': ('', 'Path of a plain MJCF file to simulate instead of a built-in task.', None,
             True),
    'seed': (0, 'Seed of the first episode; episode k uses seed + k.', (0, 2**31 - 1), True),
    'control_rate_hz': (0.0, 'Physics steps per second of sim time; 0 = the task default.',
                        (0.0, 1000.0), True),
    'max_episode_steps': (0, 'Episode length; 0 = the task default (unlimited for mjcf).',
                          (0, 10**9), True),
    'real_time_factor': (1.0, 'Sim seconds per wall second (>1 runs faster; use /clock).',
                         (0.01, 100.0), True),
    'publish_clock': (False, 'Publish /clock from sim time (for use_sim_time).', None, True),
    'lockstep': (False, (
        'Step only once a command arrived for the last published state (or after '
        'lockstep_timeout_s): a busy computer then slows the simulation down instead of '
        'delaying commands by a step (evaluation on shared machines; with publish_clock).'),
        None, True),
    'lockstep_timeout_s': (1.0, 'With lockstep: wall seconds to wait for a command.',
                           (0.001, 60.0), True),
    'randomization_file': ('', (
        "YAML mapping of domain randomization ranges, the keys of a training config's "
        'env.randomization (rldt_ros.randomization); the built-in task draws a perturbation '
        'per episode from its seed and publishes noisy readings. Empty: nominal.'), None, True),
    'controller': ('forward_position_controller', 'Controller namespace of command topics.',
                   None, True),
    'cameras': (Parameter.Type.STRING_ARRAY, (
        "Cameras to render and publish every step; unset = the ones the task's policy "
        'observes (none for cube_push and for a plain MJCF).'), None, True),
    'image_height': (0, "Rendered image height (px); 0 = the task's image size (64 for MJCF).",
                     (0, 4096), True),
    'image_width': (0, "Rendered image width (px); 0 = the task's image size (64 for MJCF).",
                    (0, 4096), True),
    'wait_for_command': (True, ('Start each run paused until the first command arrives, so '
                                'episodes are not scored while the policy is still loading.'),
                         None, True),
    'executor': EXECUTOR_PARAMETER,
    'auto_reset': (True, 'Start the next episode when one ends.', None, True),
}

# Allowed values of the string parameters that are choices.
CHOICES = {
    'command_type': COMMAND_TYPES,
    'inference_trigger': INFERENCE_TRIGGERS,
    'executor': EXECUTORS,
    'image_reliability': RELIABILITIES,
    'blending': BLENDINGS,
    'staleness_clock': STALENESS_CLOCKS,
}


def descriptor(description: str, limits, read_only: bool) -> ParameterDescriptor:
    d = ParameterDescriptor(description=description, read_only=read_only,
                            dynamic_typing=limits == ANY_TYPE)
    if isinstance(limits, tuple) and isinstance(limits[0], float):
        d.floating_point_range = [FloatingPointRange(from_value=limits[0], to_value=limits[1])]
    elif isinstance(limits, tuple):
        d.integer_range = [IntegerRange(from_value=limits[0], to_value=limits[1], step=1)]
    return d


def declare(node, table: dict) -> dict:
    """Declares every parameter of `table` on `node`; returns {name: value} (unset arrays as
    [], since an empty YAML list has no type and cannot be given)."""
    values = {}
    for name, (default, description, limits, read_only) in table.items():
        value = node.declare_parameter(name, default,
                                       descriptor(description, limits, read_only)).value
        if isinstance(default, Parameter.Type) and value is None:
            value = []
        values[name] = value
    return values


def check_value(name: str, value) -> str | None:
    """Why `value` is not acceptable for parameter `name`, or None (checks a range in a
    descriptor cannot express)."""
    if name in CHOICES and value not in CHOICES[name]:
        return f'{name} must be one of {CHOICES[name]}, got {value!r}'
    if name == 'deterministic' and value != 'card' and not isinstance(value, bool):
        return f"deterministic must be true, false or 'card', got {value!r}"
    return None


def defaults(table: dict) -> dict:
    """{name: default} of the parameters that have one (unset-by-default arrays are left out)."""
    return {name: spec[0] for name, spec in table.items()
            if not isinstance(spec[0], Parameter.Type)}


NODES = {'loop': ('sim_node', 'policy_node'), 'policy': ('policy_node',), 'sim': ('sim_node',)}


@dataclass
class NodePlan:
    """How one node is started: parameter files and values in load order (later wins), and
    topic remappings (from, to)."""

    parameters: list = field(default_factory=list)
    remappings: list[tuple[str, str]] = field(default_factory=list)


def model_task(model: str | None) -> str | None:
    """The task named in a model folder's card, or None if it cannot be read (the policy node
    then refuses the folder with the reason; planning parameters must not)."""
    from rldt_ros.model_card import load_model_card
    from rldt_ros.model_card import ModelCardError
    try:
        return load_model_card(model, verify_files=False).task if model else None
    except ModelCardError:
        return None


def node_parameters(what: str, config: Path | str, model: str | None = None,
                    params_file: str | None = None, sim_params_file: str | None = None,
                    overrides: dict | None = None,
                    joint_states_topic: str | None = None) -> dict[str, NodePlan]:
    """{node: NodePlan} for `what` = 'loop' (sim + policy: policy.launch.py use_sim:=true,
    `rldt-ros run loop`), 'policy' (the robot: policy.launch.py) or 'sim' (sim.launch.py,
    `rldt-ros run sim`).

    The one source of both entry points' parameters, so they cannot drift apart. In the loop
    the sim node simulates the task named in the model card (the camera task renders the
    model's cameras) and runs the clock; `overrides` go to the policy node, and `controller`
    also to the sim node (they must agree on the command topic). `joint_states_topic` remaps
    the policy node's joint_states (e.g. a ros2_control joint_state_broadcaster's).
    """
    config = Path(config)
    use_sim = what == 'loop'
    overrides = dict(overrides or {})
    plan = {}
    if 'sim_node' in NODES[what]:
        sim = NodePlan([Path(sim_params_file or config / 'sim.yaml')])
        values = {}
        if use_sim:  # the loop runs on the sim's clock, in the model's world
            values['publish_clock'] = True
            task = model_task(model)
            if task:
                values['task'] = task
        if 'controller' in overrides:
            values['controller'] = overrides['controller']
        if values:
            sim.parameters.append(values)
        plan['sim_node'] = sim
    if 'policy_node' in NODES[what]:
        policy = NodePlan([Path(params_file or config / 'policy.yaml')])
        if use_sim:
            policy.parameters.append(config / 'policy_sim.yaml')
        values = {'model': str(model)} if model else {}
        if use_sim:
            values['use_sim_time'] = True
        values.update(overrides)
        if values:
            policy.parameters.append(values)
        if joint_states_topic:
            policy.remappings.append(('joint_states', joint_states_topic))
        plan['policy_node'] = policy
    return plan


# policy.launch.py arguments that become policy node parameters (launch gives strings; an
# empty one means: the parameter files decide).
LAUNCH_OVERRIDES = {'enable_control': bool, 'use_sim_time': bool, 'providers': str,
                    'controller': str, 'command_type': str}


def launch_plan(args: dict[str, str], config: Path | str) -> dict[str, NodePlan]:
    """node_parameters from policy.launch.py's arguments (kept here, without launch, so the
    mapping is tested where launch cannot be installed)."""
    overrides = {}
    for name, kind in LAUNCH_OVERRIDES.items():
        value = args.get(name, '')
        if value:
            overrides[name] = value.lower() == 'true' if kind is bool else value
    what = 'loop' if args.get('use_sim', '').lower() == 'true' else 'policy'
    return node_parameters(what, config, model=args.get('model') or None,
                           params_file=args.get('params_file') or None,
                           sim_params_file=args.get('sim_params_file') or None,
                           overrides=overrides,
                           joint_states_topic=args.get('joint_states_topic') or None)
