"""Closed loop over real DDS: `rldt-ros run loop` (MuJoCo cube_push sim + policy node)."""
import json

import numpy as np
import pytest
from std_msgs.msg import Float64MultiArray
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from conftest import make_model
from rldt_ros.tasks import make_task

RATE_HZ = 20.0


@pytest.mark.parametrize('command_type', ['commands', 'joint_trajectory'])
def test_closed_loop_commands_at_rate_finite_in_limits_and_episode_scored(
        command_type, tmp_path, probe, procs):
    task = make_task('cube_push')
    low, high = task.action_low, task.action_high
    # bias 0.05 rad: the arm drifts against the limits, so clamping is exercised, not idle.
    folder = make_model(tmp_path / 'model', low=low, high=high, rate_hz=RATE_HZ, bias=0.05)
    msg_type = Float64MultiArray if command_type == 'commands' else JointTrajectory
    commands = probe.record(msg_type, f'/forward_position_controller/{command_type}')
    episodes = probe.record(String, '/sim_node/episode')
    procs.start('run', 'loop', '--model', str(folder), '--',
                '-p', f'command_type:={command_type}', '-p', 'max_episode_steps:=30')
    probe.wait_for(lambda: len(episodes) >= 1 and len(commands) >= 50, 30,
                   '50 commands and one scored episode')
    with probe.lock:
        cmds = list(commands)
        result = json.loads(episodes[0][1].data)
    assert result['steps'] == 30 and isinstance(result['success'], bool)
    assert np.isfinite(result['return'])

    times = np.array([t for t, _ in cmds[5:]])
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert abs(rate - RATE_HZ) < 0.1 * RATE_HZ, f'command rate {rate:.2f} Hz'
    if command_type == 'commands':
        values = np.array([m.data for _, m in cmds])
    else:
        counts = set()
        for _, msg in cmds:
            assert msg.joint_names == task.actuated_joints
            stamps = [p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec
                      for p in msg.points]
            np.testing.assert_allclose(stamps, np.arange(1, len(stamps) + 1) / RATE_HZ)
            counts.add(len(stamps))
        # H=4, refill at 2 left: this tick's action plus the 1..3 still queued.
        assert counts <= {2, 3, 4} and max(counts) > 2, counts
        values = np.array([p.positions for _, m in cmds for p in m.points])
    assert values.shape[1] == 4 and np.all(np.isfinite(values))
    assert np.all(values >= low - 1e-9) and np.all(values <= high + 1e-9)
    assert np.any(np.isclose(values, high) | np.isclose(values, low)), 'limits never reached'


def test_sim_time_loop_runs_faster_than_real_time(tmp_path, probe, procs):
    folder = make_model(tmp_path / 'model', rate_hz=RATE_HZ)
    episodes = probe.record(String, '/sim_node/episode')
    commands = probe.record(Float64MultiArray, '/forward_position_controller/commands')
    procs.start('run', 'loop', '--model', str(folder), '--', '-p', 'publish_clock:=true',
                '-p', 'use_sim_time:=true', '-p', 'real_time_factor:=3.0',
                '-p', 'max_episode_steps:=30')
    # Measure over a whole episode that starts after this probe sees commands: under load,
    # discovery of the probe's command subscription can lag behind the first episodes.
    probe.wait_for(lambda: len(commands) > 0, 30, 'commands on sim time')
    with probe.lock:
        first_command = commands[0][0]
    probe.wait_for(lambda: sum(t > first_command for t, _ in episodes) >= 2, 30,
                   'two episodes after the first command')
    with probe.lock:
        later = [(t, json.loads(m.data)) for t, m in episodes if t > first_command]
        (t1, r1), (t2, r2) = later[0], later[1]
        wall_s = t2 - t1
        n_commands = sum(1 for t, _ in commands if t1 < t <= t2)
        results = [json.loads(m.data) for _, m in episodes]
    assert all(r['steps'] == 30 for r in results)
    sim_s = r2['sim_time_s'] - r1['sim_time_s']
    assert sim_s == pytest.approx(30 / RATE_HZ)
    assert sim_s / wall_s == pytest.approx(3.0, rel=0.15)
    # The policy ticks on /clock (20 Hz sim time: 30 commands per episode; on the wall clock it
    # would be 10). The probe counts by its own receive time, so under load a few commands land
    # on the other side of an episode message.
    assert abs(n_commands - 30) <= 6, n_commands
