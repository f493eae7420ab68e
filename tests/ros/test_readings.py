"""Joint readings that cannot be true, and stamp-based staleness, in a real node over DDS.

The probe plays the robot (a slowly moving arm, so every fresh command differs from the last).
After a bad reading the node must not move towards it: it repeats its last command (hold),
then stops, and /diagnostics says ERROR naming the joint.
"""
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_msgs.msg import Header
from std_msgs.msg import String

from conftest import CUBE_JOINTS
from conftest import make_model

COMMANDS = '/forward_position_controller/commands'
FAST = ['-p', 'enable_control:=true', '-p', 'diagnostics_period_s:=0.1',
        '-p', 'max_obs_age_s:=0.2', '-p', 'starvation_grace_s:=0.3']
TICK_S = 0.05


class Robot:
    """joint_states at 50 Hz; `fault(message_fields)` replaces the next messages' content."""

    def __init__(self, probe, stamp=None):
        self.positions = np.zeros(len(CUBE_JOINTS))
        self.override = None
        self.stamp = stamp  # callable -> builtin_interfaces/Time, or None (unstamped)
        probe.publish_at(JointState, '/joint_states', 50.0, self._make)

    def _make(self):
        self.positions[0] += 0.002
        msg = JointState(name=list(CUBE_JOINTS), position=self.positions.tolist(),
                         velocity=[0.0] * len(CUBE_JOINTS))
        if self.stamp is not None:
            msg.header = Header(stamp=self.stamp())
        if self.override is not None:
            for field, value in self.override.items():
                setattr(msg, field, value)
        return msg


def _bad(case):
    names, pos, vel = list(CUBE_JOINTS), [0.0] * 7, [0.0] * 7
    if case == 'elbow at 10 rad':
        pos[1] = 10.0
    elif case == 'elbow at 1e30':
        pos[1] = 1e30
    elif case == 'elbow at 1e308 (inf in float32)':
        pos[1] = 1e308
    elif case == 'elbow velocity 1e3 rad/s':
        vel[1] = 1e3
    elif case == 'elbow named twice':
        names, pos, vel = names + ['elbow'], pos + [2.0], vel + [0.0]
    return {'name': names, 'position': pos, 'velocity': vel}


@pytest.mark.parametrize('case', ['elbow at 10 rad', 'elbow at 1e30',
                                  'elbow at 1e308 (inf in float32)', 'elbow velocity 1e3 rad/s',
                                  'elbow named twice'])
def test_implausible_reading_holds_then_stops_with_an_error_naming_the_joint(
        case, tmp_path, probe, procs, record_property):
    folder = make_model(tmp_path / 'model')
    commands = probe.record(Float64MultiArray, COMMANDS)
    probe.record(String, '/policy_node/stats')
    robot = Robot(probe)
    procs.start('run', 'policy', '--model', str(folder), '--', *FAST)
    probe.wait_for(lambda: len(commands) >= 10, 20, 'commands')
    robot.override = _bad(case)
    injected = time.monotonic()
    message = probe.wait_for(
        lambda: any(st['level'] == 2 and 'elbow' in st['message'] for st in probe.stats()),
        3, 'ERROR naming the elbow') and probe.stats()[-1]['message']
    record_property('diagnostics', message)
    time.sleep(1.0)
    with probe.lock:
        before = [m.data for t, m in commands if t <= injected]
        after = [(t - injected, m.data) for t, m in commands if t > injected]
    # Nothing moves towards the bad reading: the held command is the last one before it (one
    # command may have been on its way), and the node is silent after the grace period.
    allowed = {tuple(before[-1]), tuple(before[-2])}
    assert all(tuple(data) in allowed for _, data in after), after[:3]
    last = after[-1][0] if after else 0.0
    record_property('bad_reading_to_last_command_s', round(last, 3))
    assert last <= 0.3 + 4 * TICK_S
    stats = probe.stats()[-1]
    assert stats['level'] == 2 and 'elbow' in stats['message'] and stats['mode'] == 'stop'


def _stamp(probe, offset_s):
    ns = probe.node.get_clock().now().nanoseconds + int(offset_s * 1e9)
    return Time(sec=ns // 10**9, nanosec=ns % 10**9)


@pytest.mark.parametrize('offset_s, expected', [(-3600.0, 'stale'), (10.0, 'future')])
def test_stamp_staleness_rejects_old_and_future_stamps(offset_s, expected, tmp_path, probe,
                                                       procs, record_property):
    folder = make_model(tmp_path / 'model')
    commands = probe.record(Float64MultiArray, COMMANDS)
    probe.record(String, '/policy_node/stats')
    robot = Robot(probe, stamp=lambda: _stamp(probe, offset_s))
    procs.start('run', 'policy', '--model', str(folder), '--', *FAST,
                '-p', 'staleness_clock:=stamp', '-p', 'stamp_tolerance_s:=0.05')
    message = probe.wait_for(
        lambda: probe.stats() and expected in probe.stats()[-1]['message']
        and probe.stats()[-1]['message'], 20, f'diagnostics saying {expected}')
    record_property('diagnostics', message)
    time.sleep(0.5)
    assert not commands, f'{len(commands)} commands from {offset_s} s stamped data'
    robot.stamp = lambda: _stamp(probe, 0.0)  # clocks right again
    probe.wait_for(lambda: len(commands) >= 5, 5, 'commands from freshly stamped data')


def test_unstamped_messages_fall_back_to_receive_time(tmp_path, probe, procs):
    folder = make_model(tmp_path / 'model')
    commands = probe.record(Float64MultiArray, COMMANDS)
    Robot(probe, stamp=None)
    procs.start('run', 'policy', '--model', str(folder), '--', *FAST,
                '-p', 'staleness_clock:=stamp')
    probe.wait_for(lambda: len(commands) >= 5, 20, 'commands from unstamped joint_states')
