"""The policy node against ros2_control's controllers, as far as they can be checked here.

ros2_control, its controllers and Gazebo cannot be installed from any registry on this
machine, so the controllers are represented by their message contracts, read from the public
ros2_controllers sources (forward_command_controller/src/forward_controllers_base.cpp,
joint_trajectory_controller/src/joint_trajectory_controller.cpp, validate_trajectory_msg):
- ForwardCommandController subscribes `<controller>/commands` (std_msgs/Float64MultiArray,
  SystemDefaultsQoS = reliable, volatile) and silently ignores a message whose length is not
  the number of its `joints`; value i goes to joints[i].
- JointTrajectoryController subscribes `<controller>/joint_trajectory`
  (trajectory_msgs/JointTrajectory, SystemDefaultsQoS) and rejects, among others: empty
  joint_names or points, a joint it does not have, fewer joints than it has (unless
  allow_partial_joints_goal), time_from_start not strictly increasing, a position vector of
  another length, a non-zero velocity at the last point, a start stamp that ends in the past.
The example controllers file (config/ros2_controllers.yaml) gives the joints; the node runs
with the ros2_control launch argument set (controller, command_type, joint_states remapped
from the broadcaster's topic) and the joints in the controller's order.
"""
import time

import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from conftest import CUBE_JOINTS
from conftest import make_model
from conftest import REPO
from rldt_ros.safe_yaml import load_yaml

CONTROLLERS = load_yaml(REPO / 'config' / 'ros2_controllers.yaml')
BIAS = 0.01  # the test model commands every joint to its measured position + BIAS
POSITIONS = {'shoulder': 0.3, 'elbow': -0.4, 'wrist': 0.5, 'gripper': 0.01, 'cube_x': 0.3,
             'cube_y': 0.0, 'cube_yaw': 0.0}


def _contract_problems_forward(msg: Float64MultiArray, joints: list[str]) -> list[str]:
    return [] if len(msg.data) == len(joints) else [f'{len(msg.data)} values for {joints}']


def _contract_problems_trajectory(msg: JointTrajectory, joints: list[str]) -> list[str]:
    problems = []
    if not msg.joint_names or not msg.points:
        problems.append('empty joint_names or points')
    if sorted(msg.joint_names) != sorted(joints):
        problems.append(f'joints {list(msg.joint_names)} are not the controller joints')
    if msg.header.stamp.sec or msg.header.stamp.nanosec:
        problems.append('a start stamp (the controller then may reject it as in the past)')
    times = [p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in msg.points]
    if any(b <= a for a, b in zip(times, times[1:])) or (times and times[0] <= 0):
        problems.append(f'time_from_start not strictly increasing from > 0: {times}')
    for point in msg.points:
        if len(point.positions) != len(msg.joint_names):
            problems.append(f'{len(point.positions)} positions for {len(msg.joint_names)}')
    if msg.points and any(abs(v) > 0 for v in msg.points[-1].velocities):
        problems.append('non-zero velocity at the last point')
    return problems


@pytest.mark.parametrize('controller, command_type, msg_type', [
    ('forward_position_controller', 'commands', Float64MultiArray),
    ('joint_trajectory_controller', 'joint_trajectory', JointTrajectory),
])
def test_commands_meet_the_controller_contract_with_the_ros2_control_arguments(
        controller, command_type, msg_type, tmp_path, probe, procs, record_property):
    params = CONTROLLERS[controller]['ros__parameters']
    # The controller's joints in another order than the model's, as a robot may list them.
    joints = list(reversed(params['joints']))
    assert sorted(joints) == sorted(CUBE_JOINTS[:4])
    folder = make_model(tmp_path / 'model', bias=BIAS)
    commands = probe.record(msg_type, f'/{controller}/{command_type}')
    names = list(CUBE_JOINTS)

    def state():
        return JointState(name=names, position=[POSITIONS[n] for n in names],
                          velocity=[0.0] * len(names))
    # The broadcaster's topic is not the node's joint_states: found only through the remap
    # that policy.launch.py joint_states_topic:= plans (node_parameters).
    probe.publish_at(JointState, '/robot1/joint_states', 50.0, state)
    procs.start('run', 'policy', '--model', str(folder), '--', '-p', 'enable_control:=true',
                '-p', f'controller:={controller}', '-p', f'command_type:={command_type}',
                '-p', f'joint_names:=[{",".join(joints)}]',
                '-r', 'joint_states:=/robot1/joint_states')
    probe.wait_for(lambda: len(commands) >= 10, 20, f'{command_type} on /{controller}')
    time.sleep(0.3)
    with probe.lock:
        messages = [m for _, m in commands]
    publishers = probe.node.get_publishers_info_by_topic(f'/{controller}/{command_type}')
    assert [p.node_name for p in publishers] == ['policy_node']
    qos = publishers[0].qos_profile
    assert qos.reliability == ReliabilityPolicy.RELIABLE  # SystemDefaultsQoS subscriber
    assert qos.durability == DurabilityPolicy.VOLATILE
    expected = np.array([POSITIONS[j] + BIAS for j in joints])
    for msg in messages:
        if command_type == 'commands':
            assert _contract_problems_forward(msg, joints) == []
            np.testing.assert_allclose(msg.data, expected, atol=1e-6)
        else:
            assert _contract_problems_trajectory(msg, params['joints']) == []
            assert list(msg.joint_names) == joints
            np.testing.assert_allclose(msg.points[0].positions, expected, atol=1e-6)
    record_property('messages_checked', len(messages))


def test_the_contract_checks_catch_what_the_controllers_reject():
    """The two contract checks above must be able to fail."""
    joints = ['a', 'b']
    assert _contract_problems_forward(Float64MultiArray(data=[1.0]), joints)
    partial = JointTrajectory(joint_names=['a'])
    assert _contract_problems_trajectory(partial, joints)
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectoryPoint
    late = JointTrajectory(joint_names=joints, points=[
        JointTrajectoryPoint(positions=[0.0, 0.0], time_from_start=Duration(nanosec=10)),
        JointTrajectoryPoint(positions=[0.0, 0.0], velocities=[0.1, 0.0],
                             time_from_start=Duration(nanosec=5))])
    problems = _contract_problems_trajectory(late, joints)
    assert any('increasing' in p for p in problems) and any('velocity' in p for p in problems)
