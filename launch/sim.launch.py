"""MuJoCo simulation node alone (ROS 2 Jazzy / Kilted): joint_states, cameras, /clock, commands.

    ros2 launch rldt_ros sim.launch.py
    ros2 launch rldt_ros sim.launch.py params_file:=my_sim.yaml publish_clock:=true

Without a ROS install: `rldt-ros run sim [--sim-params FILE]` (the same parameter files, from
rldt_ros.parameters.node_parameters).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import GroupAction
from launch.actions import OpaqueFunction
from launch.actions import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.actions import PushROSNamespace
from launch_ros.substitutions import FindPackageShare

from rldt_ros.parameters import node_parameters


def _nodes(context):
    """The sim node, built once the launch arguments are known."""
    def arg(name):
        return LaunchConfiguration(name).perform(context)
    plan = node_parameters('sim', FindPackageShare('rldt_ros').perform(context) + '/config',
                           sim_params_file=arg('params_file') or None)
    sources = [str(s) if not isinstance(s, dict) else s for s in plan['sim_node'].parameters]
    sources.append({'publish_clock': arg('publish_clock').lower() == 'true'})
    node = Node(package='rldt_ros', executable='sim_node', name='sim_node', output='screen',
                parameters=sources, remappings=plan['sim_node'].remappings,
                ros_arguments=['--log-level', arg('log_level')],
                on_exit=Shutdown(reason='sim_node exited'))
    return [GroupAction([PushROSNamespace(arg('namespace')), node])]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value='',
            description='ros__parameters YAML of the sim node instead of config/sim.yaml '
                        '(task or mjcf, cameras, rates).'),
        DeclareLaunchArgument('publish_clock', default_value='false',
                              description='Publish /clock from sim time (for use_sim_time).'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of the sim node (topics are relative).'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='Log level of the sim node.'),
        OpaqueFunction(function=_nodes),
    ])
