"""RLDT with images: what one iteration costs, phase by phase, against the state task.

Collects real rollouts (vectorized envs, the learner's `act`, images rendered at chunk
boundaries) for cube_push_vision and, as the baseline in the same run, for cube_push; fills
the replay both ways for the camera task (next images stored in full vs once); then times a
round's preparation (bootstrap actions: encoders once per next state), critic steps and actor
steps (actor_augmentation shared_shift and none) with 1 torch thread. The policy has the
configured size; its weights are fresh unless --checkpoint gives a trained one (episode
lengths, and so the number of next images kept apart, depend on it).

    python bench/vision_rldt.py [--checkpoint runs/.../policy_bc.pt] [--rollouts 10]

Prints a table, then one JSON line.
"""
import argparse
import json
import platform
import time
from dataclasses import replace

import numpy as np
import torch

from rldt_train.config import load_config
from rldt_train.envs.registry import make_env
from rldt_train.envs.registry import make_vector_env
from rldt_train.finetune import collect_segment
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import load_policy
from rldt_train.pretrain import policy_config
from rldt_train.rl.learner import RLDTLearner
from rldt_train.rl.replay import RolloutReplay


def make_learner(task: str, overrides: list[str], checkpoint: str | None) -> RLDTLearner:
    config = load_config(f'config/train/{task}.yaml', overrides)
    env = make_env(task, horizon=config.policy.horizon)
    obs, _ = env.reset(seed=0)
    space = env.action_space
    env.close()
    fields = obs if isinstance(obs, dict) else {'state': obs}
    if checkpoint:
        policy = load_policy(checkpoint)
    else:
        policy = FlowPolicy(policy_config(config, fields['state'].shape[-1],
                                          space.shape[-1]))
        with torch.no_grad():
            policy.action_normalizer.scale.fill_(0.1)
    policy.config = replace(policy.config, sampler_steps=config.finetune.flow_steps)
    key = 'privileged' if 'privileged' in fields else 'state'
    box = (torch.as_tensor(space.low), torch.as_tensor(space.high))
    return RLDTLearner(policy, config.finetune, box, int(fields[key].shape[-1]), key)


def collect(learner: RLDTLearner, task: str, rollouts: int) -> tuple[list[dict], float, int]:
    cfg = learner.cfg
    venv = make_vector_env(task, cfg.num_envs, learner.policy.config.horizon, seed=0)
    obs, _ = venv.reset(seed=0)
    tracker = {'return': np.zeros(cfg.num_envs), 'finished': []}
    segments, env_steps = [], 0
    t0 = time.perf_counter()
    for _ in range(rollouts):
        segment, obs, steps = collect_segment(venv, obs, learner, cfg.rollout_steps,
                                              learner.policy.config.horizon, tracker)
        segments.append(segment)
        env_steps += steps
    seconds = time.perf_counter() - t0
    venv.close()
    return segments, seconds, env_steps


def timed(fn, runs: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - t0) / runs


def phases(learner: RLDTLearner, replay: RolloutReplay, runs: int) -> dict:
    cfg = learner.cfg
    mix = lambda: replay.sample_trajectories(cfg.mix_size, cfg.new_data_fraction, False)  # noqa
    data = learner.prepare_round(mix())
    targets = learner.td_targets(data)
    out = {'sample_ms': 1e3 * timed(mix, runs),
           'prepare_round_ms': 1e3 * timed(lambda: learner.prepare_round(mix()), runs),
           'critic_step_ms': 1e3 * timed(lambda: learner.critic_step(data, targets), runs)}
    for augmentation in ('shared_shift', 'none'):
        learner.cfg = replace(cfg, actor_augmentation=augmentation)
        out[f'actor_step_{augmentation}_ms'] = 1e3 * timed(lambda: learner.actor_step(data),
                                                           runs)
    learner.cfg = cfg
    # One iteration at the config's budget: rounds x (sample + prepare) + critic + actor steps.
    out['update_s'] = (cfg.critic_rounds * (out['sample_ms'] + out['prepare_round_ms'])
                       + cfg.critic_steps * out['critic_step_ms']
                       + cfg.actor_steps * out[f'actor_step_{cfg.actor_augmentation}_ms']) / 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', help='a trained cube_push_vision policy (BC)')
    parser.add_argument('--rollouts', type=int, default=10,
                        help='rollout segments (the config has replay_rollouts 10)')
    parser.add_argument('--runs', type=int, default=5, help='timed repetitions per phase')
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = {}
    for task in ('cube_push', 'cube_push_vision'):
        learner = make_learner(task, [], args.checkpoint if task == 'cube_push_vision' else None)
        segments, seconds, env_steps = collect(learner, task, args.rollouts)
        cameras = learner.policy.config.cameras
        chunk_steps = sum(s['reward'].numel() for s in segments)
        row = {'collect_env_steps_per_s': env_steps / seconds,
               'collect_s_per_rollout': seconds / args.rollouts,
               'frames_per_s': chunk_steps * len(cameras) / seconds,
               'episode_ends_per_env_rollout': float(np.mean(
                   [s['episode_end'].sum(0).float().mean() for s in segments]))}
        layouts = {'full': ()} if not cameras else {'full': (), 'once': tuple(cameras)}
        for layout, keys in layouts.items():
            replay = RolloutReplay(args.rollouts, torch.device('cpu'), image_keys=keys)
            for segment in segments:
                replay.add(segment)
            learner._fit_critic_normalizer(replay)        # as the first update does
            row[f'replay_{layout}_mb'] = replay.nbytes / 2**20
            row[f'{layout}'] = phases(learner, replay, args.runs)
        rows[task] = row
    state, vision = rows['cube_push'], rows['cube_push_vision']
    print(f'\nRLDT with images, one iteration at config sizes (16 envs x 50 chunk steps, '
          f'{args.rollouts} rollouts in the replay), 1 torch thread, '
          f'{platform.processor() or platform.machine()}; baseline: the state task')
    print(f'{"":<34} {"cube_push":>12} {"vision":>12} {"ratio":>8}')

    def line(name, a, b, fmt='.1f'):
        print(f'{name:<34} {a:>12{fmt}} {b:>12{fmt}} {b / a:>7.2f}x')
    line('collect env steps/s', state['collect_env_steps_per_s'],
         vision['collect_env_steps_per_s'], '.0f')
    print(f'{"camera frames/s while collecting":<34} {"":>12} {vision["frames_per_s"]:>12.0f}')
    line('replay MB (next images in full)', state['replay_full_mb'], vision['replay_full_mb'])
    line('replay MB (images stored once)', state['replay_full_mb'], vision['replay_once_mb'])
    for name in ('sample_ms', 'prepare_round_ms', 'critic_step_ms', 'actor_step_shared_shift_ms',
                 'actor_step_none_ms', 'update_s'):
        line(f'{name} (once)', state['full'][name], vision['once'][name], '.2f')
    line('sample_ms (full vs once)', vision['full']['sample_ms'], vision['once']['sample_ms'],
         '.2f')
    print(f'episode ends per env and rollout: {vision["episode_ends_per_env_rollout"]:.2f}')
    print(json.dumps({'bench': 'vision_rldt', 'checkpoint': args.checkpoint,
                      'rollouts': args.rollouts, 'rows': rows}))


if __name__ == '__main__':
    main()
