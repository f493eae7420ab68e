"""Real-time loop benchmark: MuJoCo sim node + policy node over real DDS at 50 and 100 Hz.

    bash scripts/loopback.sh .venv/bin/python bench/ros_latency.py [--model models/NAME]

In the same run: the sampler alone in this process (the baseline: what inference costs without
ROS; back to back, and once per chunk with the node's idle time between calls, which on a
small VM leaves the caches cold), DDS alone per executor and rate (a JointState of the task's
size from another process to a subscription here, the node's QoS: what delivery plus an rclpy
callback cost before any node work, the floor under obs->cmd on this machine), then per rate and
inference trigger (`observation`: sampled when the observation arrives; `timer`: on the next
control tick, the baseline of the ratios) and rclpy executor of both nodes (`events`, the
default; `single_threaded`, the baseline) the full loop through `rldt-ros run loop` on wall-
clock time for --seconds: sampler time inside the node, observation-to-command latency (DDS
source timestamp of the observation's oldest part -> command publish, so DDS is included) and
its two parts (delivery into the node's callback, time in the node), achieved command rate,
missed ticks, hold/stop ticks and CPU per node process. The sim node publishes the observation
at the control rate on its own clock (like a robot driver), the policy node commands at the
same rate on its own. Prints a table and one JSON line. Without --model it builds a stand-in
of a state policy's size (8 unrolled Euler steps of a 3x256 MLP) so the numbers do not depend
on a trained model; with a camera model (models/cube_push_vision) the sim renders its cameras
every step. Not a test: `make test` never runs it. Run it inside a loopback-only namespace (as
above).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rldt_ros.model_card import load_model_card  # noqa: E402
from rldt_ros.model_card import write_model_card  # noqa: E402
from rldt_ros.sampler import ChunkSampler  # noqa: E402
from rldt_ros.spinning import EXECUTORS  # noqa: E402
from rldt_ros.spinning import make_executor  # noqa: E402
from rldt_ros.spinning import with_message_info  # noqa: E402
from rldt_ros.tasks import make_task  # noqa: E402


def build_standin(folder: Path, steps: int = 8, hidden: int = 256) -> Path:
    """A flow-policy-shaped ONNX graph for cube_push with random weights (latency only)."""
    import onnx
    from onnx import TensorProto
    from onnx import helper
    from onnx import numpy_helper

    task = make_task('cube_push')
    joints, d, h, a = task.observed_joints, task.state_dim, 4, len(task.actuated_joints)
    rng = np.random.default_rng(0)
    sizes = [h * a + 1 + d, hidden, hidden, h * a]
    init = [numpy_helper.from_array(np.array(v, dtype=dt), name) for name, v, dt in (
        ('flat', [-1, h * a], np.int64), ('shape3', [-1, h, a], np.int64),
        ('zero', [0.0], np.float32), ('dt', [1.0 / steps], np.float32),
        ('s0', [0], np.int64), ('s1', [1], np.int64), ('ax1', [1], np.int64),
        ('mid', (task.action_low + task.action_high) / 2, np.float32),
        ('half', (task.action_high - task.action_low) / 2, np.float32))]
    for i in range(3):
        w = rng.normal(0, 1 / np.sqrt(sizes[i]), (sizes[i], sizes[i + 1])).astype(np.float32)
        init += [numpy_helper.from_array(w, f'w{i}'),
                 numpy_helper.from_array(np.zeros(sizes[i + 1], np.float32), f'b{i}')]
    nodes = [helper.make_node('Reshape', ['noise', 'flat'], ['x0']),
             helper.make_node('Slice', ['obs_state', 's0', 's1', 'ax1'], ['col']),
             helper.make_node('Mul', ['col', 'zero'], ['zcol'])]
    for k in range(steps):
        init.append(numpy_helper.from_array(np.array([k / steps], np.float32), f'tau{k}'))
        nodes += [helper.make_node('Add', ['zcol', f'tau{k}'], [f't{k}']),
                  helper.make_node('Concat', [f'x{k}', f't{k}', 'obs_state'], [f'in{k}'], axis=1)]
        last = f'in{k}'
        for i in range(3):
            nodes.append(helper.make_node('Gemm', [last, f'w{i}', f'b{i}'], [f'h{k}_{i}']))
            last = f'h{k}_{i}'
            if i < 2:
                nodes.append(helper.make_node('Relu', [last], [f'r{k}_{i}']))
                last = f'r{k}_{i}'
        nodes += [helper.make_node('Mul', [last, 'dt'], [f'v{k}']),
                  helper.make_node('Add', [f'x{k}', f'v{k}'], [f'x{k + 1}'])]
    nodes += [helper.make_node('Reshape', [f'x{steps}', 'shape3'], ['x_out']),
              helper.make_node('Tanh', ['x_out'], ['squash']),
              helper.make_node('Mul', ['squash', 'half'], ['scaled']),
              helper.make_node('Add', ['scaled', 'mid'], ['actions'])]
    graph = helper.make_graph(
        nodes, 'standin_flow_policy',
        [helper.make_tensor_value_info('obs_state', TensorProto.FLOAT, ['B', d]),
         helper.make_tensor_value_info('noise', TensorProto.FLOAT, ['B', h, a])],
        [helper.make_tensor_value_info('actions', TensorProto.FLOAT, ['B', h, a])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / 'policy.onnx')
    write_model_card(folder, {
        'name': 'standin', 'version': '0.0.0', 'task': 'cube_push',
        'observation': {'state': {'joints': joints, 'fields': ['position', 'velocity'],
                                  'dim': d}, 'cameras': []},
        'action': {'dim': a, 'names': task.actuated_joints, 'units': 'rad',
                   'low': task.action_low.tolist(), 'high': task.action_high.tolist(),
                   'chunk_length': h, 'steps_per_chunk': 2, 'control_rate_hz': 20.0},
        'sampler': {'steps': steps, 'method': 'euler', 'noise': 'gaussian'},
        'files': {'policy.onnx': {}},
        'provenance': {'built_by': 'bench/ros_latency.py (random weights)'},
    })
    return folder


def sampler_alone(folder: Path, providers: str, runs: int = 2000, pause_s: float = 0.0) -> dict:
    """Sampler latency without ROS. pause_s > 0: one call per pause, as in the node, which
    samples a chunk every steps_per_chunk ticks and idles between: the CPU's caches are cold by
    then (on the 2-core development VM a 20 ms pause makes a call 3x slower than back to back).
    """
    card = load_model_card(folder)
    sampler = ChunkSampler(card, providers, intra_op_threads=1)
    sampler.warmup(20)
    obs = {'state': np.zeros(card.state_dim)}
    for camera in card.cameras:
        obs[camera.name] = np.zeros((camera.height, camera.width, 3), np.uint8)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sampler.sample(obs)
        times.append((time.perf_counter() - start) * 1e3)
        time.sleep(pause_s)
    p50, p99 = np.percentile(times, [50, 99])
    return {'p50': float(p50), 'p99': float(p99), 'provider': sampler.provider}


DDS_PUBLISHER = r"""
import sys, rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
rclpy.init(domain_id=int(sys.argv[1]))
node = rclpy.create_node('bench_dds_publisher')
pub = node.create_publisher(JointState, 'bench_joint_states',
                            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
joints = int(sys.argv[3])
def tick():
    msg = JointState(name=[f'joint_{i}' for i in range(joints)], position=[0.1] * joints,
                     velocity=[0.0] * joints)
    msg.header.stamp = node.get_clock().now().to_msg()
    pub.publish(msg)
node.create_timer(1.0 / float(sys.argv[2]), tick)
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass  # stopped by stop_all's Ctrl-C
except RuntimeError:  # the Ctrl-C shut the context down under a wait set being built
    if rclpy.ok():
        raise
"""


def stop_all(process: subprocess.Popen, executor, node, context) -> None:
    """Ctrl-C to a child process, then this process's rclpy node and context."""
    import rclpy
    process.send_signal(signal.SIGINT)
    process.wait(timeout=10)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def dds_alone(rate_hz: float, seconds: float, domain: int, joints: int, executor: str) -> dict:
    """Delivery latency of joint states from another process: DDS source timestamp -> the
    entry of an rclpy callback here (on `executor`, RELIABLE, depth 10)."""
    import rclpy
    from rclpy.qos import QoSProfile
    from rclpy.qos import ReliabilityPolicy
    from sensor_msgs.msg import JointState

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node('bench_dds_subscriber', context=context)
    latencies_ms = []

    def on_state(msg, info):
        latencies_ms.append((time.time_ns() - info['source_timestamp']) / 1e6)
    node.create_subscription(JointState, 'bench_joint_states', with_message_info(on_state),
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    kind = executor
    executor, used, _ = make_executor(kind, context=context)
    executor.add_node(node)
    publisher = subprocess.Popen([sys.executable, '-c', DDS_PUBLISHER, str(domain),
                                  str(rate_hz), str(joints)], cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(latencies_ms) < rate_hz:  # 1 s warm-up
            executor.spin_once(timeout_sec=0.1)
        start = len(latencies_ms)
        end_s = time.monotonic() + seconds
        while time.monotonic() < end_s:
            executor.spin_once(timeout_sec=0.1)
    finally:
        stop_all(publisher, executor, node, context)
    window = latencies_ms[start:]
    if not window:
        raise RuntimeError(f'no joint states delivered at {rate_hz} Hz')
    p50, p99 = np.percentile(window, [50, 99])
    return {'rate_hz': rate_hz, 'executor': used, 'p50': float(p50), 'p99': float(p99),
            'messages': len(window)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def node_pids(launcher: subprocess.Popen) -> dict[str, int]:
    """Node processes started by `rldt-ros run`, by node name."""
    pids = {}
    children = Path(f'/proc/{launcher.pid}/task/{launcher.pid}/children').read_text().split()
    for pid in children:
        cmdline = Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')
        for name in ('policy_node', 'sim_node'):
            if f'rldt_ros.{name}'.encode() in cmdline:
                pids[name] = int(pid)
    return pids


def run_loop(folder: Path, rate_hz: float, seconds: float, providers: str, domain: int,
             trigger: str, executor_kind: str) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float64MultiArray
    from std_msgs.msg import String

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node('bench_probe', context=context)
    lock = threading.Lock()
    commands, stats = [], []

    def on_command(msg):
        with lock:
            commands.append(time.monotonic())

    def on_stats(msg):
        with lock:
            stats.append(json.loads(msg.data))
    node.create_subscription(Float64MultiArray, '/forward_position_controller/commands',
                             on_command, 10)
    node.create_subscription(String, '/policy_node/stats', on_stats, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    launcher = subprocess.Popen(
        [sys.executable, '-m', 'rldt_ros.cli', 'run', 'loop', '--model', str(folder),
         '--domain-id', str(domain), '--', '-p', f'control_rate_hz:={rate_hz}',
         '-p', 'max_episode_steps:=1000000000', '-p', f'providers:={providers}',
         '-p', 'diagnostics_period_s:=0.5', '-p', f'inference_trigger:={trigger}',
         '-p', f'executor:={executor_kind}',
         # Percentiles over the measured window (the node allows up to 60 s), not the
         # start-up before it.
         '-p', f'stats_window_s:={min(seconds, 60.0)}',
         # Wall-clock time, as on a robot: the sim node publishes on its own timer.
         '-p', 'publish_clock:=false', '-p', 'use_sim_time:=false'],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(commands) < rate_hz:  # 1 s of commands
            time.sleep(0.05)
        if len(commands) < rate_hz:
            raise RuntimeError(f'no command flow at {rate_hz} Hz within 30 s')
        pids = node_pids(launcher)
        cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}
        with lock:
            n0, stats0 = len(commands), stats[-1]
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        cpu = {n: 100 * (cpu_seconds(p) - cpu0[n]) / elapsed for n, p in pids.items()}
        time.sleep(0.6)  # one more stats report covering the window
        with lock:
            window = commands[n0:]
            last = stats[-1]
    finally:
        stop_all(launcher, executor, node, context)
    gaps_ms = np.diff(window) * 1e3
    ticks = last['ticks'] - stats0['ticks']
    missed = last['missed_ticks'] - stats0['missed_ticks']
    return {
        'rate_hz': rate_hz, 'trigger': trigger, 'executor': executor_kind,
        'achieved_hz': (len(window) - 1) / (window[-1] - window[0]),
        'gap_ms_p99': float(np.percentile(gaps_ms, 99)),
        'sampler_ms': last['sampler_ms'], 'obs_to_cmd_ms': last['obs_to_cmd_ms'],
        'delivery_ms': last['delivery_ms'], 'in_node_ms': last['in_node_ms'],
        'missed_ticks': missed, 'ticks': ticks,
        'missed_percent': 100.0 * missed / max(1, ticks + missed),
        'early_slots': last['early_slots'] - stats0['early_slots'],
        'late_slots': last['late_slots'] - stats0['late_slots'],
        'stale_ticks': last['stale_ticks'] - stats0['stale_ticks'],
        'held': last['held'] - stats0['held'], 'stopped': last['stopped'] - stats0['stopped'],
        'skipped_actions': last['skipped_actions'] - stats0['skipped_actions'],
        # Episode ends (successes) in the window: each skips the slots until the new first state.
        'episodes': last['episodes'] - stats0['episodes'],
        'cpu_percent': cpu, 'provider': last['provider'],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', help='model folder (default: a stand-in of realistic size)')
    parser.add_argument('--rates', type=float, nargs='+', default=[50.0, 100.0])
    parser.add_argument('--triggers', nargs='+', default=['timer', 'observation'],
                        choices=['timer', 'observation'])
    parser.add_argument('--seconds', type=float, default=10.0, help='measured window per row')
    parser.add_argument('--executors', nargs='+', default=list(EXECUTORS), choices=EXECUTORS,
                        help='rclpy executors of both nodes (single_threaded: the baseline)')
    parser.add_argument('--providers', default='cpu')
    parser.add_argument('--domain-id', type=int, default=77)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.model) if args.model else build_standin(Path(tmp) / 'standin')
        alone = sampler_alone(folder, args.providers)
        card = load_model_card(folder)
        joints = len(card.state_joints)
        # The node's pattern: one chunk every steps_per_chunk ticks (observation trigger).
        paced = {rate: sampler_alone(folder, args.providers, runs=200,
                                     pause_s=card.steps_per_chunk / rate)
                 for rate in args.rates}
        dds = [dds_alone(rate, args.seconds, args.domain_id + 50 + len(args.rates) * i + j,
                         joints, executor)
               for i, executor in enumerate(args.executors)
               for j, rate in enumerate(args.rates)]
        rows = []
        for rate in args.rates:
            for trigger in args.triggers:
                for executor in args.executors:
                    rows.append(run_loop(folder, rate, args.seconds, args.providers,
                                         args.domain_id + len(rows), trigger, executor))
    print(f'model {folder.name}, provider {alone["provider"]}, {os.cpu_count()} CPUs, load '
          f'{os.getloadavg()[0]:.1f}; sampler alone (baseline): p50 {alone["p50"]:.3f} ms, '
          f'p99 {alone["p99"]:.3f} ms; goal: obs->cmd p99 <= sampler p99 + 2 ms')
    print('sampler alone, one chunk per steps_per_chunk ticks as in the node (cold caches): '
          + ', '.join(f'{rate:.0f} Hz p50 {p["p50"]:.3f} / p99 {p["p99"]:.3f} ms'
                      for rate, p in paced.items()))
    print('DDS alone (joint states from another process to an rclpy callback): ' + ', '.join(
        f'{d["executor"]} {d["rate_hz"]:.0f} Hz p50 {d["p50"]:.2f} / p99 {d["p99"]:.2f} ms'
        for d in dds))
    header = (f'{"rate Hz":>7} {"trigger":>11} {"executor":>15} {"achieved":>8} '
              f'{"gap p99 ms":>10} '
              f'{"sampler p50/p99 ms":>18} {"obs->cmd p50/p99 ms":>19} {"p99-sampler":>11} '
              f'{"paced":>6} {"delivery p50/p99":>16} {"in node p50/p99":>15} '
              f'{"missed":>10} {"held":>4} {"stop":>4} {"ep":>3} {"CPU pol/sim %":>13}')
    print(header)
    print('-' * len(header))
    for r in rows:
        over = r['obs_to_cmd_ms']['p99'] - alone['p99']
        over_paced = r['obs_to_cmd_ms']['p99'] - paced[r['rate_hz']]['p99']
        print(f'{r["rate_hz"]:7.0f} {r["trigger"]:>11} {r["executor"]:>15} '
              f'{r["achieved_hz"]:8.2f} '
              f'{r["gap_ms_p99"]:10.2f} '
              f'{r["sampler_ms"]["p50"]:8.3f}/{r["sampler_ms"]["p99"]:<9.3f} '
              f'{r["obs_to_cmd_ms"]["p50"]:8.2f}/{r["obs_to_cmd_ms"]["p99"]:<10.2f} '
              f'{over:+10.2f} {over_paced:+6.2f} '
              f'{r["delivery_ms"]["p50"]:7.2f}/{r["delivery_ms"]["p99"]:<8.2f} '
              f'{r["in_node_ms"]["p50"]:7.2f}/{r["in_node_ms"]["p99"]:<7.2f} '
              f'{r["missed_ticks"]:4d} {r["missed_percent"]:4.1f}% '
              f'{r["held"]:4d} {r["stopped"]:4d} {r["episodes"]:3d} '
              f'{r["cpu_percent"].get("policy_node", float("nan")):6.1f}/'
              f'{r["cpu_percent"].get("sim_node", float("nan")):<6.1f}')
    print(json.dumps({'bench': 'ros_latency', 'cpus': os.cpu_count(),
                      'load_average': os.getloadavg(), 'sampler_alone': alone,
                      'sampler_alone_paced': {str(k): v for k, v in paced.items()},
                      'dds_alone': dds, 'loop': rows}))


if __name__ == '__main__':
    main()
