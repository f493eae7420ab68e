"""Chunk sampler latency: ONNX Runtime (the robot path) against torch (the baseline), one run.

Rows: torch eager Euler chain (baseline), ONNX Runtime CPU with 1 thread (what the policy node
uses by default) and with all threads, ONNX Runtime CUDA (CUDA graphs + IO binding) when
onnxruntime-gpu and a GPU are present. Latency does not depend on the weights, so a fresh
policy of the task's shape (cameras and image encoders included for a camera task) is exported
unless --checkpoint is given. Camera models get uint8 images of the card's size, as the policy
node feeds them.

    python bench/sampler_latency.py [--task cube_push_vision] [--checkpoint runs/.../policy_bc.pt]
        [--runs 2000]

Prints a table, then one JSON line.
"""
import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from rldt_ros.model_card import load_model_card
from rldt_ros.sampler import ChunkSampler
from rldt_train.export import export_policy
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import PolicyConfig
from rldt_train.policy.flow_policy import load_policy
from rldt_train.policy.flow_policy import save_policy


def time_ms(fn, runs: int, warmup: int = 20) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', type=Path)
    parser.add_argument('--task', default='cube_push')
    parser.add_argument('--runs', type=int, default=1000)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp())
    checkpoint = args.checkpoint
    if checkpoint is None:
        from rldt_train.task_spec import task_spec
        spec = task_spec(args.task)
        policy = FlowPolicy(PolicyConfig(
            obs_dim=spec.state_dim, action_dim=len(spec.action_names), cameras=spec.cameras,
            image_size=list(spec.image_size) if spec.cameras else None,
            action_reference_index=spec.action_state_index))
        checkpoint = tmp / 'policy.pt'
        save_policy(checkpoint, policy)
    policy = load_policy(checkpoint).eval()
    card = load_model_card(export_policy(checkpoint, tmp / 'model', task=args.task))
    rng = np.random.default_rng(0)
    obs_np = {'state': np.zeros(card.state_dim, np.float32)}
    for camera in card.cameras:
        obs_np[camera.name] = rng.integers(0, 256, (camera.height, camera.width, 3), np.uint8)
    obs_t = {k: torch.as_tensor(v)[None] for k, v in obs_np.items()}
    if not card.cameras:
        obs_t = obs_t['state']

    rows = []
    torch.set_num_threads(1)
    rows.append(('torch eager, 1 thread (baseline)',
                 time_ms(lambda: policy.sample(obs_t), args.runs)))
    for threads, label in ((1, 'ORT CPU, 1 thread (node default)'), (0, 'ORT CPU, all threads')):
        sampler = ChunkSampler(card, providers='cpu', intra_op_threads=threads)
        rows.append((label, time_ms(lambda s=sampler: s.sample(obs_np), args.runs)))
    if 'CUDAExecutionProvider' in ort.get_available_providers():
        sampler = ChunkSampler(card, providers='cuda')
        rows.append((f'ORT {sampler.provider} (CUDA graph + IO binding)',
                     time_ms(lambda: sampler.sample(obs_np), args.runs)))

    base = np.percentile(rows[0][1], 50)
    cameras = ', '.join(f'{c.name} {c.height}x{c.width}' for c in card.cameras) or 'none'
    print(f'{args.task}: chunk {card.chunk_length}x{card.action_dim}, {card.sampler_steps} '
          f'Euler steps, cameras {cameras}, {platform.processor() or platform.machine()}, '
          f'{args.runs} runs')
    print(f"{'sampler':<48} {'p50 ms':>8} {'p99 ms':>8} {'vs baseline':>12}")
    result = {'bench': 'sampler_latency', 'task': args.task, 'runs': args.runs,
              'cameras': [c.name for c in card.cameras], 'rows': []}
    for label, times in rows:
        p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
        print(f'{label:<48} {p50:8.3f} {p99:8.3f} {base / p50:11.2f}x')
        result['rows'].append({'sampler': label, 'p50_ms': round(float(p50), 4),
                               'p99_ms': round(float(p99), 4),
                               'speedup_vs_baseline': round(float(base / p50), 3)})
    print(json.dumps(result))


if __name__ == '__main__':
    main()
