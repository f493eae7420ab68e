"""`rldt-ros`: run the robot-side nodes without a ROS install, and check model folders.

`rldt-ros run loop|policy|sim` starts the same node executables with the same parameter files
that launch/*.launch.py use, one child process per node, in one ROS_DOMAIN_ID. It is the
`ros2 launch` stand-in for machines with rclpy from PyPI only (tests, demos, laptops): signals
are forwarded, and when one node exits the others are stopped (like a required node in launch).
DDS discovery stays on this computer (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) unless
--real-network is given, e.g. to reach a robot.
"""
import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_MODEL = 'cube_push'


def share_dir(name: str) -> Path:
    """config/ or models/ of a source checkout, a pip install (share/rldt_ros) or a ROS
    install."""
    candidates = [Path(__file__).resolve().parents[1] / name,
                  Path(sys.prefix) / 'share' / 'rldt_ros' / name]
    for path in candidates:
        if path.is_dir():
            return path
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('rldt_ros')) / name


def config_dir() -> Path:
    return share_dir('config')


def _ros_value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def node_commands(what: str, model: str | None, ros_args: list[str], params: str | None = None,
                  sim_params: str | None = None) -> list:
    """One command line per node, with the parameter files and values that policy.launch.py
    gives the same nodes (rldt_ros.parameters.node_parameters)."""
    from rldt_ros.parameters import node_parameters  # rclpy: not needed by `check`
    model = str(Path(model).resolve()) if model else None
    plan = node_parameters(what, config_dir(), model, params, sim_params)
    commands = []
    for node, node_plan in plan.items():
        cmd = [sys.executable, '-m', f'rldt_ros.{node}', '--ros-args']
        for source in node_plan.parameters:
            if isinstance(source, dict):
                for name, value in source.items():
                    cmd += ['-p', f'{name}:={_ros_value(value)}']
            else:
                cmd += ['--params-file', str(source)]
        for topic, to in node_plan.remappings:
            cmd += ['-r', f'{topic}:={to}']
        commands.append(cmd + ros_args)
    return commands


def run(args: argparse.Namespace) -> int:
    if args.what == 'sim' and args.params and not args.sim_params:
        args.sim_params, args.params = args.params, None  # the only node started
    for given in (args.params, args.sim_params):
        if given and not Path(given).is_file():
            print(f'rldt-ros: parameter file {given} not found', file=sys.stderr)
            return 2
    if args.model is None and args.what != 'sim':
        args.model = str(share_dir('models') / DEFAULT_MODEL)  # the shipped default model
    env = dict(os.environ)
    if args.domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(args.domain_id)
    if not args.real_network:
        env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    children = []

    def forward(signum, frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)
    # Before the children exist: a Ctrl-C during start-up must be forwarded, not a traceback.
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for cmd in node_commands(args.what, args.model, args.ros_args, args.params,
                             args.sim_params):
        children.append(subprocess.Popen(cmd, env=env))
    code = None
    while code is None:
        for child in children:
            if child.poll() is not None:
                code = child.returncode
                break
        time.sleep(0.05)
    forward(signal.SIGINT, None)
    deadline = time.monotonic() + 5.0
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    # A node stopped by our signal ends with -SIGINT or 0: report the first real failure.
    codes = [c.returncode for c in children]
    failures = [c for c in codes if c not in (0, -signal.SIGINT, -signal.SIGTERM)]
    return failures[0] if failures else max(0, code)


def check(args: argparse.Namespace) -> int:
    """Load and verify a model folder, run the sampler, print what a robot would run."""
    from rldt_ros.model_card import ModelCardError
    from rldt_ros.model_card import load_model_card
    from rldt_ros.sampler import ChunkSampler
    try:
        card = load_model_card(args.model)
        sampler = ChunkSampler(card, args.providers, intra_op_threads=args.threads)
    except ModelCardError as exc:
        print(f'rldt-ros check: {exc}', file=sys.stderr)
        return 1
    sampler.warmup(5)
    obs = {'state': np.zeros(card.state_dim)}
    for camera in card.cameras:
        obs[camera.name] = np.zeros((camera.height, camera.width, 3), np.uint8)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        chunk = sampler.sample(obs)
        times.append((time.perf_counter() - start) * 1e3)
    finite = bool(np.all(np.isfinite(chunk)))
    p50, p99 = np.percentile(times, [50, 99])
    print(f'model      {card.name} {card.version} (task {card.task}, {card.folder})')
    print(f'state      {card.state_dim}: {", ".join(card.state_fields)} of '
          f'{", ".join(card.state_joints)}')
    print(f'cameras    {[f"{c.name} {c.height}x{c.width} on {c.topic}" for c in card.cameras]}')
    units = ', '.join(f'{n} [{u}]' for n, u in zip(card.action_names, card.action_units))
    print(f'action     {card.action_dim}: {units}')
    print(f'chunk      H={card.chunk_length}, {card.steps_per_chunk} executed, '
          f'{card.control_rate_hz} Hz, {card.sampler_steps} sampler steps')
    print(f'provider   {sampler.provider}')
    print(f'sample     p50 {p50:.3f} ms, p99 {p99:.3f} ms over {args.runs} runs; '
          f'output finite: {finite}')
    return 0 if finite else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='rldt-ros', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    r = sub.add_parser('run', help='start the nodes (what ros2 launch does, without ROS)',
                       epilog='Arguments after -- (or --ros-args) go to every node, e.g. '
                              '-- -p enable_control:=true')
    r.add_argument('what', choices=['loop', 'policy', 'sim'], help='loop = sim + policy')
    r.add_argument('--params', help='ros__parameters YAML of the policy node instead of '
                   'config/policy.yaml (loop also loads config/policy_sim.yaml after it)')
    r.add_argument('--sim-params', help='ros__parameters YAML of the sim node instead of '
                   'config/sim.yaml')
    r.add_argument('--model', help='model folder for the policy node (default: the shipped '
                   f'models/{DEFAULT_MODEL})')
    r.add_argument('--domain-id', type=int, help='ROS_DOMAIN_ID (default: inherited)')
    r.add_argument('--real-network', action='store_true',
                   help='allow DDS discovery beyond this computer (to reach a robot)')
    c = sub.add_parser('check', help='verify a model folder and time its sampler')
    c.add_argument('model', help='model folder (models/NAME)')
    c.add_argument('--providers', default='auto', help="e.g. 'cpu', 'cuda', 'auto'")
    c.add_argument('--threads', type=int, default=1, help='ONNX Runtime intra-op threads')
    c.add_argument('--runs', type=int, default=200, help='timed sampler runs')
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = next((i for i, a in enumerate(argv) if a in ('--', '--ros-args')), len(argv))
    args = build_parser().parse_args(argv[:split])
    args.ros_args = argv[split + 1:]
    return run(args) if args.command == 'run' else check(args)


if __name__ == '__main__':
    sys.exit(main())
