"""One parameter source: in-code defaults equal config/policy.yaml and config/sim.yaml, the sim
overlay holds only differences, and `rldt-ros run` and policy.launch.py take their parameter
files from the same function (the launch file itself needs ROS launch, which CI lacks: it is
checked by reading its source)."""
import ast
from pathlib import Path

import pytest

from rldt_ros import cli
from rldt_ros.parameters import check_value
from rldt_ros.parameters import defaults
from rldt_ros.parameters import LAUNCH_OVERRIDES
from rldt_ros.parameters import launch_plan
from rldt_ros.parameters import NodePlan
from rldt_ros.parameters import node_parameters
from rldt_ros.parameters import POLICY_PARAMETERS
from rldt_ros.parameters import SIM_PARAMETERS
from rldt_ros.safe_yaml import load_yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'config'


def _params(name: str, node: str) -> dict:
    return load_yaml(CONFIG / name)[node]['ros__parameters']


@pytest.mark.parametrize('table, file, node', [
    (POLICY_PARAMETERS, 'policy.yaml', 'policy_node'),
    (SIM_PARAMETERS, 'sim.yaml', 'sim_node'),
])
def test_in_code_defaults_equal_the_parameter_file(table, file, node):
    assert _params(file, node) == defaults(table)


def test_sim_overlay_holds_only_differences():
    overlay = _params('policy_sim.yaml', 'policy_node')
    base = defaults(POLICY_PARAMETERS)
    assert set(overlay) <= set(base)
    assert all(overlay[k] != base[k] for k in overlay), 'an overlay entry equals the default'
    assert overlay == {'enable_control': True, 'max_delta_per_tick': 1.0, 'auto_resume': True,
                       'max_joint_velocity': 30.0, 'episode_topic': 'sim_node/episode'}
    assert set(load_yaml(CONFIG / 'policy_sim.yaml')) == {'policy_node'}


def test_robot_defaults_are_safe():
    base = defaults(POLICY_PARAMETERS)
    assert base['enable_control'] is False and base['auto_resume'] is False
    assert base['max_delta_per_tick'] <= 0.1 and base['staleness_clock'] == 'receive'


@pytest.mark.parametrize('name, value, ok', [
    ('command_type', 'joint_trajectory', True), ('command_type', 'velocity', False),
    ('blending', 'ensemble', True), ('blending', 'avg', False),
    ('staleness_clock', 'stamp', True), ('staleness_clock', 'header', False),
    ('deterministic', 'card', True), ('deterministic', True, True),
    ('deterministic', 'yes', False), ('deterministic', 1, False),
])
def test_choice_parameters_are_checked(name, value, ok):
    assert (check_value(name, value) is None) == ok


def test_loop_plan_loads_the_sim_overlay_after_the_robot_defaults():
    plan = node_parameters('loop', CONFIG, model='/m')
    assert plan == {
        'sim_node': NodePlan([CONFIG / 'sim.yaml', {'publish_clock': True}]),
        'policy_node': NodePlan([CONFIG / 'policy.yaml', CONFIG / 'policy_sim.yaml',
                                 {'model': '/m', 'use_sim_time': True}]),
    }
    assert node_parameters('policy', CONFIG, model='/m') == {
        'policy_node': NodePlan([CONFIG / 'policy.yaml', {'model': '/m'}])}
    assert node_parameters('sim', CONFIG) == {'sim_node': NodePlan([CONFIG / 'sim.yaml'])}


@pytest.mark.parametrize('model, task', [('cube_push', 'cube_push'),
                                         ('cube_push_vision', 'cube_push_vision')])
def test_the_loop_simulates_the_task_named_in_the_model_card(model, task):
    """`rldt-ros run loop --model models/cube_push_vision` must render the model's cameras: the
    sim node gets the card's task (whose class declares them) after its parameter file."""
    plan = node_parameters('loop', CONFIG, model=str(REPO / 'models' / model))
    assert plan['sim_node'].parameters == [CONFIG / 'sim.yaml',
                                           {'publish_clock': True, 'task': task}]


def test_ros2_control_arguments_become_parameters_and_a_remapping():
    """The launch argument set for a ros2_control robot: the controller (on both nodes of a
    loop, which must agree on the topic), the message type, sim time, and joint_states from
    the joint_state_broadcaster."""
    overrides = {'controller': 'joint_trajectory_controller',
                 'command_type': 'joint_trajectory', 'use_sim_time': True}
    plan = node_parameters('policy', CONFIG, model='/m', overrides=overrides,
                           joint_states_topic='/joint_states')
    assert plan['policy_node'] == NodePlan(
        [CONFIG / 'policy.yaml', {'model': '/m', **overrides}],
        [('joint_states', '/joint_states')])
    loop = node_parameters('loop', CONFIG, model='/m', overrides={'controller': 'arm'})
    assert loop['sim_node'].parameters[-1] == {'publish_clock': True, 'controller': 'arm'}
    assert loop['policy_node'].parameters[-1]['controller'] == 'arm'


