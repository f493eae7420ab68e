"""`rldt-train robustness`: perturbation levels, the robot's filter under every row, the
report's table, plot and numbers."""
import json

import pytest

from rldt_train.cli import main
from rldt_train.config import EnvSection
from rldt_train.robustness import PERTURBATIONS
from rldt_train.robustness import parse_perturb
from rldt_train.robustness import robot_filter


def test_levels_map_onto_the_env_section():
    base = EnvSection(max_delta_per_tick=0.1)
    rows = parse_perturb(['action_delay=1,2', 'friction', 'joint_noise=0.02'], cameras=False)
    labels = [p.label(level) for p, level in rows]
    assert labels == ['action_delay 1 ticks', 'action_delay 2 ticks', 'friction x0.5',
                      'friction x1.5', 'joint_noise 0.02 rad (vel 10x)']
    envs = [p.apply(base, level) for p, level in rows]
    assert [e.action_delay_ticks for e in envs[:2]] == [[1, 1], [2, 2]]
    assert envs[2].randomization.friction_scale == (0.5, 0.5)
    assert envs[4].randomization.joint_velocity_noise_std == pytest.approx(0.2)
    assert all(e.max_delta_per_tick == 0.1 for e in envs)     # on top of the robot's filter
    assert base.randomization.is_nominal                       # the base is left alone


def test_defaults_follow_the_model_and_bad_names_are_errors():
    state = {p.name for p, _ in parse_perturb(None, cameras=False)}
    camera = {p.name for p, _ in parse_perturb(None, cameras=True)}
    assert 'light' not in state and 'action_delay' in state
    assert camera == set(PERTURBATIONS)
    with pytest.raises(ValueError, match="unknown perturbation 'mass'"):
        parse_perturb(['mass=0.5'], cameras=False)
    with pytest.raises(ValueError, match='levels must be numbers'):
        parse_perturb(['friction=low'], cameras=False)


def test_robot_filter_is_the_parameter_file_value(tmp_path):
    assert robot_filter() == 0.1                               # config/policy.yaml
    params = tmp_path / 'p.yaml'
    params.write_text('policy_node:\n  ros__parameters:\n    max_delta_per_tick: 0.25\n')
    assert robot_filter(params) == 0.25
    params.write_text('policy_node:\n  ros__parameters: {}\n')
    with pytest.raises(ValueError, match='max_delta_per_tick is not set'):
        robot_filter(params)


def test_report_groups_models_under_a_label(tmp_path, exported_model, capsys):
    out = tmp_path / 'report'
    code = main(['robustness', '--model', f'seeds={exported_model}', '--model',
                 f'seeds={exported_model}', '--model', str(exported_model), '--episodes', '4',
                 '--perturb', 'action_delay=2', 'damping=2', '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    numbers = json.loads((out / 'robustness.json').read_text())
    assert numbers['rows'] == ['nominal', 'action_delay 2 ticks', 'damping x2']
    assert numbers['base']['max_delta_per_tick'] == 0.1
    assert numbers['conditions']['action_delay 2 ticks']['action_delay_ticks'] == [2, 2]
    assert numbers['conditions']['damping x2']['damping_scale'] == [2.0, 2.0]
    grouped = numbers['models']['seeds']['rows']
    single = numbers['models'][exported_model.name]['rows']
    for row in numbers['rows']:
        assert len(grouped[row]['per_model']) == 2 and len(single[row]['per_model']) == 1
        # The same model twice on the same episodes: identical rates, so sd 0.
        assert grouped[row]['per_model'][0] == grouped[row]['per_model'][1] == \
            single[row]['mean']
        assert grouped[row]['sd'] == 0.0
        low, high = grouped[row]['ci95']
        assert 0.0 <= low <= grouped[row]['pooled'] <= high <= 1.0
    table = (out / 'robustness.md').read_text()
    assert '| damping x2 |' in table and 'command filter at 0.1 per tick' in table
    assert (out / 'robustness.png').stat().st_size > 1000
