"""Policy node (and, with use_sim:=true, the MuJoCo sim node) for ROS 2 Jazzy / Kilted.

    ros2 launch rldt_ros policy.launch.py use_sim:=true          # shipped model, MuJoCo sim
    ros2 launch rldt_ros policy.launch.py model:=/path/to/models/NAME
    ros2 launch rldt_ros policy.launch.py model:=... enable_control:=true
    ros2 launch rldt_ros policy.launch.py model:=... params_file:=my_robot.yaml \
        controller:=joint_trajectory_controller command_type:=joint_trajectory \
        use_sim_time:=true                                      # ros2_control / Gazebo

Parameter files, values and remappings come from rldt_ros.parameters.launch_plan, that is
node_parameters, the function `rldt-ros run loop|policy` uses too, so both start the same
parameters: config/policy.yaml, plus config/policy_sim.yaml with use_sim:=true (control
enabled, sim time, the sim simulating the model card's task). A node that exits (e.g. a model
that fails its checks) shuts the whole launch down.
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

from rldt_ros.parameters import launch_plan


ARGUMENTS = ('model', 'params_file', 'sim_params_file', 'use_sim', 'enable_control',
             'providers', 'controller', 'command_type', 'joint_states_topic', 'use_sim_time',
             'namespace', 'log_level')


def _nodes(context):
    """The nodes, built once the launch arguments are known."""
    args = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    plan = launch_plan(args, FindPackageShare('rldt_ros').perform(context) + '/config')
    nodes = [Node(package='rldt_ros', executable=name, name=name, output='screen',
                  parameters=[str(s) if not isinstance(s, dict) else s
                              for s in node.parameters],
                  remappings=node.remappings,
                  ros_arguments=['--log-level', args['log_level']],
                  on_exit=Shutdown(reason=f'{name} exited'))
             for name, node in plan.items()]
    return [GroupAction([PushROSNamespace(args['namespace'])] + nodes)]


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
        DeclareLaunchArgument(
            'controller', default_value='',
            description='ros2_control controller whose topic takes the commands, e.g. '
                        'forward_position_controller or joint_trajectory_controller (empty: the '
                        'parameter files decide).'),
        DeclareLaunchArgument(
            'command_type', default_value='',
            description='commands (Float64MultiArray, forward_command_controller) or '
                        'joint_trajectory (JointTrajectory, joint_trajectory_controller); '
                        'empty: the parameter files decide.'),
        DeclareLaunchArgument(
            'joint_states_topic', default_value='',
            description='Remap joint_states, e.g. /joint_states of a joint_state_broadcaster '
                        'when the nodes run in a namespace (empty: no remapping).'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='',
            description='true: the policy node runs on /clock (Gazebo); empty: the parameter '
                        'files decide (true with use_sim:=true).'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of both nodes (topics are relative).'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='Log level of both nodes.'),
        OpaqueFunction(function=_nodes),
    ])
