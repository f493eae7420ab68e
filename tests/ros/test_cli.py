"""`rldt-ros check` on good and tampered model folders, and the commands `run` would start."""
from pathlib import Path

from conftest import make_model
from rldt_ros import cli


def test_check_reports_a_good_model(tmp_path, capsys):
    folder = make_model(tmp_path / 'm')
    assert cli.main(['check', str(folder), '--runs', '5']) == 0
    out = capsys.readouterr().out
    assert 'test_hold' in out and 'CPUExecutionProvider' in out and 'output finite: True' in out


def test_check_refuses_a_tampered_model(tmp_path, capsys):
    folder = make_model(tmp_path / 'm')
    (folder / 'policy.onnx').write_bytes((folder / 'policy.onnx').read_bytes() + b'\0')
    assert cli.main(['check', str(folder)]) == 1
    assert 'sha256' in capsys.readouterr().err


def test_run_loop_starts_both_nodes_with_the_model_and_extra_ros_args(tmp_path):
    sim, policy = cli.node_commands('loop', 'models/x', ['-p', 'seed:=3'])
    assert sim[1:3] == ['-m', 'rldt_ros.sim_node'] and sim[-2:] == ['-p', 'seed:=3']
    assert policy[1:3] == ['-m', 'rldt_ros.policy_node'] and policy[-2:] == ['-p', 'seed:=3']
    assert f'model:={Path("models/x").resolve()}' in policy
    files = [policy[i + 1] for i, a in enumerate(policy) if a == '--params-file']
    assert [Path(f).name for f in files] == ['policy.yaml', 'policy_sim.yaml']


def test_run_takes_other_parameter_files(tmp_path):
    mine = tmp_path / 'mine.yaml'
    mine.write_text('policy_node:\n  ros__parameters:\n    seed: 3\n')
    (policy,) = cli.node_commands('policy', 'models/x', [], params=str(mine))
    assert policy[policy.index('--params-file') + 1] == str(mine)
    assert cli.main(['run', 'policy', '--params', str(tmp_path / 'nope.yaml')]) == 2
