"""What training under the deployment's conditions costs in env throughput.

Rows: chunked vector envs of cube_push (16 envs, H = 4, random chunks, as RLDT collects) bare
(the baseline), with the command filter, with filter + action delay 0-2, with domain
randomization, and with all of config/train/cube_push_robust.yaml's env section. Rows are
interleaved over `--repeats` rounds and the median is reported, so load from other jobs hits
every row alike; ratios are against the bare env of the same run.

    python bench/deployment_env_throughput.py [--seconds 2] [--repeats 3]

Prints a table, then one JSON line.
"""
import argparse
import json
import os
import platform
import time

import numpy as np

from rldt_train.config import EnvSection
from rldt_train.config import load_config
from rldt_train.envs.registry import make_vector_env

CONFIG = os.path.join(os.path.dirname(__file__), '..', 'config', 'train',
                      'cube_push_robust.yaml')


def env_steps_per_s(conditions: EnvSection, seconds: float, num_envs: int = 16,
                    horizon: int = 4) -> float:
    venv = make_vector_env('cube_push', num_envs, horizon, seed=0, conditions=conditions)
    rng = np.random.default_rng(0)
    low, high = venv.single_action_space.low, venv.single_action_space.high
    chunks = rng.uniform(low, high, (64, num_envs, *low.shape))
    venv.step(chunks[0])                               # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        venv.step(chunks[count % len(chunks)])
        count += 1
    elapsed = time.perf_counter() - start
    venv.close()
    return count * num_envs * horizon / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=2.0)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    robust = load_config(CONFIG).env
    rows = {
        'bare simulator (baseline)': EnvSection(),
        'command filter 0.1': EnvSection(max_delta_per_tick=0.1),
        'filter + action delay 0-2': EnvSection(max_delta_per_tick=0.1,
                                                action_delay_ticks=[0, 2]),
        'randomization only': EnvSection(randomization=robust.randomization),
        'cube_push_robust.yaml env': robust,
    }
    samples = {name: [] for name in rows}
    for _ in range(args.repeats):
        for name, conditions in rows.items():
            samples[name].append(env_steps_per_s(conditions, args.seconds))
    median = {name: float(np.median(v)) for name, v in samples.items()}
    base = median['bare simulator (baseline)']
    print(f'{"env (16 x cube_push, H = 4)":<30} {"env steps/s":>12} {"vs bare":>8}')
    for name, value in median.items():
        print(f'{name:<30} {value:>12,.0f} {value / base:>7.2f}x')
    print(json.dumps({'bench': 'deployment_env_throughput', 'machine': platform.machine(),
                      'cpus': os.cpu_count(), 'seconds': args.seconds,
                      'repeats': args.repeats, 'env_steps_per_s': median,
                      'ratio_vs_bare': {k: v / base for k, v in median.items()}}))


if __name__ == '__main__':
    main()
