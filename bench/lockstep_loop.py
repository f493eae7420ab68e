"""How steadily the lockstep simulation loop runs: episodes per second and the longest wait.

    bash scripts/loopback.sh .venv/bin/python bench/lockstep_loop.py [--seconds 45 --repeats 3]

Runs `rldt-ros run loop` (shipped model, sim time at --real-time-factor, lockstep with a 3-s
timeout, 30-step episodes) for --seconds, --repeats times per executor, and reads the sim node's
episode reports from its log: episodes per wall second, the longest gap between two reports,
the steps that ran without an answer (`steps_without_command`). A policy that misses a slot
shows up as a gap of whole lockstep timeouts (an episode normally takes ~0.03-0.1 s here). The
baseline is the same loop without lockstep in the same run (free running: the sim steps at its
rate whether or not the policy answered), so the ratio is what waiting for every answer costs.
Prints a table and one JSON line.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EPISODE = re.compile(r'\[(\d+\.\d+)\] \[sim_node\]: episode (\{.*\})')


def run_loop(model: str, executor: str, lockstep: bool, seconds: float, rtf: float) -> dict:
    env = dict(os.environ, ROS_DOMAIN_ID=str(60 + os.getpid() % 40), PYTHONUNBUFFERED='1',
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    with tempfile.TemporaryFile('w+') as log:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'rldt_ros.cli', 'run', 'loop', '--model', model, '--',
             '-p', f'lockstep:={str(lockstep).lower()}', '-p', f'real_time_factor:={rtf}',
             '-p', 'lockstep_timeout_s:=3.0', '-p', 'max_episode_steps:=30',
             '-p', f'executor:={executor}'],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        time.sleep(seconds)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.seek(0)
        found = [(float(t), json.loads(r)) for t, r in EPISODE.findall(log.read())]
    times = [t for t, _ in found[1:]]  # from the end of the first episode: start-up excluded
    gaps = [b - a for a, b in zip(times, times[1:])]
    span = times[-1] - times[0] if len(times) > 1 else float('nan')
    return {'episodes': len(gaps), 'episodes_per_s': len(gaps) / span if gaps else 0.0,
            'max_gap_s': max(gaps, default=float('nan')),
            'steps_without_command': sum(r['steps_without_command'] for _, r in found[1:]),
            'exit_code': proc.returncode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default=str(REPO / 'models' / 'cube_push'))
    parser.add_argument('--seconds', type=float, default=45.0)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--real-time-factor', type=float, default=50.0)
    parser.add_argument('--executors', nargs='+', default=['events', 'single_threaded'])
    args = parser.parse_args()
    rows = []
    for repeat in range(args.repeats):
        for executor in args.executors:
            for lockstep in (False, True):
                row = run_loop(args.model, executor, lockstep, args.seconds,
                               args.real_time_factor)
                rows.append({'repeat': repeat, 'executor': executor, 'lockstep': lockstep,
                             **row})
                print(f'  ran {executor:<16} lockstep={lockstep!s:<5} {row["episodes"]} '
                      f'episodes', file=sys.stderr, flush=True)
    print(f'{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, {args.seconds:.0f} s per run, '
          f'real_time_factor {args.real_time_factor}, model {Path(args.model).name}')
    header = (f'{"executor":<16}{"run":>4}{"free ep/s":>11}{"lockstep ep/s":>15}{"ratio":>7}'
              f'{"max gap s":>11}{"late steps":>12}{"exit":>6}')
    print(header)
    print('-' * len(header))
    for executor in args.executors:
        for repeat in range(args.repeats):
            free, locked = (next(r for r in rows if r['executor'] == executor
                                 and r['repeat'] == repeat and r['lockstep'] == lockstep)
                            for lockstep in (False, True))
            ratio = locked['episodes_per_s'] / free['episodes_per_s'] \
                if free['episodes_per_s'] else float('nan')
            print(f'{executor:<16}{repeat:>4}{free["episodes_per_s"]:>11.1f}'
                  f'{locked["episodes_per_s"]:>15.1f}{ratio:>7.2f}{locked["max_gap_s"]:>11.3f}'
                  f'{locked["steps_without_command"]:>12}{locked["exit_code"]:>6}')
    print(json.dumps({'bench': 'lockstep_loop', 'cpus': os.cpu_count(), 'seconds': args.seconds,
                      'real_time_factor': args.real_time_factor, 'rows': rows}))


if __name__ == '__main__':
    main()