def _command_sources(cmd: list[str]) -> list:
    """Parameter files and -p values of one `rldt-ros run` child, in order."""
    sources, i = [], cmd.index('--ros-args') + 1
    while i < len(cmd):
        if cmd[i] == '--params-file':
            sources.append(Path(cmd[i + 1]))
        elif cmd[i] == '-p':
            name, value = cmd[i + 1].split(':=')
            sources.append((name, value))
        i += 2
    return sources


@pytest.mark.parametrize('what', ['loop', 'policy', 'sim'])
def test_rldt_ros_run_starts_exactly_the_planned_parameters(what):
    plan = node_parameters(what, cli.config_dir(), model=str(Path('models/x').resolve()))
    commands = cli.node_commands(what, 'models/x', [])
    assert [c[2] for c in commands] == [f'rldt_ros.{node}' for node in plan]
    for cmd, node_plan in zip(commands, plan.values()):
        expected = []
        for source in node_plan.parameters:
            if isinstance(source, dict):
                expected += [(k, str(v).lower() if isinstance(v, bool) else str(v))
                             for k, v in source.items()]
            else:
                expected.append(source)
        assert _command_sources(cmd) == expected


def _launch_calls(name: str) -> dict[str, list[ast.Call]]:
    tree = ast.parse((REPO / 'launch' / name).read_text())
    calls: dict[str, list[ast.Call]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func.id if isinstance(node.func, ast.Name) else getattr(
                node.func, 'attr', '')
            calls.setdefault(func, []).append(node)
    return calls


@pytest.mark.parametrize('name, planner', [('policy.launch.py', 'launch_plan'),
                                           ('sim.launch.py', 'node_parameters')])
def test_launch_files_use_the_same_plan_shut_down_on_exit_and_ros_arguments(name, planner):
    calls = _launch_calls(name)
    plan_calls = calls[planner]
    assert len(plan_calls) == 1
    if planner == 'node_parameters':
        assert ast.literal_eval(plan_calls[0].args[0]) == 'sim'
    for node in calls['Node']:
        keywords = {k.arg: k.value for k in node.keywords}
        assert 'ros_arguments' in keywords and 'arguments' not in keywords
        assert 'remappings' in keywords
        assert isinstance(keywords['on_exit'], ast.Call) and \
            keywords['on_exit'].func.id == 'Shutdown'
    assert 'OpaqueFunction' in calls
    source = (REPO / 'launch' / name).read_text()
    assert "'--ros-args'" not in source and 'SetParameter(' not in source


def test_policy_launch_declares_every_argument_it_reads():
    tree = ast.parse((REPO / 'launch' / 'policy.launch.py').read_text())
    read = next(ast.literal_eval(n.value) for n in ast.walk(tree)
                if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') == 'ARGUMENTS')
    declared = [ast.literal_eval(c.args[0]) for c in _launch_calls('policy.launch.py')[
        'DeclareLaunchArgument']]
    assert sorted(declared) == sorted(read)
    assert set(LAUNCH_OVERRIDES) <= set(read)


def test_ros2_control_launch_arguments_plan_parameters_and_remapping():
    """`policy.launch.py controller:=joint_trajectory_controller command_type:=joint_trajectory
    joint_states_topic:=/joint_states use_sim_time:=true` (the ros2_control / Gazebo recipe),
    with launch's strings; empty arguments leave the parameter files in charge."""
    args = {'model': '/m', 'params_file': '', 'sim_params_file': '', 'use_sim': 'false',
            'enable_control': '', 'providers': '', 'controller': 'joint_trajectory_controller',
            'command_type': 'joint_trajectory', 'joint_states_topic': '/joint_states',
            'use_sim_time': 'true', 'namespace': 'arm', 'log_level': 'info'}
    assert launch_plan(args, CONFIG) == {'policy_node': NodePlan(
        [CONFIG / 'policy.yaml', {'model': '/m', 'use_sim_time': True,
                                  'controller': 'joint_trajectory_controller',
                                  'command_type': 'joint_trajectory'}],
        [('joint_states', '/joint_states')])}
    bare = {k: '' for k in args} | {'model': '/m', 'use_sim': 'true'}
    assert launch_plan(bare, CONFIG) == node_parameters('loop', CONFIG, model='/m')
