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
                       'max_joint_velocity': 30.0}
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
        'sim_node': [CONFIG / 'sim.yaml', {'publish_clock': True}],
        'policy_node': [CONFIG / 'policy.yaml', CONFIG / 'policy_sim.yaml',
                        {'model': '/m', 'use_sim_time': True}],
    }
    assert node_parameters('policy', CONFIG, model='/m') == {
        'policy_node': [CONFIG / 'policy.yaml', {'model': '/m'}]}
    assert node_parameters('sim', CONFIG) == {'sim_node': [CONFIG / 'sim.yaml']}


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
    for cmd, sources in zip(commands, plan.values()):
        expected = []
        for source in sources:
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


@pytest.mark.parametrize('name, what', [('policy.launch.py', None), ('sim.launch.py', 'sim')])
def test_launch_files_use_the_same_plan_shut_down_on_exit_and_ros_arguments(name, what):
    calls = _launch_calls(name)
    plan_calls = calls['node_parameters']
    assert len(plan_calls) == 1
    if what:
        assert ast.literal_eval(plan_calls[0].args[0]) == what
    for node in calls['Node']:
        keywords = {k.arg: k.value for k in node.keywords}
        assert 'ros_arguments' in keywords and 'arguments' not in keywords
        assert isinstance(keywords['on_exit'], ast.Call) and \
            keywords['on_exit'].func.id == 'Shutdown'
    assert 'OpaqueFunction' in calls
    source = (REPO / 'launch' / name).read_text()
    assert "'--ros-args'" not in source and 'SetParameter(' not in source
