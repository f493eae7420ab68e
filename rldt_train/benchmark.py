"""`rldt-train benchmark`: collect -> BC -> RLDT for several seeds, and one honest table.

The dataset is collected once (cached by config hash, like a D4RL file every seed shares);
each seed then pretrains its own BC policy and fine-tunes it, in its own process (one torch
thread each, `--jobs` at a time), resumable: a killed benchmark run again picks up every
seed where it stopped. The report compares, per seed and as mean +- sd over seeds, the base
and the fine-tuned policy in BOTH sampling modes on the fine-tuning run's held-out final
evaluation (`final_eval_episodes` episodes each, 95% intervals), with env steps and wall time,
and plots one learning curve per seed.

Files in --out: benchmark.md (the table), benchmark.png (curves), benchmark.json (numbers),
seed_<s>/{pretrain,finetune,log.txt}.
"""
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from rldt_train import reporting
from rldt_train.config import TrainConfig
from rldt_train.config import save_config
from rldt_train.data.collect import dataset_path
from rldt_train.data.collect import run_collect
from rldt_train.finetune import EVALUATION_FILE
from rldt_train.finetune import STATE_FILE

# What the issue tracker asks of fine-tuning (shown, not enforced): the fine-tuned best mode
# at least this times the base's best mode, and no mode below FLOOR times the base's same mode.
GAIN, FLOOR = 1.10, 0.90


def _run_seed(config_path: Path, overrides: list[str], seed: int, dataset: Path,
              out: Path) -> dict:
    """pretrain + finetune for one seed in subprocesses (resumable).

    Returns {stage: {'wall_s', 'cpu_s'}}: the child's own CPU time (os.wait4), which does not
    grow when other jobs share the cores. Kept in seed_<s>/timings.json, summed over the
    invocations that ran a stage (an invocation killed before its child ended records nothing).
    """
    seed_dir = out / f'seed_{seed}'
    seed_dir.mkdir(parents=True, exist_ok=True)
    timings_path = seed_dir / 'timings.json'
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    args = ['--config', str(config_path), *overrides, f'seed={seed}']
    with open(seed_dir / 'log.txt', 'a') as log:
        for stage, extra, done in (
                ('pretrain', ['--dataset', str(dataset)], seed_dir / 'pretrain' / 'policy_bc.pt'),
                ('finetune', ['--base', str(seed_dir / 'pretrain' / 'policy_bc.pt')],
                 seed_dir / 'finetune' / EVALUATION_FILE)):
            if done.is_file():
                continue                               # finished in an earlier invocation
            cmd = [sys.executable, '-m', 'rldt_train.cli', stage, *extra, '--run-dir',
                   str(seed_dir / stage), '--resume', *args]
            log.write(f'$ {" ".join(cmd)}\n')
            log.flush()
            t0 = time.perf_counter()
            child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            # Summed over the invocations that ran this stage (a resumed run pays both).
            before = timings.get(stage, {'wall_s': 0.0, 'cpu_s': 0.0})
            timings[stage] = {'wall_s': before['wall_s'] + time.perf_counter() - t0,
                              'cpu_s': before['cpu_s'] + usage.ru_utime + usage.ru_stime}
            timings_path.write_text(json.dumps(timings, indent=2))
            if child.returncode != 0:
                raise RuntimeError(f'seed {seed}: {stage} failed (exit {child.returncode}); '
                                   f'see {seed_dir / "log.txt"}')
    return timings


