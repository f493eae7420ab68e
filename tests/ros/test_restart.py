"""Where control (re)starts from, and that it does not restart by itself (docs/architecture.md 5).

The probe plays a robot STANDING STILL 0.5 rad from where the policy wants it: the model's
actions are the measured joint positions + 0.5, so a node that resumes from its own last
command (or sends its first action unlimited) jumps 0.5 rad from the arm; one anchored on the
measured arm moves at most max_delta_per_tick (0.1) on its first command.
"""
import time

import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_msgs.msg import String
from std_srvs.srv import Trigger

from conftest import CUBE_JOINTS
from conftest import make_model

COMMANDS = '/forward_position_controller/commands'
CAP = 0.1
ARM = np.array([0.3, -0.45, 0.6, 0.0])  # where the arm stands (shoulder, elbow, wrist, gripper)
FAST = ['-p', 'diagnostics_period_s:=0.1', '-p', 'max_obs_age_s:=0.2',
        '-p', 'starvation_grace_s:=0.3', '-p', f'max_delta_per_tick:={CAP}']


class StandingRobot:
    """joint_states at 50 Hz of an arm that does not move; `publishing` can be switched off."""

    def __init__(self, probe):
        self.publishing = True
        positions = np.r_[ARM, 0.1, 0.2, 0.0].tolist()

        def make():
            if not self.publishing:
                return None
            return JointState(name=list(CUBE_JOINTS), position=positions,
                              velocity=[0.0] * len(CUBE_JOINTS))
        probe.publish_at(JointState, '/joint_states', 50.0, make)


def _start(tmp_path, probe, procs, *extra):
    folder = make_model(tmp_path / 'model', bias=0.5)
    commands = probe.record(Float64MultiArray, COMMANDS)
    probe.record(String, '/policy_node/stats')
    robot = StandingRobot(probe)
    procs.start('run', 'policy', '--model', str(folder), '--', *FAST, *extra)
    return commands, robot


def _jump(msg) -> float:
    """Largest |command - measured arm position| of one command."""
    return float(np.max(np.abs(np.array(msg.data) - ARM)))


def _commands_after(probe, commands, t: float, n: int, what: str) -> list:
    probe.wait_for(lambda: sum(1 for s, _ in commands if s > t) >= n, 10, what)
    with probe.lock:
        return [m for s, m in commands if s > t]


def test_first_command_moves_at_most_the_cap_from_the_measured_arm(tmp_path, probe, procs,
                                                                  record_property):
    commands, _ = _start(tmp_path, probe, procs, '-p', 'enable_control:=true')
    after = _commands_after(probe, commands, 0.0, 8, 'commands')
    jumps = [_jump(m) for m in after]
    record_property('first_command_jump_rad', round(jumps[0], 4))
    assert jumps[0] <= CAP + 1e-9, jumps[:3]
    # Then it ramps by at most the cap per tick, up to the policy's target (arm + 0.5).
    steps = np.abs(np.diff(np.array([m.data for m in after]), axis=0))
    assert np.all(steps <= CAP + 1e-9)
    assert abs(after[-1].data[0] - (ARM[0] + 0.5)) < 1e-6


def test_stale_stop_stays_stopped_until_rearm_then_ramps_from_the_arm(tmp_path, probe, procs,
                                                                      record_property):
    commands, robot = _start(tmp_path, probe, procs, '-p', 'enable_control:=true')
    probe.wait_for(lambda: commands and abs(commands[-1][1].data[0] - ARM[0] - 0.5) < 1e-6,
                   20, 'commands at the policy target, 0.5 rad from the arm')
    robot.publishing = False
    time.sleep(1.0)  # > max_obs_age_s + starvation_grace_s: stopped
    robot.publishing = True
    back = time.monotonic()
    time.sleep(1.0)
    with probe.lock:
        resumed = [s - back for s, _ in commands if s > back]
    record_property('commands_without_rearm', len(resumed))
    assert not resumed, f'restarted by itself {resumed[0]:.3f} s after data returned'
    stats = probe.stats()[-1]
    assert stats['level'] == 2 and '~/rearm' in stats['message'] and stats['rearm_needed']

    rearmed = time.monotonic()  # before the call: its first command may beat the answer
    assert probe.call(Trigger, '/policy_node/rearm').success
    after = _commands_after(probe, commands, rearmed, 3, 'commands after ~/rearm')
    record_property('first_command_after_rearm_jump_rad', round(_jump(after[0]), 4))
    assert _jump(after[0]) <= CAP + 1e-9, [_jump(m) for m in after]


