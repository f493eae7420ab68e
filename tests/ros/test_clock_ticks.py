"""Under use_sim_time the policy node's control ticks are /clock updates, and a lockstep
simulator waits for the answer to each state before it steps. Here the probe plays that
simulator, step by step, with every order the two topics can be handled in: state then clock,
clock then state, and a clock whose state comes 50 ms later, plus episode resets. Each state must
get exactly one command, planned from that state: a command planned from the state before (a
tick served before its state arrived) or a second command for one state (a slot served twice)
would drive the simulation one step behind its observations without any step counted late.
With an rclpy timer on the sim clock and the old episode boundary, 0.4-6.7% (EventsExecutor) and
25-50% (single-threaded) of the commands in a lockstep loop were planned from another state."""
import json
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_msgs.msg import String

from conftest import CUBE_HIGH
from conftest import CUBE_JOINTS
from conftest import CUBE_LOW
from conftest import make_model

COMMANDS = '/forward_position_controller/commands'
EPISODES = '/test/episode'
PERIOD_NS = 50_000_000  # 20 Hz
ORDERS = ('state_first', 'clock_first', 'late_state')
STEPS = 60
EPISODE_STEPS = 12


@pytest.mark.parametrize('executor', ['events', 'single_threaded'])
def test_each_state_gets_one_command_planned_from_it(tmp_path, probe, procs, executor):
    bias = 0.05
    # A chunk of one action: every slot samples, so every command comes from the latest state.
    model = make_model(tmp_path / 'model', rate_hz=20.0, bias=bias, chunk_length=1,
                       steps_per_chunk=1)
    commands = probe.record(Float64MultiArray, COMMANDS)
    state_pub = probe.node.create_publisher(JointState, '/joint_states', 10)
    clock_pub = probe.node.create_publisher(ClockMsg, '/clock', 10)
    episode_pub = probe.node.create_publisher(String, EPISODES, 10)
    rng = np.random.default_rng(7)
    sim_ns = [10**9]

    def step(arm, order: str) -> None:
        """One simulator step: sim time moves on, the new state and clock go out."""
        sim_ns[0] += PERIOD_NS
        stamp = Time(sec=sim_ns[0] // 10**9, nanosec=sim_ns[0] % 10**9)
        state = JointState(name=list(CUBE_JOINTS), position=list(arm) + [0.0] * 3,
                           velocity=[0.0] * len(CUBE_JOINTS))
        state.header.stamp = stamp
        if order == 'state_first':
            state_pub.publish(state)
        clock_pub.publish(ClockMsg(clock=stamp))
        if order == 'late_state':
            time.sleep(0.05)
        if order != 'state_first':
            state_pub.publish(state)

    node = procs.start('run', 'policy', '--model', str(model), '--', '-p', 'enable_control:=true',
                '-p', 'use_sim_time:=true', '-p', 'max_delta_per_tick:=1.0',
                '-p', f'episode_topic:={EPISODES}', '-p', f'executor:={executor}',
                # a slow start or a loaded machine must not turn the states stale here
                '-p', 'max_obs_age_s:=10.0', '-p', 'starvation_grace_s:=10.0')
    start_arm = np.zeros(4)
    deadline = time.monotonic() + 30
    while not commands:  # the node starts and finds the probe: step until it answers
        assert time.monotonic() < deadline and node.poll() is None, \
            'the policy node never answered a state'
        step(start_arm, 'state_first')
        time.sleep(0.1)
    answered = -1
    while answered != len(commands):  # until the warm-up's answers are all in (0.5 s quiet)
        answered = len(commands)
        time.sleep(0.5)
    mismatches = []
    for k in range(STEPS):
        if k and k % EPISODE_STEPS == 0:  # a reset: the report, then the new world's state
            episode_pub.publish(String(data=json.dumps({'end_stamp_ns': sim_ns[0]})))
        # distinct states, each within the command filter's 1 rad per tick of the one before
        arm = np.append(rng.uniform(-0.4, 0.4, 3), 0.0)
        step(arm, ORDERS[k % len(ORDERS)])
        probe.wait_for(lambda: len(commands) > answered, 10,
                       f'the answer to step {k} ({ORDERS[k % len(ORDERS)]})')
        time.sleep(0.02)  # a second command for this state would arrive by now
        with probe.lock:
            got = [np.array(m.data) for _, m in commands[answered:]]
            answered = len(commands)
        expected = np.clip(arm + bias, CUBE_LOW, CUBE_HIGH)
        if len(got) != 1 or not np.allclose(got[0], expected, atol=1e-6):
            mismatches.append((k, ORDERS[k % len(ORDERS)], len(got)))
    time.sleep(0.3)
    with probe.lock:
        extra = len(commands) - answered
    assert not mismatches, f'steps (index, order, commands) not answered once from their ' \
                           f'own state: {mismatches}'
    assert extra == 0, f'{extra} commands after the last step'


def test_use_sim_time_cannot_change_while_the_node_runs(tmp_path, probe, procs):
    """The control ticks are a wall-clock timer or /clock updates, chosen at start: switching
    the clock under a running node would leave it ticking on the wrong one."""
    model = make_model(tmp_path / 'model', rate_hz=20.0)
    procs.start('run', 'policy', '--model', str(model))
    probe.wait_for(lambda: probe.node.count_publishers('/policy_node/stats'), 30, 'the node')
    result, = probe.set_parameters('policy_node', use_sim_time=True)
    assert not result.successful
    assert 'restart the node' in result.reason
    assert probe.get_parameters('policy_node', ['use_sim_time']) == {'use_sim_time': False}
    result, = probe.set_parameters('policy_node', use_sim_time=False)  # no change: accepted
    assert result.successful
