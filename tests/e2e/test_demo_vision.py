"""`make demo DEMO_ARGS=--vision` end to end at tiny settings (ROS loop stage on its own below):
every stage runs and the report has what it links to, the camera strip included."""
import json

import pytest

from rldt_train.demo_vision import VisionDemoSettings
from rldt_train.demo_vision import ros_stage
from rldt_train.demo_vision import run_vision_demo

TINY = VisionDemoSettings(
    overrides=['collect.episodes=8', 'pretrain.steps=20', 'pretrain.eval_episodes=0',
               'policy.hidden_dim=32', 'policy.image_channels=8', 'policy.image_features=8',
               'finetune.iterations=2', 'finetune.warmup_iterations=1', 'finetune.num_envs=2',
               'finetune.rollout_steps=4', 'finetune.critic_steps=2', 'finetune.critic_rounds=1',
               'finetune.actor_steps=1', 'finetune.particles=2', 'finetune.eval_every=1',
               'finetune.eval_episodes=1', 'finetune.final_eval_episodes=2',
               'finetune.replay_rollouts=2', 'finetune.critic_hidden_dim=16'],
    eval_episodes=2, latency_runs=20, strip_frames=3)


@pytest.mark.slow
def test_vision_demo_tiny(tmp_path):
    out = tmp_path / 'demo'
    summary = run_vision_demo(out_dir=out, skip_ros=True, settings=TINY)
    for name in ('summary.md', 'cameras.png', 'learning_curve.png', 'latency_hist.png',
                 'results.json', 'models/cube_push_vision_bc/policy.onnx',
                 'models/cube_push_vision_rldt/policy.yaml'):
        assert (out / name).is_file(), name
    results = json.loads((out / 'results.json').read_text())
    for label in ('BC', 'RLDT'):
        for mode in ('deterministic', 'stochastic'):
            assert results['sim'][label][mode]['episodes'] == 2
    assert results['ros'] == {'not_run': 'skipped with --skip-ros'}
    assert results['frames_per_s'] > 0
    assert summary['ros_loop'] == 'not run'
    text = (out / 'summary.md').read_text()
    assert '| BC |' in text and '| RLDT |' in text and 'cameras.png' in text


def test_ros_stage_reports_a_loop_that_cannot_run_and_goes_on(tmp_path):
    """A model the policy node refuses (here: a card that does not match its graph) ends the
    loop at once; the stage says why and where the node output is, instead of failing."""
    model = tmp_path / 'broken'
    model.mkdir()
    (model / 'policy.yaml').write_text('name: broken\n')
    out = ros_stage({'BC': model}, VisionDemoSettings(ros_episodes=1, ros_timeout_s=60.0),
                    tmp_path)
    assert set(out) == {'not_run'}
    assert 'did not run the camera model broken' in out['not_run']
    assert str(tmp_path / 'ros_loop_bc.log') in out['not_run']