def _seed_result(out: Path, seed: int, metric_name: str, timings: dict) -> dict:
    run_dir = out / f'seed_{seed}' / 'finetune'
    evaluation = json.loads((run_dir / EVALUATION_FILE).read_text())
    state = torch.load(run_dir / STATE_FILE, map_location='cpu', weights_only=True)
    run = state['run']
    # Whole fine-tuning process (evaluations included) when this benchmark ran it; else the
    # run's own record of its iterations.
    stage = timings.get('finetune', {})
    row = {'seed': seed, 'env_steps': run['env_steps'],
           'wall_s': stage.get('wall_s', run['wall_s']),
           'cpu_s': stage.get('cpu_s', run.get('cpu_s', float('nan'))),
           'selected_iteration': evaluation['selected_iteration'],
           'deploy_mode': evaluation['deploy_mode'], 'history': run['history']['eval']}
    for label in ('base', 'selected'):
        for mode in reporting.MODES:
            row[f'{label}_{mode}'] = evaluation[label][mode]
    base_best = max(reporting.metric(row[f'base_{m}'], metric_name) for m in reporting.MODES)
    tuned_best = max(reporting.metric(row[f'selected_{m}'], metric_name)
                     for m in reporting.MODES)
    row['best_mode_ratio'] = tuned_best / base_best if base_best else float('nan')
    for mode in reporting.MODES:
        base = reporting.metric(row[f'base_{mode}'], metric_name)
        row[f'{mode}_ratio'] = (reporting.metric(row[f'selected_{mode}'], metric_name) / base
                                if base else float('nan'))
    return row


def _minutes(seconds: float) -> str:
    """'12.3', or 'n/a' for a run whose CPU time was not recorded."""
    return f'{seconds / 60:.1f}' if np.isfinite(seconds) else 'n/a'


