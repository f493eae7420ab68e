"""MuJoCo simulation node alone (ROS 2 Jazzy / Kilted): joint_states, cameras, /clock, commands.

    ros2 launch rldt_ros sim.launch.py
    ros2 launch rldt_ros sim.launch.py params_file:=my_sim.yaml publish_clock:=true

Without a ROS install: `rldt-ros run sim [--params FILE]`.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import GroupAction
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.actions import PushROSNamespace
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    params_file = LaunchConfiguration('params_file')
    publish_clock = LaunchConfiguration('publish_clock')
    namespace = LaunchConfiguration('namespace')
    log_level = LaunchConfiguration('log_level')

    arguments = [
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([FindPackageShare('rldt_ros'), 'config',
                                                'sim.yaml']),
            description='ros__parameters YAML of the sim node (task or mjcf, cameras, rates).'),
        DeclareLaunchArgument('publish_clock', default_value='false',
                              description='Publish /clock from sim time (for use_sim_time).'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of the sim node (topics are relative).'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='Log level of the sim node.'),
    ]
    sim_node = Node(
        package='rldt_ros', executable='sim_node', name='sim_node', output='screen',
        parameters=[params_file,
                    {'publish_clock': ParameterValue(publish_clock, value_type=bool)}],
        arguments=['--ros-args', '--log-level', log_level])

    return LaunchDescription(arguments + [GroupAction([PushROSNamespace(namespace), sim_node])])
