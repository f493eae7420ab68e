"""`rldt-train finetune`: RLDT online fine-tuning of a pretrained policy, resumable.

The loop, one phase per block: collect one rollout segment per env with exploration ->
store -> learn (critic rounds interleaved with actor steps, rldt_train.rl.learner) ->
evaluate both sampling modes and keep the best policy -> log -> checkpoint. At the end the
base and the selected policy are evaluated again on held-out episode seeds, and the sampling
mode to deploy is chosen.

A run never silently ends worse than it started: selection keeps the best evaluated policy,
the base included (a run that finds nothing better says so and hands back the base); if the
held-out evaluation then rates the pick's best mode below the base's, the base is handed back
(said in the log and evaluation.json). Export takes `policy_finetuned.pt`, the selected one
(`policy_last.pt` is the last iterate).

Files in run_dir: checkpoints/finetune_last.pt (full state: learner, replay, history, RNG; a
run killed at any moment resumes from it), policy_finetuned.pt, policy_last.pt,
evaluation.json (final evaluation, deploy mode), learning_curve.png, config.yaml, tb/.
"""
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from rldt_train import reporting
from rldt_train.checkpoint_io import atomic_save
from rldt_train.checkpoint_io import rng_state
from rldt_train.checkpoint_io import set_rng_state
from rldt_train.config import TrainConfig
from rldt_train.config import config_to_dict
from rldt_train.config import save_config
from rldt_train.envs.registry import make_env
from rldt_train.envs.registry import make_vector_env
from rldt_train.envs.vector_io import final_observations
from rldt_train.envs.vector_io import obs_to_torch
from rldt_train.envs.vector_io import per_env
from rldt_train.evaluate import evaluate_modes
from rldt_train.evaluate import torch_policy
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import load_policy
from rldt_train.policy.flow_policy import save_policy
from rldt_train.pretrain import configure_torch
from rldt_train.rl.learner import RLDTLearner
from rldt_train.rl.replay import RolloutReplay
from rldt_train.rl.replay import observation_fields

STATE_FILE = 'checkpoints/finetune_last.pt'
POLICY_FILE = 'policy_finetuned.pt'
LAST_POLICY_FILE = 'policy_last.pt'
EVALUATION_FILE = 'evaluation.json'
CURVE_FILE = 'learning_curve.png'
# Resuming may extend a run; any other change would make the resumed run a different run.
RESUMABLE_CHANGES = {'finetune.iterations'}
# Episode seeds: in-run evaluations and the final evaluation never share an episode.
EVAL_SEED_OFFSET, FINAL_SEED_OFFSET = 10_000, 20_000


