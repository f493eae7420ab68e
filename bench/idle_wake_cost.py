"""What the policy node's per-command steps cost right after the process idled, as it does
between observations, against back to back.

    bash scripts/loopback.sh .venv/bin/python bench/idle_wake_cost.py [--model models/NAME]

The node wakes for each observation (every 10-20 ms at 50-100 Hz) and then maps the joint
states, samples a chunk (one in steps_per_chunk observations), filters the action and
publishes the command. Each of those steps is timed here in three modes: back to back (the
baseline: hot caches, the CPU never idles), after a 10-ms sleep (the node's pattern), and after
a 10-ms busy-wait (the CPU stays on this process but the other process's work in between -
the subscriber of the command - still runs). The ratios say how much of the node's in-node
time is the machine's wake-up cost rather than the node's code. The command is published
RELIABLE (depth 10, the node's QoS) to a subscriber in another process. Prints a table and
one JSON line. Not a test: `make test` never runs it.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rldt_ros.model_card import load_model_card  # noqa: E402
from rldt_ros.observation import JointStateMapper  # noqa: E402
from rldt_ros.safety import CommandFilter  # noqa: E402
from rldt_ros.sampler import ChunkSampler  # noqa: E402

SUBSCRIBER = r"""
import sys, rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray
rclpy.init(domain_id=int(sys.argv[1]))
node = rclpy.create_node('bench_wake_subscriber')
node.create_subscription(Float64MultiArray, 'bench_commands', lambda msg: None,
                         QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass  # stopped by the bench's SIGTERM
except RuntimeError:  # the signal shut the context down under a wait set being built
    if rclpy.ok():
        raise
"""
MODES = ('back to back', 'after 10 ms sleep', 'after 10 ms busy-wait')


def pause(mode: str, seconds: float = 0.010) -> None:
    if mode == 'after 10 ms sleep':
        time.sleep(seconds)
    elif mode == 'after 10 ms busy-wait':
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default=str(REPO / 'models' / 'cube_push'))
    parser.add_argument('--runs', type=int, default=500, help='timed calls per step and mode')
    parser.add_argument('--domain-id', type=int, default=79)
    args = parser.parse_args()

    import rclpy
    from rclpy.qos import QoSProfile
    from rclpy.qos import ReliabilityPolicy
    from std_msgs.msg import Float64MultiArray

    card = load_model_card(args.model)
    sampler = ChunkSampler(card, 'cpu', intra_op_threads=1)
    sampler.warmup(20)
    obs = {'state': np.zeros(card.state_dim)}
    for camera in card.cameras:
        obs[camera.name] = np.zeros((camera.height, camera.width, 3), np.uint8)
    joints = list(card.state_joints)
    mapper = JointStateMapper(joints, list(card.state_fields))
    positions, velocities = [0.1] * len(joints), [0.0] * len(joints)
    command_filter = CommandFilter(np.asarray(card.action_low), np.asarray(card.action_high),
                                   0.1)
    action = np.asarray(card.action_low) * 0.5 + np.asarray(card.action_high) * 0.5
    measured = action.copy()

    rclpy.init(domain_id=args.domain_id)
    node = rclpy.create_node('bench_wake_publisher')
    publisher = node.create_publisher(
        Float64MultiArray, 'bench_commands',
        QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    subscriber = subprocess.Popen([sys.executable, '-c', SUBSCRIBER, str(args.domain_id)])
    deadline = time.monotonic() + 20
    while publisher.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)

    command = Float64MultiArray(data=action.tolist())
    steps = {
        'map joint states': lambda: mapper.state(joints, positions, velocities),
        'sample a chunk': lambda: sampler.sample(obs),
        'filter the action': lambda: command_filter.apply(action, measured),
        'build the command': lambda: Float64MultiArray(data=action.tolist()),
        'publish the command': lambda: publisher.publish(command),
    }
    results = {}
    try:
        for name, step in steps.items():
            for mode in MODES:
                for _ in range(20):  # warm-up
                    step()
                times = []
                for _ in range(args.runs):
                    pause(mode)
                    start = time.perf_counter()
                    step()
                    times.append((time.perf_counter() - start) * 1e3)
                p50, p99 = np.percentile(times, [50, 99])
                results[(name, mode)] = {'p50': float(p50), 'p99': float(p99)}
    finally:
        subscriber.terminate()
        subscriber.wait(timeout=10)
        node.destroy_node()
        rclpy.try_shutdown()

    print(f'{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, model {card.name}, '
          f'{args.runs} calls per cell; ms p50 / p99 (x back to back at the median)')
    header = f'{"step":<22}' + ''.join(f'{mode:>30}' for mode in MODES)
    print(header)
    print('-' * len(header))
    for name in steps:
        base = results[(name, MODES[0])]['p50']
        cells = []
        for mode in MODES:
            r = results[(name, mode)]
            cells.append(f'{r["p50"]:.4f} / {r["p99"]:.4f} ({r["p50"] / base:5.1f}x)')
        print(f'{name:<22}' + ''.join(f'{c:>30}' for c in cells))
    print(json.dumps({'bench': 'idle_wake_cost', 'cpus': os.cpu_count(),
                      'load_average': os.getloadavg(), 'model': card.name,
                      'results': [{'step': n, 'mode': m, **v}
                                  for (n, m), v in results.items()]}))


if __name__ == '__main__':
    main()
