"""`rldt-train benchmark` at tiny settings: every seed runs, the report has every column, and
a second invocation reuses the finished seeds instead of training them again."""
import json
from pathlib import Path

import pytest

from rldt_train.benchmark import run_benchmark
from rldt_train.config import load_config

SMOKE = Path('config/train/smoke_cube_push.yaml')
TINY = ['collect.episodes=8', 'pretrain.steps=30', 'pretrain.eval_episodes=0',
        'pretrain.checkpoint_every=30']


@pytest.mark.slow
def test_benchmark_two_seeds_table_plot_and_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])      # configs are repo-relative
    monkeypatch.setenv('PYTHONPATH', str(Path.cwd()))
    config = load_config(SMOKE, TINY)
    out = tmp_path / 'bench'
    # The dataset cache lives under data/ in the repo; point it at the test's folder.
    monkeypatch.setattr('rldt_train.benchmark.dataset_path',
                        lambda c: tmp_path / 'data' / 'demos.hdf5')
    summary = run_benchmark(config, SMOKE, TINY, [0, 1], out, jobs=2)
    assert summary['seeds'] == 2
    table = (out / 'benchmark.md').read_text()
    for text in ('| 0 |', '| 1 |', 'mean +- sd (2 seeds)', 'best-mode ratio', 'benchmark.png'):
        assert text in table, text
    numbers = json.loads((out / 'benchmark.json').read_text())
    assert numbers['metric'] == 'success'
    assert [r['seed'] for r in numbers['rows']] == [0, 1]
    for row in numbers['rows']:
        assert row['base_deterministic']['episodes'] == 2       # final_eval_episodes
        assert row['env_steps'] > 0
    assert (out / 'benchmark.png').stat().st_size > 10_000
    # The two seeds trained different policies.
    first = (out / 'seed_0' / 'finetune' / 'evaluation.json').read_text()
    assert first != (out / 'seed_1' / 'finetune' / 'evaluation.json').read_text()
    mtime = (out / 'seed_0' / 'finetune' / 'evaluation.json').stat().st_mtime
    run_benchmark(config, SMOKE, TINY, [0, 1], out, jobs=2)
    assert (out / 'seed_0' / 'finetune' / 'evaluation.json').stat().st_mtime == mtime
    # A finished run whose final evaluation is redone (evaluation.json removed) resumes: the
    # stage's time is summed over both invocations, not replaced by the short second one.
    timings_path = out / 'seed_1' / 'timings.json'
    before = json.loads(timings_path.read_text())['finetune']
    (out / 'seed_1' / 'finetune' / 'evaluation.json').unlink()
    run_benchmark(config, SMOKE, TINY, [0, 1], out, jobs=1)
    after = json.loads(timings_path.read_text())['finetune']
    assert after['cpu_s'] > before['cpu_s'] and after['wall_s'] > before['wall_s']
    assert (out / 'seed_1' / 'finetune' / 'evaluation.json').is_file()
