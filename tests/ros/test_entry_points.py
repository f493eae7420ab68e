"""`rldt-ros run loop` as a user meets it: the parameters its nodes really run with, and a quiet
exit on Ctrl-C (a terminal signals the launcher AND its nodes; the launcher forwards another)."""
import os
import signal
import time

import pytest
from std_msgs.msg import Float64MultiArray

from conftest import output
from rldt_ros.parameters import defaults
from rldt_ros.parameters import POLICY_PARAMETERS
from rldt_ros.parameters import SIM_PARAMETERS
from rldt_ros.safe_yaml import load_yaml

COMMANDS = '/forward_position_controller/commands'


def test_run_loop_nodes_run_with_the_defaults_plus_the_sim_overlay(probe, procs):
    commands = probe.record(Float64MultiArray, COMMANDS)
    procs.start('run', 'loop')  # the shipped model, as in the README
    probe.wait_for(lambda: len(commands) >= 5, 30, 'the arm commanded (control enabled)')
    overlay = load_yaml('config/policy_sim.yaml')['policy_node']['ros__parameters']
    expected = {**defaults(POLICY_PARAMETERS), **overlay, 'use_sim_time': True}
    del expected['model']
    actual = probe.get_parameters('policy_node', sorted(expected))
    assert actual == expected
    assert probe.get_parameters('policy_node', ['model'])['model'].endswith('models/cube_push')
    sim_expected = {**defaults(SIM_PARAMETERS), 'publish_clock': True}
    assert probe.get_parameters('sim_node', sorted(sim_expected)) == sim_expected


@pytest.mark.parametrize('signals', ['SIGINT to all', 'SIGINT to all, twice',
                                     'SIGTERM to the launcher'])
def test_run_loop_exits_quietly(signals, tmp_path, probe, procs, record_property):
    commands = probe.record(Float64MultiArray, COMMANDS)
    proc = procs.start('run', 'loop')
    probe.wait_for(lambda: len(commands) >= 5, 30, 'the loop running')
    if signals.startswith('SIGINT'):
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        if signals.endswith('twice'):
            time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    text = output(proc)
    record_property('printed_after_the_signal', text.splitlines()[-4:])
    assert 'Traceback' not in text and 'KeyboardInterrupt' not in text, text
