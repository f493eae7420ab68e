"""`make demo` end to end at tiny settings: every stage runs (ROS loop included, over real DDS
in this test's network namespace) and the report has everything it links to."""
import json

import pytest

from rldt_ros.model_card import load_model_card
from rldt_train.demo import DemoSettings
from rldt_train.demo import run_demo

TINY = DemoSettings(
    overrides=['collect.episodes=20', 'pretrain.steps=200', 'policy.hidden_dim=64',
               'finetune.iterations=2', 'finetune.warmup_iterations=1', 'finetune.num_envs=2',
               'finetune.rollout_steps=8', 'finetune.critic_steps=8', 'finetune.critic_rounds=1',
               'finetune.actor_steps=2', 'finetune.particles=4', 'finetune.eval_episodes=4',
               'finetune.final_eval_episodes=4', 'finetune.replay_rollouts=2'],
    eval_episodes=4, ros_episodes=1, latency_runs=50, robustness_episodes=2, robust=True)


@pytest.mark.slow
def test_demo_pipeline_tiny(tmp_path):
    out = tmp_path / 'demo'
    summary = run_demo(out_dir=out, settings=TINY)
    for name in ('summary.md', 'learning_curve.png', 'latency_hist.png', 'frames.png',
                 'results.json', 'config.yaml', 'models/cube_push_bc/policy.onnx',
                 'models/cube_push_rldt/policy.yaml'):
        assert (out / name).is_file(), name
    results = json.loads((out / 'results.json').read_text())
    for label in ('BC', 'RLDT'):
        row = results['rows'][label]
        assert row['sim']['episodes'] == 4
        # Both sampling modes on the same seeds; 'sim' is the mode the card deploys.
        assert set(row['sim_modes']) == {'deterministic', 'stochastic'}
        assert row['sim'] == row['sim_modes'][row['deploy_mode']]
        card = load_model_card(out / 'models' / f'cube_push_{label.lower()}')
        assert card.deterministic == (row['deploy_mode'] == 'deterministic')
        ros = results['rows'][label]['ros']
        assert ros['episodes'] == 1 and ros['provider'] == 'CPUExecutionProvider'
    assert 0.0 <= summary['rldt_sim_success'] <= 1.0
    text = (out / 'summary.md').read_text()
    assert '| BC |' in text and '| RLDT |' in text and 'frames.png' in text
    # Robustness: nominal and randomized training side by side, under the robot's filter.
    assert '## Robustness' in text and '| action_delay 2 ticks |' in text
    assert 'RLDT randomized' in text and (out / 'robustness.png').is_file()
    table = results['robustness']
    assert set(table['models']) == {'BC', 'RLDT', 'BC randomized', 'RLDT randomized'}
    card = (out / 'models/cube_push_rldt_randomized/policy.yaml').read_text()
    assert 'training_conditions:' in card and 'max_delta_per_tick: 0.1' in card