def run_finetune(config: TrainConfig, run_dir: Path, base_checkpoint: Path,
                 resume: bool = False, progress: bool = True) -> dict:
    """Fine-tune the policy in base_checkpoint with RLDT; returns the run summary."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = config.finetune
    device = configure_torch(config)
    if device.type == 'cuda':
        # TF32 matmuls: the MLPs here are far from needing full fp32 mantissas.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    learner, has_success, critic_key = build_learner(config, base_checkpoint, device)
    if cfg.reward == 'success' and not has_success:
        raise ValueError(f"finetune.reward is 'success' but task {config.task} reports no "
                         'success')
    replay = RolloutReplay(cfg.replay_rollouts, device,
                           image_keys=tuple(learner.policy.config.cameras))
    metric_name = selection_metric(cfg.select_metric, has_success)
    run = {'iteration': 0, 'env_steps': 0, 'wall_s': 0.0, 'cpu_s': 0.0, 'best': None,
           'history': {'eval': [], 'train_return': [], 'train_env_steps': [],
                       'iteration_s': []}}
    state_path = run_dir / STATE_FILE
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=True)
        _check_resume_config(state['config'], config_to_dict(config),
                             config_to_dict(TrainConfig()))
        learner.load_state_dict(state['learner'])
        replay.load_state_dict(state['replay'])
        run = state['run']
        set_rng_state(state['rng'])
        print(f'finetune: resuming at iteration {run["iteration"]} ({state_path})', flush=True)
    save_config(config, run_dir / 'config.yaml')
    writer = SummaryWriter(str(run_dir / 'tb'))
    if run['iteration'] == 0:
        writer.add_text('config', '```\n' + json.dumps(config_to_dict(config), indent=2)
                        + '\n```')
        writer.add_text('rldt', f'transport={cfg.transport} reference={cfg.reference} '
                        f'critic={cfg.critic_activation}/{cfg.critic_split} '
                        f'deterministic_query={cfg.deterministic_query} device={device}')
        _evaluate_and_select(learner.policy, run, config, metric_name, has_success, run_dir,
                             writer, device)
    # Envs restart on resume (their state is not checkpointable); the seed moves with the
    # iteration so a resumed run does not replay the same episodes.
    seed = config.seed + 7919 * run['iteration']
    venv = make_vector_env(config.task, cfg.num_envs, config.policy.horizon, seed=seed,
                           vectorization=cfg.vectorization)
    obs_np, _ = venv.reset(seed=seed)
    tracker = {'return': np.zeros(cfg.num_envs), 'finished': []}

    bar = tqdm(range(run['iteration'], cfg.iterations), desc=f'rldt {config.task}', unit='it',
               disable=not progress, initial=run['iteration'], total=cfg.iterations)
    for iteration in bar:
        t_start, cpu_start = time.perf_counter(), time.process_time()
        # ---- collect ----------------------------------------------------------------------
        segment, obs_np, env_steps = collect_segment(venv, obs_np, learner, cfg.rollout_steps,
                                                     config.policy.horizon, tracker)
        replay.add(segment)
        learner.scaler.update(segment['reward'])
        run['env_steps'] += env_steps
        collect_s = time.perf_counter() - t_start

        # ---- learn: critic rounds with interleaved actor steps (after the warm-up) -------
        t_update = time.perf_counter()
        stats = learner.update(replay, train_actor=iteration >= cfg.warmup_iterations)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        update_s = time.perf_counter() - t_update

        # ---- evaluate both modes, keep the best --------------------------------------------
        run['iteration'] = iteration + 1
        last = run['iteration'] == cfg.iterations
        if last or (cfg.eval_every and run['iteration'] % cfg.eval_every == 0):
            _evaluate_and_select(learner.policy, run, config, metric_name, has_success,
                                 run_dir, writer, device)

        # ---- log ------------------------------------------------------------------------------
        iteration_s = time.perf_counter() - t_start
        run['wall_s'] += iteration_s
        run['cpu_s'] = run.get('cpu_s', 0.0) + time.process_time() - cpu_start
        run['history']['iteration_s'].append(iteration_s)
        finished, tracker['finished'] = tracker['finished'], []
        if finished:
            run['history']['train_return'].append(float(np.mean([r for r, _ in finished])))
            run['history']['train_env_steps'].append(run['env_steps'])
        drift = learner.drift({k: v[-1] for k, v in observation_fields(segment, 'obs').items()})
        _log_iteration(writer, run, stats, drift, finished, has_success, collect_s, update_s,
                       iteration_s, env_steps, learner, cfg)
        latest = run['history']['eval'][-1]
        bar.set_postfix(det=f"{reporting.metric(latest['deterministic'], metric_name):.3g}",
                        stoch=f"{reporting.metric(latest['stochastic'], metric_name):.3g}",
                        q=f"{stats['q_mean']:.2f}", steps=run['env_steps'])

        # ---- checkpoint -----------------------------------------------------------------------
        if last or run['iteration'] % cfg.checkpoint_every == 0:
            save_policy(run_dir / LAST_POLICY_FILE, learner.policy,
                        extra=_policy_notes(config, base_checkpoint, run, 'last'))
            atomic_save({'config': config_to_dict(config), 'learner': learner.state_dict(),
                         'replay': replay.state_dict(), 'run': run, 'rng': rng_state()},
                        state_path)
    bar.close()
    venv.close()
    summary = _finish(config, run_dir, base_checkpoint, learner, run, metric_name, has_success,
                      device, writer, progress, critic_key)
    writer.close()
    return summary


# --------------------------------------------------------------------------------------------
# Construction.
# --------------------------------------------------------------------------------------------
def build_learner(config: TrainConfig, base_checkpoint: Path, device: torch.device
                  ) -> tuple[RLDTLearner, bool, str]:
    """The learner for config's task from a BC checkpoint; (learner, has_success, critic key).

    Fine-tuning trains the chain it samples with, so the policy's sampler steps become
    finetune.flow_steps (export then uses the same N).
    """
    cfg = config.finetune
    base = load_policy(base_checkpoint, map_location=device).to(device)
    if base.config.horizon != config.policy.horizon:
        raise ValueError(f'policy.horizon is {config.policy.horizon} but the base checkpoint '
                         f'{base_checkpoint} has horizon {base.config.horizon}')
    base.config = replace(base.config, sampler_steps=cfg.flow_steps)
    env = make_env(config.task, horizon=base.config.horizon)          # (H, A) chunk bounds
    obs, info = env.reset(seed=config.seed)
    space = env.action_space
    env.close()
    fields = obs if isinstance(obs, dict) else {'state': obs}
    # Camera tasks expose the simulator state as 'privileged': the critic (which only exists
    # in simulation) reads it; the policy never does.
    critic_key = 'privileged' if 'privileged' in fields else 'state'
    box = (torch.as_tensor(space.low, dtype=torch.float32, device=device),
           torch.as_tensor(space.high, dtype=torch.float32, device=device))
    learner = RLDTLearner(base, cfg, box, int(np.asarray(fields[critic_key]).shape[-1]),
                          critic_key)
    return learner, 'success' in info, critic_key


def selection_metric(name: str, has_success: bool) -> str:
    if name == 'auto':
        return 'success' if has_success else 'return'
    if name == 'success' and not has_success:
        raise ValueError("finetune.select_metric is 'success' but the task reports no success")
    return name


def _check_resume_config(saved: dict, current: dict, defaults: dict) -> None:
    """Refuse to resume under a different config. A key the checkpoint predates counts as
    unchanged while it holds its default (the behaviour the run was started with)."""
    def flatten(d: dict, prefix: str = '') -> dict:
        out = {}
        for key, value in d.items():
            if isinstance(value, dict):
                out.update(flatten(value, f'{prefix}{key}.'))
            else:
                out[f'{prefix}{key}'] = value
        return out
    saved_flat, current_flat, default_flat = flatten(saved), flatten(current), flatten(defaults)
    for key in set(current_flat) - set(saved_flat):
        saved_flat[key] = default_flat.get(key)
    changed = sorted(k for k in set(saved_flat) | set(current_flat)
                     if saved_flat.get(k) != current_flat.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        raise ValueError(f'cannot resume: config differs from the checkpoint in {changed}')


# --------------------------------------------------------------------------------------------
# Collection.
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def collect_segment(venv, obs_np, learner: RLDTLearner, steps: int, horizon: int,
                    tracker: dict) -> tuple[dict, object, int]:
    """One segment of `steps` chunk steps per env: (fields (T, E, ...), last obs, env steps).

    Fields: 'obs/<key>' and 'next_obs/<key>' raw observations (the true next observation where
    an episode ended), 'chunk' (executed, clipped chunk in the flow space), 'reward' (summed
    over the chunk, or the success flag with finetune.reward 'success'), 'terminated',
    'episode_end', 'success'. tracker carries running episode
    returns and collects finished episodes as (return, success).
    """
    device = learner.action_box[0].device
    seg: dict[str, list] = {}
    env_steps, scales = 0, []

    def put(name: str, value) -> None:
        seg.setdefault(name, []).append(torch.as_tensor(value, device=device))

    for _ in range(steps):
        obs = obs_to_torch(obs_np, device)
        chunk, chunk_flow, scale = learner.act(obs)
        next_np, reward, terminated, truncated, info = venv.step(chunk.cpu().numpy())
        done = terminated | truncated
        success = per_env(info, done, 'success', False).astype(bool)
        env_steps += int(per_env(info, done, 'chunk_steps', horizon).sum())
        for key, value in obs.items():
            put(f'obs/{key}', value)
        for key, value in obs_to_torch(final_observations(next_np, info, done),
                                       device).items():
            put(f'next_obs/{key}', value)
        put('chunk', chunk_flow)
        # The critic's reward: the task's, or 1 on the chunk that reached success.
        learned = success if learner.cfg.reward == 'success' else reward
        put('reward', np.asarray(learned, dtype=np.float32))
        put('terminated', terminated)
        put('episode_end', done)
        put('success', success)
        scales.append(scale.mean())
        tracker['return'] += reward
        for i in np.flatnonzero(done):
            tracker['finished'].append((float(tracker['return'][i]), bool(success[i])))
            tracker['return'][i] = 0.0
        obs_np = next_np
    tracker['explore_scale'] = float(torch.stack(scales).mean())
    return {name: torch.stack(values) for name, values in seg.items()}, obs_np, env_steps


# --------------------------------------------------------------------------------------------
# Evaluation, selection, reporting.
# --------------------------------------------------------------------------------------------
def _evaluate(policy: FlowPolicy, config: TrainConfig, episodes: int, seed: int,
              has_success: bool, device: torch.device, progress: bool = False) -> dict:
    was_training = policy.training
    policy.eval()
    out = evaluate_modes(lambda det: torch_policy(policy, deterministic=det, device=device),
                         config.task, episodes, config.policy.horizon, seed, has_success,
                         num_envs=min(episodes, 16), progress=progress)
    policy.train(was_training)
    return out


def _score(result: dict, base: dict, metric_name: str, floor: float) -> float | None:
    """Selection score (the best mode's metric), or None if a mode fell below `floor` of the
    base's same mode (finetune.selection_floor)."""
    values = {m: reporting.metric(result[m], metric_name) for m in reporting.MODES}
    if floor > 0:
        for mode, value in values.items():
            reference = reporting.metric(base[mode], metric_name)
            if value < reference - (1.0 - floor) * abs(reference):
                return None
    return max(values.values())


def _evaluate_and_select(policy: FlowPolicy, run: dict, config: TrainConfig, metric_name: str,
                         has_success: bool, run_dir: Path, writer, device) -> None:
    """In-run evaluation of both modes; the best eligible policy goes to policy_finetuned.pt."""
    cfg = config.finetune
    result = _evaluate(policy, config, cfg.eval_episodes, config.seed + EVAL_SEED_OFFSET,
                       has_success, device)
    entry = {'iteration': run['iteration'], 'env_steps': run['env_steps'], **result}
    run['history']['eval'].append(entry)
    for mode in reporting.MODES:
        scalars = {f'eval/{mode}_return': result[mode]['return_mean']}
        if has_success:
            scalars[f'eval/{mode}_success'] = result[mode]['success_rate']
        reporting.log_scalars(writer, scalars, run['env_steps'])
    base = run['history']['eval'][0]
    score = _score(result, base, metric_name, cfg.selection_floor)
    best = run['best']
    is_best = score is not None and (best is None or score > best['score'])
    if is_best or not cfg.select_best:
        run['best'] = {'iteration': run['iteration'], 'score': score}
        save_policy(run_dir / POLICY_FILE, policy,
                    extra=_policy_notes(config, None, run, 'selected'))


def _policy_notes(config: TrainConfig, base_checkpoint, run: dict, kind: str) -> dict:
    notes = {'task': config.task, 'iteration': run['iteration'], 'env_steps': run['env_steps'],
             'transport': config.finetune.transport, 'reference': config.finetune.reference,
             'kind': kind}
    if base_checkpoint is not None:
        notes['base'] = str(base_checkpoint)
    return notes


def _log_iteration(writer, run: dict, stats: dict, drift: dict, finished: list,
                   has_success: bool, collect_s: float, update_s: float, iteration_s: float,
                   env_steps: int, learner: RLDTLearner, cfg) -> None:
    step = run['env_steps']
    scalars = {
        'charts/env_steps_per_s': env_steps / max(collect_s, 1e-9),
        'charts/collect_s': collect_s, 'charts/update_s': update_s,
        'charts/iteration_s': iteration_s, 'charts/reward_scale': learner.scaler.scale,
        'charts/actor_lr': learner.actor_sched.get_last_lr()[0],
        'charts/reference_is_previous': float(cfg.reference == 'previous'),
        'losses/critic': stats['critic_loss'], 'critic/q_mean': stats['q_mean'],
        'critic/target_mean': stats['target_mean'], 'critic/td_error': stats['td_error'],
        'critic/target_staleness': stats.get('target_staleness', float('nan')),
        'field/drift_deterministic': drift['deterministic'],
        'field/drift_stochastic': drift['stochastic'],
    }
    if finished:
        scalars['charts/train_episode_return'] = float(np.mean([r for r, _ in finished]))
        if has_success:
            scalars['charts/train_success'] = float(np.mean([s for _, s in finished]))
    for name in ('loss', 'rl', 'cons', 'fd', 'grad_norm'):
        if f'actor_{name}' in stats:
            label = 'actor' if name == 'loss' else name
            scalars[f'losses/{label}'] = stats[f'actor_{name}']
    for name in ('phi_norm', 'attraction_norm', 'repulsion_norm', 'bandwidth', 'alpha_eff',
                 'grad_q_norm', 'q_particles', 'q_deterministic'):
        if f'actor_{name}' in stats:
            scalars[f'field/{name}'] = stats[f'actor_{name}']
    for k, value in enumerate(stats.get('grad_v_per_k', [])):
        scalars[f'field/grad_v_k{k}'] = value
    reporting.log_scalars(writer, scalars, step)


def held_out_fallback(final: dict, iteration: int, metric_name: str) -> str | None:
    """Why the base replaces the selected iterate, or None when the pick stands.

    Selection took the best of many noisy in-run evaluations, so its score is biased upwards;
    the held-out episodes decide: the pick stands only if its best mode is at least the base's
    best mode there.
    """
    best_of = {label: max(reporting.metric(final[label][m], metric_name)
                          for m in reporting.MODES) for label in ('base', 'selected')}
    if best_of['selected'] >= best_of['base']:
        return None
    return (f'iteration {iteration} scored {best_of["selected"]:.4g} in its best mode on '
            f"held-out episodes, below the base's {best_of['base']:.4g}: policy_finetuned.pt "
            'is the base')


def _finish(config: TrainConfig, run_dir: Path, base_checkpoint: Path, learner: RLDTLearner,
            run: dict, metric_name: str, has_success: bool, device, writer, progress: bool,
            critic_key: str) -> dict:
    """Held-out final evaluation of base and selected policy, deploy mode, files, summary."""
    cfg = config.finetune
    seed = config.seed + FINAL_SEED_OFFSET
    best_iteration = run['best']['iteration']
    final = {'base': _evaluate(learner.base, config, cfg.final_eval_episodes, seed,
                               has_success, device, progress)}
    if best_iteration == 0:
        # The base itself: one evaluation, so the two rows cannot differ by sampling noise.
        final['selected'] = final['base']
    else:
        selected = load_policy(run_dir / POLICY_FILE, map_location=device).to(device)
        final['selected'] = _evaluate(selected, config, cfg.final_eval_episodes, seed,
                                      has_success, device, progress)
    fallback = None
    if cfg.select_best and best_iteration > 0:
        fallback = held_out_fallback(final, best_iteration, metric_name)
    if fallback:
        print(f'finetune: {fallback}', flush=True)
        save_policy(run_dir / POLICY_FILE, learner.base,
                    extra={**_policy_notes(config, base_checkpoint, run, 'selected'),
                           'iteration': 0, 'held_out_fallback': fallback})
        final['selected'] = final['base']
        best_iteration = 0
    if cfg.deploy_mode == 'auto':
        deploy = max(reporting.MODES,
                     key=lambda m: reporting.metric(final['selected'][m], metric_name))
    else:
        deploy = cfg.deploy_mode
    evaluation = {
        'metric': metric_name, 'deploy_mode': deploy, 'selected_iteration': best_iteration,
        'selected_env_steps': next(e['env_steps'] for e in run['history']['eval']
                                   if e['iteration'] == best_iteration),
        'improved_on_base': best_iteration > 0,
        'held_out_fallback': fallback,
        'final_seed': seed, 'base': final['base'], 'selected': final['selected'],
        'critic_observation': critic_key,
    }
    with open(run_dir / EVALUATION_FILE, 'w') as f:
        json.dump(evaluation, f, indent=2)
    reporting.plot_learning_curve(
        run['history'], run_dir / CURVE_FILE,
        f'RLDT {config.task} ({cfg.transport}, ref={cfg.reference}, seed {config.seed}); '
        f'deploy: {deploy}', metric_name, best_iteration, final)
    for label, block in final.items():
        for mode in reporting.MODES:
            scalars = {f'final/{label}_{mode}_return': block[mode]['return_mean']}
            if has_success:
                scalars[f'final/{label}_{mode}_success'] = block[mode]['success_rate']
            reporting.log_scalars(writer, scalars, run['env_steps'])
    writer.add_text('final', '```\n' + json.dumps(evaluation, indent=2) + '\n```')
    if best_iteration == 0 and fallback is None:
        print('finetune: no evaluated iterate beat the base policy; policy_finetuned.pt is the '
              'base (see evaluation.json and learning_curve.png)', flush=True)
    summary = {'task': config.task, 'seed': config.seed, 'device': str(device),
               'transport': cfg.transport, 'reference': cfg.reference,
               'iterations': cfg.iterations, 'env_steps': run['env_steps'],
               'wall_s': run['wall_s'], 'cpu_s': run.get('cpu_s', 0.0),
               'selected_iteration': best_iteration,
               'deploy_mode': deploy, 'policy': str(run_dir / POLICY_FILE)}
    for label in ('base', 'selected'):
        for mode in reporting.MODES:
            summary[f'{label}_{mode}'] = reporting.format_eval(final[label][mode], metric_name)
    return summary
