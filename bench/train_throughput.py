"""RLDT fine-tuning throughput: seconds per iteration and env steps/s, vs a baseline revision.

Runs a few REAL fine-tuning iterations (`run_finetune`, a freshly initialised policy of the
configured size, real vectorized envs) of this working tree and, in the same invocation, of a
baseline git revision checked out into a temporary worktree, each in its own subprocess with
one torch thread. Both use the same task, env count, rollout length and update budget
(critic and actor steps per iteration). Two measures: CPU seconds per iteration (the child
process's user + system time over the whole run, divided by the iterations: robust to other
jobs on a shared machine, since each run is single-threaded) and the median wall seconds of the
iterations between the first and the last (the last one also evaluates). env steps/s counts
everything (collection and updates). Prints a table and one JSON line.

    python bench/train_throughput.py                                  # CPU scale, Hopper-v5, 24 it
    python bench/train_throughput.py --baseline-rev none --config config/train/hopper.yaml

The default baseline is the last revision before the learner was restructured (critic on
sampled batches with targets bootstrapped over the whole replay, actor on uniform replay
states); the ratio is what the restructure bought at equal settings.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REV = '0a5dca1'
# Settings both revisions understand: the CPU-scale run of the issue that asked for the speed-up.
COMMON = ['finetune.num_envs=16', 'finetune.rollout_steps=64', 'finetune.vectorization=sync',
          'finetune.warmup_iterations=1', 'finetune.eval_every=0', 'finetune.eval_episodes=2',
          'device=cpu', 'torch_threads=1']

RUNNER = r'''
import json, sys, time
import torch
from rldt_train.config import load_config
from rldt_train.envs.registry import make_env
from rldt_train.policy.flow_policy import FlowPolicy, save_policy
from rldt_train.pretrain import policy_config
try:
    from rldt_train.finetune import run_finetune
except ImportError:                       # revisions before the restructure
    from rldt_train.rl.finetune import run_finetune
config_path, run_dir, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
config = load_config(config_path, overrides)
torch.set_num_threads(1)
env = make_env(config.task)
obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
env.close()
policy = FlowPolicy(policy_config(config, obs_dim, action_dim))
save_policy(run_dir + '/base.pt', policy)
start = time.perf_counter()
run_finetune(config, run_dir, run_dir + '/base.pt', progress=False)
total = time.perf_counter() - start
state = torch.load(run_dir + '/checkpoints/finetune_last.pt', weights_only=True)
run = state.get('run', state)
print('RESULT ' + json.dumps({'iteration_s': run['history']['iteration_s'],
                              'env_steps': run['env_steps'], 'total_s': total}))
'''


def measure(tree: Path, config: str, overrides: list[str], label: str) -> dict:
    """Run the runner inside `tree` (a checkout) and return its numbers."""
    with tempfile.TemporaryDirectory() as run_dir:
        env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS='1')
        cmd = [sys.executable, '-c', RUNNER, config, run_dir, *overrides]
        print(f'[{label}] {tree}: {" ".join(overrides)}', flush=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if out.returncode != 0:
            raise RuntimeError(f'{label} failed:\n{out.stderr[-3000:]}')
        line = next(x for x in out.stdout.splitlines() if x.startswith('RESULT '))
        result = json.loads(line[len('RESULT '):])
    times = result['iteration_s']
    steady = times[1:-1] if len(times) > 2 else times
    iteration_s = float(np.median(steady))
    per_iteration_env_steps = result['env_steps'] / len(times)
    cpu_per_iteration = cpu_s / len(times)
    return {'label': label, 'iteration_s': iteration_s, 'cpu_s_per_iteration': cpu_per_iteration,
            'env_steps_per_cpu_s': per_iteration_env_steps / cpu_per_iteration,
            'env_steps_per_s': per_iteration_env_steps / iteration_s,
            'iterations': len(times), 'env_steps': result['env_steps']}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default='config/train/hopper.yaml',
                        help='a config both revisions have (its method settings are used)')
    parser.add_argument('--iterations', type=int, default=24,
                        help='the baseline\'s replay (20 rollouts) is full from iteration 20')
    parser.add_argument('--baseline-rev', default=BASELINE_REV,
                        help="git revision to compare with ('none': this tree only)")
    parser.add_argument('overrides', nargs='*', help='extra key=value for this tree only')
    args = parser.parse_args()
    common = COMMON + [f'finetune.iterations={args.iterations}']
    rows = []
    if args.baseline_rev != 'none':
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / 'baseline'
            subprocess.run(['git', '-C', str(ROOT), 'worktree', 'add', '--detach', str(tree),
                            args.baseline_rev], check=True, capture_output=True)
            try:
                rows.append(measure(tree, args.config, common,
                                    f'baseline {args.baseline_rev}'))
            finally:
                subprocess.run(['git', '-C', str(ROOT), 'worktree', 'remove', '--force',
                                str(tree)], check=False, capture_output=True)
    current = common + ['finetune.final_eval_episodes=2', *args.overrides]
    rows.append(measure(ROOT, args.config, current, 'this tree'))
    base = rows[0]
    print(f'\nRLDT fine-tuning throughput, {args.config} at 16 envs x 64 chunk steps, '
          f'1 torch thread, {platform.processor() or platform.machine()}')
    print(f'{"run":<22} {"CPU s / it":>11} {"env steps / CPU s":>18} {"wall s / it":>12} '
          f'{"speed-up (CPU)":>15} {"speed-up (wall)":>16}')
    for row in rows:
        row['speedup_cpu'] = base['cpu_s_per_iteration'] / row['cpu_s_per_iteration']
        row['speedup_wall'] = base['iteration_s'] / row['iteration_s']
        print(f'{row["label"]:<22} {row["cpu_s_per_iteration"]:>11.2f} '
              f'{row["env_steps_per_cpu_s"]:>18.0f} {row["iteration_s"]:>12.2f} '
              f'{row["speedup_cpu"]:>14.2f}x {row["speedup_wall"]:>15.2f}x')
    print(json.dumps({'bench': 'train_throughput', 'config': args.config, 'rows': rows}))


if __name__ == '__main__':
    main()
