"""Rendering throughput for camera tasks: raw frames/s, and env steps/s where training renders.

Rows: each camera at a few sizes through the task's renderer (OffscreenCameras: shadows off);
demo collection (one env, every step rendered, as BC needs every step's images); chunked vector
envs (images only at chunk boundaries, as evaluation and RL see them) against the state task.
The GL backend is MUJOCO_GL (EGL by default; software llvmpipe without a GPU).

    python bench/render_throughput.py [--task cube_push_vision] [--seconds 3]

Prints a table, then one JSON line.
"""
import argparse
import json
import os
import platform
import time

import numpy as np

from rldt_ros.tasks import make_task
from rldt_train.envs.registry import make_env
from rldt_train.envs.registry import make_vector_env


def rate(fn, seconds: float) -> tuple[float, int]:
    """Calls of fn per second over about `seconds` (after one warm-up call)."""
    fn()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - start), count


def raw_fps(task, camera: str, size: int, seconds: float) -> float:
    fps, _ = rate(lambda: task.render(camera, size, size), seconds)
    return fps


def collect_steps_per_s(task_id: str, seconds: float) -> float:
    env = make_env(task_id, seed=0)
    task = env.unwrapped.task
    rng = np.random.default_rng(0)

    def step():
        *_, terminated, truncated, _ = env.step(task.expert_action(rng, 0.1))
        if terminated or truncated:
            env.reset()
    steps, _ = rate(step, seconds)
    env.close()
    return steps


def vector_steps_per_s(task_id: str, num_envs: int, horizon: int, seconds: float) -> float:
    venv = make_vector_env(task_id, num_envs, horizon, seed=0)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    low, high = venv.single_action_space.low, venv.single_action_space.high

    def step():
        venv.step(rng.uniform(low, high, (num_envs, *low.shape)))
    chunks, _ = rate(step, seconds)
    venv.close()
    return chunks * num_envs * horizon  # control steps (chunks end early only at episode ends)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', default='cube_push_vision')
    parser.add_argument('--seconds', type=float, default=3.0)
    args = parser.parse_args()
    task = make_task(args.task)
    task.reset(seed=0)
    cameras, (height, _) = task.observed_cameras, task.image_size
    rows = []
    for camera in cameras:
        for size in sorted({height, 84, 96}):
            rows.append((f'render {camera} {size}x{size}', 'frames/s',
                         raw_fps(task, camera, size, args.seconds)))
    task.close()
    frames_per_step = len(cameras)
    collect = collect_steps_per_s(args.task, args.seconds)
    rows.append((f'collect: 1 env, expert, {frames_per_step} frames every step', 'steps/s',
                 collect))
    rows.append(('  = frames rendered during collection', 'frames/s', collect * frames_per_step))
    rows.append(('collect: state task cube_push (no images)', 'steps/s',
                 collect_steps_per_s('cube_push', args.seconds)))
    for task_id in (args.task, 'cube_push'):
        rows.append((f'8 envs x chunk 4, {task_id}', 'steps/s',
                     vector_steps_per_s(task_id, 8, 4, args.seconds)))

    print(f'{args.task}: cameras {cameras} at {task.image_size}, MUJOCO_GL='
          f'{os.environ.get("MUJOCO_GL")}, {platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} cores')
    print(f"{'what':<52} {'rate':>10} {'unit':<9}")
    result = {'bench': 'render_throughput', 'task': args.task, 'cameras': list(cameras),
              'image_size': list(task.image_size), 'rows': []}
    for label, unit, value in rows:
        print(f'{label:<52} {value:10.0f} {unit:<9}')
        result['rows'].append({'what': label.strip(), 'unit': unit, 'rate': round(value, 1)})
    print(json.dumps(result))


if __name__ == '__main__':
    main()
