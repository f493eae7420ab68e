"""The same exported model in simulation (ONNX in the gymnasium env) and in the ROS 2 loop.

    bash scripts/loopback.sh .venv/bin/python bench/loop_vs_sim.py --model models/NAME

Simulation: `rldt_train.evaluate` with ONNX Runtime in the model card's sampling mode
(sampler.deterministic), --sim-episodes episodes from env seed 1000. ROS loop: `rldt-ros run
loop` (sim node + policy node over DDS, sim time at --real-time-factor), --loop-episodes
episodes from sim seed --loop-seed; --lockstep makes the sim node wait for each command
(a busy computer then slows the loop down instead of delaying commands: what remains is the
data path, images and DDS included). Success with 95% Wilson intervals and the difference in
points; prints a table and one JSON line. Long: run it with `nice -n 19` (minutes).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

from rldt_ros.model_card import load_model_card  # noqa: E402
from rldt_train.evaluate import evaluate  # noqa: E402
from rldt_train.evaluate import onnx_policy  # noqa: E402
from rldt_train.reporting import wilson_interval  # noqa: E402
from rldt_train.ros_loop import run_ros_loop  # noqa: E402


def summary(successes: list[bool]) -> dict:
    low, high = wilson_interval(np.asarray(successes, bool))
    return {'episodes': len(successes), 'success': float(np.mean(successes)),
            'ci95': [float(low), float(high)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', required=True)
    parser.add_argument('--sim-episodes', type=int, default=100, help='0: skip')
    parser.add_argument('--loop-episodes', type=int, default=50, help='0: skip')
    parser.add_argument('--loop-seed', type=int, default=0)
    parser.add_argument('--real-time-factor', type=float, default=2.0)
    parser.add_argument('--lockstep', action='store_true')
    parser.add_argument('--domain-id', type=int, default=83)
    parser.add_argument('--log', default=str(REPO / 'reports' / 'ros_loop_vs_sim.log'),
                        help='the loop nodes\' output (reports/ is not versioned)')
    parser.add_argument('--ros-args', nargs=argparse.REMAINDER, default=[],
                        help='more arguments for both nodes, e.g. -p max_delta_per_tick:=0.1')
    args = parser.parse_args()
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    card = load_model_card(args.model)
    rows, wall = {}, {}
    if args.sim_episodes:
        t0 = time.monotonic()
        sim = evaluate(onnx_policy(args.model, deterministic=card.deterministic), card.task,
                       args.sim_episodes, card.steps_per_chunk)
        wall['sim_s'] = time.monotonic() - t0
        rows['simulation (ONNX, gymnasium env)'] = summary(list(sim.successes))
    stats = {}
    if args.loop_episodes:
        loop = run_ros_loop(args.model, args.loop_episodes, args.domain_id,
                            timeout_s=60.0 * args.loop_episodes, log_path=args.log,
                            ros_args=['-p', f'real_time_factor:={args.real_time_factor}',
                                      '-p', f'seed:={args.loop_seed}',
                                      '-p', f'lockstep:={str(args.lockstep).lower()}',
                                      *args.ros_args])
        wall['loop_s'] = loop['wall_s']
        stats = loop['stats']
        name = f'ROS loop ({"lockstep" if args.lockstep else "free-running"}, DDS)'
        rows[name] = summary([e['success'] for e in loop['episodes']])
    mode = 'deterministic' if card.deterministic else 'stochastic'
    print(f'model {card.name} {card.version} ({card.task}), {mode} sampling (model card), '
          f'{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; wall '
          + ', '.join(f'{k} {v:.0f}' for k, v in wall.items()))
    print(f'{"where":<40} {"episodes":>8} {"success":>8} {"95% interval":>16}')
    for name, r in rows.items():
        print(f'{name:<40} {r["episodes"]:8d} {100 * r["success"]:7.1f}% '
              f'{100 * r["ci95"][0]:6.1f}-{100 * r["ci95"][1]:.1f}%')
    values = list(rows.values())
    diff = 100 * (values[1]['success'] - values[0]['success']) if len(values) == 2 else None
    if diff is not None:
        print(f'loop - simulation: {diff:+.1f} points')
    print(json.dumps({'bench': 'loop_vs_sim', 'model': str(args.model), 'task': card.task,
                      'mode': mode, 'cpus': os.cpu_count(), 'rows': rows,
                      'loop_minus_sim_points': diff, 'loop_seed': args.loop_seed,
                      'real_time_factor': args.real_time_factor, 'lockstep': args.lockstep,
                      'load_average': os.getloadavg(), 'wall_s': wall,
                      'loop_policy_stats': {k: stats.get(k) for k in (
                          'sampler_ms', 'obs_to_cmd_ms', 'missed_ticks', 'held', 'stopped',
                          'skipped_actions', 'converted_images', 'episodes')}}))


if __name__ == '__main__':
    main()
