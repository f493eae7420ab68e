"""Fault behaviour of the policy node in real processes over real DDS (docs/architecture.md 5).

The probe plays the robot: it publishes joint_states (and images) and records the commands.
Timing bounds are max_obs_age_s + starvation_grace_s plus two control ticks (20 Hz) of slack.
"""
import os
import signal
import threading
import time

import numpy as np
import pytest
from sensor_msgs.msg import Image
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_msgs.msg import String
from std_srvs.srv import Trigger

from conftest import CUBE_JOINTS
from conftest import make_model
from conftest import output

COMMANDS = '/forward_position_controller/commands'
MAX_AGE_S = 0.2
GRACE_S = 0.5
TICK_S = 0.05
FAST = ['-p', 'enable_control:=true', '-p', 'diagnostics_period_s:=0.1',
        '-p', f'max_obs_age_s:={MAX_AGE_S}', '-p', f'starvation_grace_s:={GRACE_S}']


class Robot:
    """Joint states at 50 Hz from the probe; `positions` / `names` can be changed live."""

    def __init__(self, probe, names=CUBE_JOINTS):
        self.names = list(names)
        self.positions = np.zeros(len(names))
        self.enabled = True
        self.last_sent = 0.0
        probe.publish_at(JointState, '/joint_states', 50.0, self._make)

    def _make(self):
        if not self.enabled:
            return None
        self.last_sent = time.monotonic()
        self.positions[0] += 0.001  # a moving arm: every fresh chunk differs from the last
        return JointState(name=self.names, position=self.positions.tolist(),
                          velocity=[0.0] * len(self.names))


def _image(encoding: str, height: int, width: int, rgb=(255, 0, 0)) -> Image:
    channels = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'yuv422': 2}[encoding]
    pixel = {'rgb8': rgb, 'bgr8': rgb[::-1], 'mono8': rgb[:1], 'yuv422': (128, 128)}[encoding]
    data = np.tile(np.array(pixel, np.uint8), (height, width, 1))
    return Image(height=height, width=width, encoding=encoding, step=width * channels,
                 data=data.tobytes())


def _last_time(records) -> float:
    return records[-1][0] if records else float('-inf')


def _wait_silent(probe, records, quiet_s: float, timeout_s: float) -> float:
    """Waits until `records` got nothing for quiet_s; returns the time of its last message."""
    return probe.wait_for(
        lambda: time.monotonic() - _last_time(records) > quiet_s and _last_time(records),
        timeout_s, f'silence for {quiet_s} s') and _last_time(records)


def _wait_error(probe, timeout_s: float) -> str:
    """The message of the first ~/stats report at level ERROR (2)."""
    def error():
        stats = probe.stats()
        return stats and stats[-1]['level'] == 2 and stats[-1]['message']
    return probe.wait_for(error, timeout_s, 'ERROR on ~/stats')


def test_camera_converted_then_camera_stops_hold_then_stop(tmp_path, probe, procs,
                                                          record_property):
    camera = {'name': 'front', 'topic': 'front/image_raw', 'height': 8, 'width': 10,
              'encoding': 'rgb8'}
    folder = make_model(tmp_path / 'model', cameras=[camera], image_gain=0.5)
    commands = probe.record(Float64MultiArray, COMMANDS)
    probe.record(String, '/policy_node/stats')
    robot = Robot(probe)
    camera_on = threading.Event()
    camera_on.set()
    sent = []
    # bgr8, 16x20 instead of rgb8 8x10: pure red must still read R = 255 -> +0.5 per joint.
    image = _image('bgr8', 16, 20, rgb=(255, 0, 0))

    def make_image():
        if camera_on.is_set():
            sent.append(time.monotonic())
            return image
        return None
    probe.publish_at(Image, '/front/image_raw', 20.0, make_image)
    procs.start('run', 'policy', '--model', str(folder), '--', *FAST)
    probe.wait_for(lambda: commands and abs(commands[-1][1].data[1] - 0.5) < 1e-6, 20,
                   'commands carrying the red-image term (bgr8 converted, resized)')
    # Stats come every 0.1 s; the first commands can beat the first stats message.
    probe.wait_for(lambda: any(st['converted_images'] > 0 for st in probe.stats()), 5,
                   'stats counting the converted images')

    camera_on.clear()
    last_image = sent[-1]
    last_command = _wait_silent(probe, commands, 0.4, 5)
    delay = last_command - last_image
    record_property('last_image_to_last_command_s', round(delay, 3))
    assert MAX_AGE_S + GRACE_S - TICK_S <= delay <= MAX_AGE_S + GRACE_S + 3 * TICK_S, delay
    with probe.lock:
        held = [m.data for t, m in commands if t > last_image + MAX_AGE_S + 2 * TICK_S]
    record_property('held_commands', len(held))
    assert len(held) >= int(GRACE_S / TICK_S) - 2
    assert all(h == held[0] for h in held), 'hold must repeat the last command exactly'
    assert robot.enabled  # joint states kept flowing: the camera alone stopped the robot
    message = _wait_error(probe, 2)
    assert 'front' in message and 'stale' in message


