"""Policy node (and, with use_sim:=true, the MuJoCo sim node) for ROS 2 Jazzy / Kilted.

    ros2 launch rldt_ros policy.launch.py use_sim:=true          # shipped model, MuJoCo sim
    ros2 launch rldt_ros policy.launch.py model:=/path/to/models/NAME
    ros2 launch rldt_ros policy.launch.py model:=... enable_control:=true

Parameter files and values come from rldt_ros.parameters.node_parameters, the function
`rldt-ros run loop|policy` uses too, so both start the same parameters: config/policy.yaml,
plus config/policy_sim.yaml with use_sim:=true (control enabled, sim time). A node that exits
(e.g. a model that fails its checks) shuts the whole launch down.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import GroupAction
from launch.actions import OpaqueFunction
from launch.actions import Shutdown
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.actions import PushROSNamespace
from launch_ros.substitutions import FindPackageShare

from rldt_ros.parameters import node_parameters


def _nodes(context):
    """The nodes, built once the launch arguments are known."""
    def arg(name):
        return LaunchConfiguration(name).perform(context)
    overrides = {}
    if arg('enable_control'):  # empty: the parameter files decide
        overrides['enable_control'] = arg('enable_control').lower() == 'true'
    if arg('providers'):
        overrides['providers'] = arg('providers')
    what = 'loop' if arg('use_sim').lower() == 'true' else 'policy'
    plan = node_parameters(
        what, FindPackageShare('rldt_ros').perform(context) + '/config', model=arg('model'),
        params_file=arg('params_file') or None, sim_params_file=arg('sim_params_file') or None,
        overrides=overrides)
    nodes = [Node(package='rldt_ros', executable=name, name=name, output='screen',
                  parameters=[str(s) if not isinstance(s, dict) else s for s in sources],
                  ros_arguments=['--log-level', arg('log_level')],
                  on_exit=Shutdown(reason=f'{name} exited'))
             for name, sources in plan.items()]
    return [GroupAction([PushROSNamespace(arg('namespace'))] + nodes)]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            'model', default_value=PathJoinSubstitution([FindPackageShare('rldt_ros'), 'models',
                                                         'cube_push']),
            description='Model folder (policy.onnx + policy.yaml); default: the shipped '
                        'cube_push model.'),
        DeclareLaunchArgument(
            'params_file', default_value='',
            description='ros__parameters YAML of the policy node instead of config/policy.yaml '
                        '(use_sim:=true loads config/policy_sim.yaml after it).'),
        DeclareLaunchArgument(
            'sim_params_file', default_value='',
            description='ros__parameters YAML of the sim node instead of config/sim.yaml.'),
        DeclareLaunchArgument('use_sim', default_value='false',
                              description='Start the MuJoCo sim node and run on its /clock.'),
        DeclareLaunchArgument(
            'enable_control', default_value='',
            description='true: publish on the controller topic; false: ~/debug/* only (a dry '
                        'run); empty: the parameter files decide (false on a robot, true in '
                        'simulation).'),
        DeclareLaunchArgument('providers', default_value='',
                              description='ONNX Runtime providers: auto, cpu, cuda, tensorrt '
                                          '(empty: the parameter files decide).'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of both nodes (topics are relative).'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='Log level of both nodes.'),
        OpaqueFunction(function=_nodes),
    ])
