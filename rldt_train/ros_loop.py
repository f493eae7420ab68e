"""Score a model in the ROS 2 loop: `rldt-ros run loop` (sim node + policy node in child
processes) plus a listener here for the sim's episode results and the policy's stats.

Used by the demo; the listener is a plain rclpy node on the same ROS_DOMAIN_ID.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run_ros_loop(model_dir: str | Path, episodes: int, domain_id: int, timeout_s: float = 300.0,
                 log_path: str | Path | None = None, ros_args: list[str] | None = None) -> dict:
    """Run `episodes` episodes; returns results, the last stats message, and wall time.

    ros_args go to both nodes (e.g. ['-p', 'real_time_factor:=3.0']).
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id))
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    log = open(log_path, 'w') if log_path else subprocess.DEVNULL
    loop = subprocess.Popen([sys.executable, '-m', 'rldt_ros.cli', 'run', 'loop', '--model',
                             str(Path(model_dir).resolve()), '--', *(ros_args or [])],
                            env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    results: list[dict] = []
    stats: list[dict] = []
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    start = time.monotonic()
    try:
        node = rclpy.create_node('rldt_demo_scorer', context=context)
        node.create_subscription(String, '/sim_node/episode',
                                 lambda m: results.append(json.loads(m.data)), 10)
        node.create_subscription(String, '/policy_node/stats',
                                 lambda m: stats.append(json.loads(m.data)), 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        while len(results) < episodes:
            if loop.poll() is not None:
                raise RuntimeError(f'the ROS loop exited early (code {loop.returncode}); '
                                   f'see {log_path}')
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f'only {len(results)}/{episodes} episodes in {timeout_s} s')
            executor.spin_once(timeout_sec=0.1)
        # One more stats message, so it covers every episode.
        n_stats = len(stats)
        deadline = time.monotonic() + 3.0
        while len(stats) == n_stats and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        loop.send_signal(2)
        try:
            loop.wait(timeout=10)
        except subprocess.TimeoutExpired:
            loop.kill()
        if log_path:
            log.close()
    return {'episodes': results[:episodes], 'stats': stats[-1] if stats else {},
            'wall_s': time.monotonic() - start}