def test_nan_joint_state_gives_no_command(model, probe, procs, record_property):
    commands = probe.record(Float64MultiArray, COMMANDS)
    probe.record(String, '/policy_node/stats')
    robot = Robot(probe)
    procs.start('run', 'policy', '--model', str(model), '--', *FAST)
    probe.wait_for(lambda: len(commands) >= 10, 20, 'commands')
    robot.positions[2] = np.nan
    nan_from = time.monotonic()
    last_command = _wait_silent(probe, commands, 0.4, 5)
    record_property('first_nan_to_last_command_s', round(last_command - nan_from, 3))
    assert last_command - nan_from <= MAX_AGE_S + GRACE_S + 3 * TICK_S
    with probe.lock:
        assert all(np.all(np.isfinite(m.data)) for _, m in commands)
    message = _wait_error(probe, 2)
    stats = probe.stats()[-1]
    record_property('diagnostics', message)
    assert 'non-finite' in message and 'wrist' in message
    assert stats['rejected_obs'] > 0 and stats['rejected_chunks'] == 0


def test_missing_joint_is_a_clear_error_and_no_command(model, probe, procs, record_property):
    commands = probe.record(Float64MultiArray, COMMANDS)
    probe.record(String, '/policy_node/stats')
    Robot(probe, names=[j for j in CUBE_JOINTS if j != 'elbow'])
    proc = procs.start('run', 'policy', '--model', str(model), '--', *FAST)
    message = _wait_error(probe, 20)
    record_property('diagnostics', message)
    assert "lacks joint(s) ['elbow']" in message
    assert not commands and proc.poll() is None


def test_estop_latches_until_reset(model, probe, procs, record_property):
    commands = probe.record(Float64MultiArray, COMMANDS)
    probe.record(String, '/policy_node/stats')
    Robot(probe)
    procs.start('run', 'policy', '--model', str(model), '--', *FAST)
    probe.wait_for(lambda: len(commands) >= 5, 20, 'commands')
    assert probe.call(Trigger, '/policy_node/estop').success
    pressed = time.monotonic()
    last = _wait_silent(probe, commands, 0.5, 5)
    record_property('estop_to_last_command_s', round(last - pressed, 3))
    assert last - pressed <= 2 * TICK_S  # no hold period for an e-stop
    message = _wait_error(probe, 2)
    assert 'e-stop' in message
    n = len(commands)
    assert probe.call(Trigger, '/policy_node/reset_estop').success
    probe.wait_for(lambda: len(commands) >= n + 5, 5, 'commands after reset')


def test_sim_killed_policy_stops_and_reports_error(tmp_path, probe, procs, record_property):
    folder = make_model(tmp_path / 'model')
    commands = probe.record(Float64MultiArray, COMMANDS)
    probe.record(String, '/policy_node/stats')
    sim = procs.start('run', 'sim')
    procs.start('run', 'policy', '--model', str(folder), '--', *FAST)
    probe.wait_for(lambda: len(commands) >= 10, 20, 'commands in the loop')
    os.killpg(sim.pid, signal.SIGKILL)  # the launcher and its sim node die at once
    killed = time.monotonic()
    last = _wait_silent(probe, commands, 0.4, 5)
    record_property('kill_to_last_command_s', round(last - killed, 3))
    assert last - killed <= MAX_AGE_S + GRACE_S + 3 * TICK_S
    message = _wait_error(probe, 2)
    assert 'stopped' in message and 'state' in message