def test_auto_resume_restarts_by_itself_from_the_arm(tmp_path, probe, procs, record_property):
    commands, robot = _start(tmp_path, probe, procs, '-p', 'enable_control:=true',
                             '-p', 'auto_resume:=true')
    probe.wait_for(lambda: commands and abs(commands[-1][1].data[0] - ARM[0] - 0.5) < 1e-6,
                   20, 'commands at the policy target')
    robot.publishing = False
    time.sleep(1.0)
    robot.publishing = True
    back = time.monotonic()
    after = _commands_after(probe, commands, back, 3, 'commands after data returned')
    record_property('first_command_after_resume_jump_rad', round(_jump(after[0]), 4))
    assert _jump(after[0]) <= CAP + 1e-9


def test_estop_reset_and_reenabling_ramp_from_the_arm(tmp_path, probe, procs, record_property):
    commands, _ = _start(tmp_path, probe, procs, '-p', 'enable_control:=true')
    probe.wait_for(lambda: commands and abs(commands[-1][1].data[0] - ARM[0] - 0.5) < 1e-6,
                   20, 'commands at the policy target')
    assert probe.call(Trigger, '/policy_node/estop').success
    time.sleep(0.3)
    assert not probe.call(Trigger, '/policy_node/rearm').success  # e-stop needs its own reset
    reset = time.monotonic()
    assert probe.call(Trigger, '/policy_node/reset_estop').success
    after = _commands_after(probe, commands, reset, 3, 'commands after ~/reset_estop')
    record_property('first_command_after_estop_reset_jump_rad', round(_jump(after[0]), 4))
    assert _jump(after[0]) <= CAP + 1e-9

    probe.wait_for(lambda: abs(commands[-1][1].data[0] - ARM[0] - 0.5) < 1e-6, 5,
                   'commands back at the policy target')
    assert probe.set_parameters('policy_node', enable_control=False)[0].successful
    time.sleep(0.5)  # the dry run goes on (debug topic), its commands ramp away from the arm
    enabled = time.monotonic()
    assert probe.set_parameters('policy_node', enable_control=True)[0].successful
    after = _commands_after(probe, commands, enabled, 3, 'commands after re-enabling')
    record_property('first_command_after_enable_jump_rad', round(_jump(after[0]), 4))
    assert _jump(after[0]) <= CAP + 1e-9


def test_max_delta_cannot_be_raised_while_enabled_nor_beyond_its_bound(tmp_path, probe, procs):
    commands, _ = _start(tmp_path, probe, procs, '-p', 'enable_control:=true')
    probe.wait_for(lambda: len(commands) >= 3, 20, 'commands')
    raised = probe.set_parameters('policy_node', max_delta_per_tick=0.5)[0]
    assert not raised.successful and 'enable_control' in raised.reason
    assert probe.set_parameters('policy_node', max_delta_per_tick=0.05)[0].successful
    assert probe.set_parameters('policy_node', enable_control=False)[0].successful
    assert not probe.set_parameters('policy_node', max_delta_per_tick=100.0)[0].successful
    assert probe.set_parameters('policy_node', max_delta_per_tick=0.5)[0].successful
    assert probe.get_parameters('policy_node', ['max_delta_per_tick']) == {
        'max_delta_per_tick': 0.5}
