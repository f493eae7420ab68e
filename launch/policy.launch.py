"""Policy node (and, with use_sim:=true, the MuJoCo sim node) for ROS 2 Jazzy / Kilted.

    ros2 launch rldt_ros policy.launch.py model:=/path/to/models/NAME
    ros2 launch rldt_ros policy.launch.py model:=... use_sim:=true enable_control:=true

Without a ROS install, `rldt-ros run loop|policy` starts the same executables with the same
parameter files. With use_sim:=true the sim node publishes /clock and every node in this file
runs on sim time.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import GroupAction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.actions import PushROSNamespace
from launch_ros.actions import SetParameter
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    model = LaunchConfiguration('model')
    params_file = LaunchConfiguration('params_file')
    sim_params_file = LaunchConfiguration('sim_params_file')
    use_sim = LaunchConfiguration('use_sim')
    enable_control = LaunchConfiguration('enable_control')
    providers = LaunchConfiguration('providers')
    namespace = LaunchConfiguration('namespace')
    log_level = LaunchConfiguration('log_level')
    config = PathJoinSubstitution([FindPackageShare('rldt_ros'), 'config'])

    arguments = [
        DeclareLaunchArgument(
            'model', default_value=PathJoinSubstitution([FindPackageShare('rldt_ros'), 'models',
                                                         'cube_push']),
            description='Model folder (policy.onnx + policy.yaml); default: the shipped '
                        'cube_push model.'),
        DeclareLaunchArgument(
            'params_file', default_value=PathJoinSubstitution([config, 'policy.yaml']),
            description='ros__parameters YAML of the policy node.'),
        DeclareLaunchArgument(
            'sim_params_file', default_value=PathJoinSubstitution([config, 'sim.yaml']),
            description='ros__parameters YAML of the sim node (used with use_sim:=true).'),
        DeclareLaunchArgument('use_sim', default_value='false',
                              description='Start the MuJoCo sim node and run on its /clock.'),
        DeclareLaunchArgument(
            'enable_control', default_value='false',
            description='Publish on the controller topic (false: ~/debug/* only, a dry run).'),
        DeclareLaunchArgument('providers', default_value='auto',
                              description="ONNX Runtime providers: auto, cpu, cuda, tensorrt."),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of both nodes (topics are relative).'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='Log level of both nodes.'),
    ]

    sim_node = Node(
        package='rldt_ros', executable='sim_node', name='sim_node', output='screen',
        condition=IfCondition(use_sim),
        parameters=[sim_params_file, {'publish_clock': True}],
        arguments=['--ros-args', '--log-level', log_level])
    policy_node = Node(
        package='rldt_ros', executable='policy_node', name='policy_node', output='screen',
        parameters=[params_file, {
            'model': model,
            'providers': providers,
            'enable_control': ParameterValue(enable_control, value_type=bool),
        }],
        arguments=['--ros-args', '--log-level', log_level])

    return LaunchDescription(arguments + [GroupAction([
        PushROSNamespace(namespace),
        SetParameter(name='use_sim_time', value=use_sim),
        sim_node,
        policy_node,
    ])])