ALIAS_BOMB = """
a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.parametrize('case, expected', [
    ('tampered', 'sha256'),
    ('card widened', 'card_sha256'),
    ('alias bomb', 'aliases'),
    ('deep nesting', 'nested deeper'),
    ('missing', 'does not exist'),
    ('joint_count', 'joint_names'),
    ('camera_list', 'cameras'),
    ('limits disjoint', "joint 'elbow'"),
    ('bad command_type', 'command_type'),
])
def test_bad_model_or_config_refuses_to_start(case, expected, tmp_path, procs, record_property):
    folder = make_model(tmp_path / 'model')
    card = folder / 'policy.yaml'
    extra = []
    if case == 'tampered':
        blob = bytearray((folder / 'policy.onnx').read_bytes())
        blob[-1] ^= 0xFF
        (folder / 'policy.onnx').write_bytes(bytes(blob))
    elif case == 'card widened':  # shoulder's high limit 2 -> 50, nothing else changed
        text = card.read_text()
        assert text.count('high:\n  - 2.0\n') == 1
        card.write_text(text.replace('high:\n  - 2.0\n', 'high:\n  - 50.0\n'))
    elif case == 'alias bomb':
        card.write_text(card.read_text() + ALIAS_BOMB)
    elif case == 'deep nesting':
        card.write_text(card.read_text() + 'deep: ' + '[' * 100_000 + ']' * 100_000 + '\n')
    elif case == 'missing':
        folder = tmp_path / 'nowhere'
    elif case == 'joint_count':
        extra = ['-p', 'joint_names:=[shoulder,elbow]']
    elif case == 'camera_list':
        extra = ['-p', 'cameras:=[front]']
    elif case == 'limits disjoint':  # the robot's elbow range lies outside the card's [-2.8, 2.8]
        extra = ['-p', 'joint_limits_low:=[-1.0,3.0,-1.0,0.0]',
                 '-p', 'joint_limits_high:=[1.0,3.5,1.0,0.02]']
    else:
        extra = ['-p', 'command_type:=velocity']
    start = time.monotonic()
    proc = procs.start('run', 'policy', '--model', str(folder), '--', *extra)
    assert proc.wait(timeout=20) != 0
    record_property('exit_code', proc.returncode)
    record_property('seconds_to_refuse', round(time.monotonic() - start, 2))
    reason = [line for line in output(proc).splitlines() if 'cannot start' in line]
    record_property('reason', reason)
    assert len(reason) == 1 and expected in reason[0], output(proc)
    if case in ('card widened', 'alias bomb', 'deep nesting'):
        assert str(card) in reason[0]  # the one line names the file
    assert 'Traceback' not in output(proc)


def test_robot_limits_narrow_the_card_limits(tmp_path, probe, procs, record_property):
    """Commands stay inside the intersection of the card's and the robot's limits: the policy
    wants +0.5 rad beyond the arm; the robot's shoulder may only reach 0.2 rad."""
    folder = make_model(tmp_path / 'model', bias=0.5)
    commands = probe.record(Float64MultiArray, COMMANDS)
    Robot(probe)
    urdf = ('<robot name="r"><joint name="elbow" type="revolute"><limit lower="-0.1" '
            'upper="0.15" effort="1" velocity="1"/></joint></robot>')
    proc = procs.start('run', 'policy', '--model', str(folder), '--', *FAST,
                       '-p', 'joint_limits_low:=[-0.2,-2.0,-2.0,0.0]',
                       '-p', 'joint_limits_high:=[0.2,2.0,2.0,0.03]',
                       '-p', f'robot_description:={urdf}')
    probe.wait_for(lambda: len(commands) >= 15, 20, 'commands')
    with probe.lock:
        values = np.array([m.data for _, m in commands])
    record_property('max_command', values.max(axis=0).tolist())
    assert values[:, 0].max() == pytest.approx(0.2)   # the parameter limit, not the card's 2.0
    assert values[:, 1].max() == pytest.approx(0.15)  # the URDF limit
    assert values[:, 2].max() == pytest.approx(0.5)   # card [-2.6, 2.6], robot 2.0: unlimited
    assert 'joint limits in force (model card and joint_limits_low/high and ' \
        'robot_description (1 of the joints)): shoulder [-0.2, 0.2] rad, ' \
        'elbow [-0.1, 0.15] rad' in output(proc)
