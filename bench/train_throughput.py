"""RLDT training throughput: env steps/s, seconds per critic step / actor step / iteration.

Uses the real pieces of rldt_train.rl.finetune on a config's scale (e.g. the paper-scale
config/train/hopper.yaml): a freshly initialised policy of the configured size, real vectorized
envs for collection, and a replay filled to capacity (values do not change the cost). The
iteration time is assembled from the measured parts:
  collect (rollout_steps chunk steps) + critic_rounds x targets + critic_steps x critic step
  + actor_steps x actor step.
Prints a table and one JSON line.

  python bench/train_throughput.py --config config/train/hopper.yaml [key=value ...]
"""
import argparse
import json
import platform
import time
from dataclasses import replace

import numpy as np
import torch

from rldt_train.config import load_config
from rldt_train.envs.registry import make_vector_env
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.pretrain import policy_config
from rldt_train.pretrain import resolve_device
from rldt_train.rl.critic import QEnsemble
from rldt_train.rl.critic import make_target
from rldt_train.rl.finetune import collect_rollout
from rldt_train.rl.finetune import critic_step
from rldt_train.rl.finetune import critic_targets
from rldt_train.rl.finetune import train_actor
from rldt_train.rl.replay import RolloutReplay


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def _timed(fn, device: torch.device, repeats: int) -> float:
    """Median wall seconds of fn() over repeats (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default='config/train/hopper.yaml')
    parser.add_argument('--collect-steps', type=int, default=20,
                        help='chunk steps timed for collection (scaled to rollout_steps)')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--update-steps', type=int, default=20,
                        help='critic / actor steps per timed call')
    parser.add_argument('overrides', nargs='*')
    args = parser.parse_args()
    config = load_config(args.config, args.overrides)
    cfg = config.finetune
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True     # as run_finetune does

    venv = make_vector_env(config.task, cfg.num_envs, config.policy.horizon, seed=config.seed,
                           vectorization=cfg.vectorization)
    obs_np, _ = venv.reset(seed=config.seed)
    space = venv.single_action_space
    obs_dim, action_dim = obs_np.shape[1], space.shape[-1]
    policy = FlowPolicy(policy_config(config, obs_dim, action_dim)).to(device)
    reference = FlowPolicy(policy.config).to(device).requires_grad_(False)
    low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
    high = torch.as_tensor(space.high, dtype=torch.float32, device=device)
    critic = QEnsemble(obs_dim, config.policy.horizon * action_dim, cfg.critic_ensemble,
                       cfg.critic_hidden_dim, cfg.critic_depth, cfg.critic_init_std).to(device)
    critic_target = make_target(critic)

    # Collection: time a short segment with the real collect_rollout, report per chunk step.
    tracker = {'return': np.zeros(cfg.num_envs), 'length': np.zeros(cfg.num_envs, int),
               'env_steps': 0, 'finished': []}
    short = replace(cfg, rollout_steps=args.collect_steps)
    collect_rollout(venv, obs_np, policy, short, low, high, tracker)        # warm-up
    tracker['env_steps'] = 0
    t0 = time.perf_counter()
    _, obs_np = collect_rollout(venv, obs_np, policy, short, low, high, tracker)
    collect_chunk_s = (time.perf_counter() - t0) / args.collect_steps
    env_steps_per_s = tracker['env_steps'] / (collect_chunk_s * args.collect_steps)
    venv.close()

    # Replay at capacity (random contents: the cost does not depend on values).
    replay = RolloutReplay(cfg.replay_rollouts, cfg.rollout_steps, cfg.num_envs, obs_dim,
                           (config.policy.horizon, action_dim), device)
    lead = (cfg.rollout_steps, cfg.num_envs)
    for _ in range(cfg.replay_rollouts):
        replay.add({'obs': torch.randn(lead + (obs_dim,), device=device),
                    'chunk': torch.rand(lead + (config.policy.horizon, action_dim),
                                        device=device) * 2 - 1,
                    'reward': torch.rand(lead, device=device),
                    'next_obs': torch.randn(lead + (obs_dim,), device=device),
                    'terminated': torch.rand(lead, device=device) < 0.002,
                    'episode_end': torch.rand(lead, device=device) < 0.004,
                    'success': torch.zeros(lead, dtype=torch.bool, device=device)})
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()

    steps = args.update_steps
    actor_cfg = replace(cfg, actor_steps=steps)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)
    actor_opt = torch.optim.Adam(policy.parameters(), lr=cfg.actor_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(actor_opt, lambda s: 1.0)
    box = (low, high)
    targets = critic_targets(policy, critic_target, replay, 1.0, box, cfg)
    targets_s = _timed(lambda: critic_targets(policy, critic_target, replay, 1.0, box, cfg),
                       device, args.repeats)
    obs = replay.view('obs').flatten(0, 2)
    chunk = replay.view('chunk').flatten(0, 2)

    def critic_steps():
        for _ in range(steps):
            idx = replay.sample(cfg.critic_batch_size, cfg.new_data_fraction, cfg.sparse_reward)
            critic_step(critic, critic_target, critic_opt, policy.normalize_obs(obs[idx]),
                        chunk[idx], targets[idx], cfg)
    critic_step_s = _timed(critic_steps, device, args.repeats) / steps
    actor_step_s = _timed(lambda: train_actor(policy, reference, critic, actor_opt, sched,
                                              replay, box, actor_cfg), device,
                          args.repeats) / steps
    collect_s = collect_chunk_s * cfg.rollout_steps
    update_s = (cfg.critic_rounds * targets_s + cfg.critic_steps * critic_step_s
                + cfg.actor_steps * actor_step_s)
    iteration_s = collect_s + update_s
    env_steps_per_iter = cfg.num_envs * cfg.rollout_steps * config.policy.horizon
    result = {
        'task': config.task, 'device': str(device),
        'device_name': (torch.cuda.get_device_name(device) if device.type == 'cuda'
                        else platform.processor() or platform.machine()),
        'threads': torch.get_num_threads(), 'num_envs': cfg.num_envs,
        'rollout_steps': cfg.rollout_steps, 'horizon': config.policy.horizon,
        'flow_steps': cfg.flow_steps, 'particles': cfg.particles,
        'replay_transitions': cfg.replay_rollouts * cfg.rollout_steps * cfg.num_envs,
        'env_steps_per_s': env_steps_per_s, 'collect_s_per_iter': collect_s,
        'targets_s_per_round': targets_s, 'critic_step_s': critic_step_s,
        'actor_step_s': actor_step_s, 'update_s_per_iter': update_s,
        'iteration_s': iteration_s, 'env_steps_per_iter_max': env_steps_per_iter,
        'minutes_per_1M_env_steps': iteration_s / env_steps_per_iter * 1e6 / 60,
        'gpu_peak_mem_gb': (torch.cuda.max_memory_allocated(device) / 2 ** 30
                            if device.type == 'cuda' else None),
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        text = f'{value:.4g}' if isinstance(value, float) else str(value)
        print(f'{key:<{width}}  {text}')
    print(json.dumps({'bench': 'train_throughput', **result}))


if __name__ == '__main__':
    main()
