"""The node warns while its command filter differs from the one the model was trained with
(model card training_conditions, written by the export): in the log at start-up and on
/diagnostics (WARN) for as long as it lasts."""
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Float64MultiArray
from std_msgs.msg import String

from conftest import make_model
from conftest import output
from test_faults import COMMANDS
from test_faults import Robot


@pytest.mark.parametrize('trained, expected', [
    ({'max_delta_per_tick': 0.1}, 'max_delta_per_tick 0.5 differs from the 0.1 the model was '
                                  'trained with'),
    (None, 'max_delta_per_tick 0.5: the model was trained without a command filter'),
])
def test_a_filter_unlike_training_warns_until_it_matches(trained, expected, tmp_path, probe,
                                                         procs, record_property):
    folder = make_model(tmp_path / 'model',
                        training_conditions={'command_filter': trained,
                                             'action_delay_ticks': [0, 1]})
    commands = probe.record(Float64MultiArray, COMMANDS)
    diagnostics = probe.record(DiagnosticArray, '/diagnostics')
    probe.record(String, '/policy_node/stats')
    Robot(probe)
    proc = procs.start('run', 'policy', '--model', str(folder), '--', '-p',
                       'enable_control:=true', '-p', 'max_delta_per_tick:=0.5',
                       '-p', 'diagnostics_period_s:=0.1')
    probe.wait_for(lambda: len(commands) >= 5, 20, 'commands')
    status = probe.wait_for(
        lambda: diagnostics and diagnostics[-1][1].status[0].message.startswith('running')
        and diagnostics[-1][1].status[0], 5, 'diagnostics while running')
    record_property('diagnostics', status.message)
    assert status.level == DiagnosticStatus.WARN and expected in status.message
    values = {kv.key: kv.value for kv in status.values}
    assert expected in values['warnings.training_conditions']
    assert sum(expected in line for line in output(proc).splitlines()) == 1  # logged once
    if trained is None:
        return
    # Lowering the cap to the trained value (allowed while enabled) ends the warning.
    assert probe.set_parameters('policy_node', max_delta_per_tick=0.1)[0].successful
    stats = probe.wait_for(lambda: (st := probe.stats()) and st[-1]['level'] == 0 and st[-1],
                           5, 'OK after matching the trained filter')
    assert stats['message'] == 'running' and stats['warnings'] == {}