def _table(rows: list[dict], metric_name: str, config: TrainConfig, dataset: dict) -> str:
    unit = 'success' if metric_name == 'success' else 'return'
    episodes = rows[0]['base_deterministic']['episodes']
    lines = [f'# RLDT benchmark: {config.task}', '',
             f'Dataset: {dataset["episodes"]} episodes, {dataset["steps"]} transitions, '
             f'return {dataset["return_mean"]:.0f} +- {dataset.get("return_sd", 0):.0f}. '
             f'Evaluation: {episodes} held-out episodes per mode and policy, mean {unit} '
             f'[95% interval]; deterministic = x0 = 0. Fine-tuning time: CPU time of the '
             'single-threaded run (what it costs on an idle core) and wall time (longer when '
             'other jobs shared the cores).', '',
             '| seed | base det | base stoch | RLDT det | RLDT stoch | best-mode ratio | '
             'det / stoch ratio | deploy | env steps | fine-tuning CPU / wall |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        cells = [reporting.format_eval(r[f'{lab}_{m}'], metric_name).rsplit(' (', 1)[0]
                 for lab in ('base', 'selected') for m in reporting.MODES]
        lines.append(f"| {r['seed']} | " + ' | '.join(cells) +
                     f" | {r['best_mode_ratio']:.2f}x | {r['deterministic_ratio']:.2f}x / "
                     f"{r['stochastic_ratio']:.2f}x | {r['deploy_mode']} | {r['env_steps']:,} | "
                     f"{_minutes(r['cpu_s'])} / {_minutes(r['wall_s'])} min |")

    def mean_sd(values, fmt: str) -> str:
        values = np.asarray(values, dtype=float)
        if not np.isfinite(values).all():
            return 'n/a'
        sd = values.std(ddof=1) if len(values) > 1 else 0.0
        return f'{values.mean():{fmt}} +- {sd:{fmt}}'
    score_fmt = '.1%' if metric_name == 'success' else '.0f'
    cells = [mean_sd([reporting.metric(r[f'{lab}_{m}'], metric_name) for r in rows], score_fmt)
             for lab in ('base', 'selected') for m in reporting.MODES]
    lines.append(f'| mean +- sd ({len(rows)} seeds) | ' + ' | '.join(cells) +
                 f" | {mean_sd([r['best_mode_ratio'] for r in rows], '.2f')}x | "
                 f"{mean_sd([r['deterministic_ratio'] for r in rows], '.2f')}x / "
                 f"{mean_sd([r['stochastic_ratio'] for r in rows], '.2f')}x | | "
                 f"{mean_sd([r['env_steps'] for r in rows], ',.0f')} | "
                 f"{mean_sd([r['cpu_s'] / 60 for r in rows], '.1f')} / "
                 f"{mean_sd([r['wall_s'] / 60 for r in rows], '.1f')} min |")
    best = {lab: [max(reporting.metric(r[f'{lab}_{m}'], metric_name) for m in reporting.MODES)
                  for r in rows] for lab in ('base', 'selected')}
    gain = np.subtract(best['selected'], best['base'])
    gain_fmt = '.1f' if metric_name == 'success' else '.0f'
    scale = 100.0 if metric_name == 'success' else 1.0
    lines += ['', f"Best mode (what is deployed), mean +- sd over seeds: base "
              f"{mean_sd(best['base'], score_fmt)} -> RLDT {mean_sd(best['selected'], score_fmt)}"
              f"; difference {mean_sd(gain * scale, gain_fmt)}"
              f"{' points' if metric_name == 'success' else ''}."]
    met = [r['best_mode_ratio'] >= GAIN and min(r['deterministic_ratio'],
                                                r['stochastic_ratio']) >= FLOOR for r in rows]
    lines += ['', f'Seeds whose fine-tuned best mode is >= {GAIN:.2f}x the base\'s best mode '
              f'with neither mode below {FLOOR:.2f}x its base: {sum(met)} of {len(rows)}.',
              '', '![curves](benchmark.png)', '']
    return '\n'.join(lines)


def _plot(rows: list[dict], metric_name: str, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, mode in zip(axes, reporting.MODES):
        for r in rows:
            x = [e['env_steps'] for e in r['history']]
            y = [reporting.metric(e[mode], metric_name) for e in r['history']]
            line, = ax.plot(x, y, marker='o', ms=2, label=f"seed {r['seed']}")
            ax.axhline(reporting.metric(r[f'base_{mode}'], metric_name), color=line.get_color(),
                       ls=':', lw=1)
        ax.set_title(f'{mode} (dotted: base, held-out evaluation)', fontsize=9)
        ax.set_xlabel('env steps')
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('success rate' if metric_name == 'success' else 'episode return')
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_benchmark(config: TrainConfig, config_path: Path, overrides: list[str],
                  seeds: list[int], out: Path, jobs: int = 2) -> dict:
    """Every stage for every seed; writes the report; returns a summary."""
    from rldt_train.evaluate import task_has_success
    from rldt_train.finetune import selection_metric
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / 'config.yaml')
    t0 = time.perf_counter()
    dataset = run_collect(config, dataset_path(config), reuse=True)
    print(f"benchmark: dataset {dataset['path']} ({dataset['steps']} transitions, return "
          f"{dataset['return_mean']:.0f})", flush=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {seed: pool.submit(_run_seed, Path(config_path), overrides, seed,
                                     Path(dataset['path']), out) for seed in seeds}
        timings = {}
        for seed, future in futures.items():
            timings[seed] = future.result()
            print(f'benchmark: seed {seed} done ({timings[seed]})', flush=True)
    metric_name = selection_metric(config.finetune.select_metric,
                                   task_has_success(config.task))
    rows = [_seed_result(out, seed, metric_name, timings[seed]) for seed in seeds]
    (out / 'benchmark.md').write_text(_table(rows, metric_name, config, dataset))
    _plot(rows, metric_name, out / 'benchmark.png',
          f'RLDT on {config.task}: in-run evaluation per seed ({config.finetune.eval_episodes} '
          'episodes per point)')
    numbers = {'task': config.task, 'dataset': dataset, 'metric': metric_name,
               'rows': [{k: v for k, v in r.items() if k != 'history'} for r in rows],
               'timings_s': timings, 'wall_s': time.perf_counter() - t0}
    (out / 'benchmark.json').write_text(json.dumps(numbers, indent=2, default=str))
    return {'report': str(out / 'benchmark.md'), 'seeds': len(seeds),
            'best_mode_ratio': ' '.join(f"{r['best_mode_ratio']:.2f}" for r in rows),
            'wall_s': numbers['wall_s']}
