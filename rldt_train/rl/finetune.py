"""RLDT online fine-tuning loop (docs/architecture.md section 4), CleanRL-style: one visible loop.

Per iteration: collect one rollout segment per env with exploration -> store -> critic rounds
(TD(lambda) targets recomputed each round, Polyak after every step) -> RLDT actor steps (after
the critic-only warm-up) -> reference update (`previous`) -> evaluate, log, checkpoint.

Everything learnable lives on the run's device (CUDA when `device: auto` finds one); only env
stepping runs on the CPU. The full state (actor, reference, base, critics, targets, optimizers,
scheduler, replay, reward scaler, RNG states, history, iteration) is one plain dict written
atomically, so a run killed at any moment resumes from its last checkpoint.
"""
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from rldt_train.checkpoint_io import atomic_save
from rldt_train.checkpoint_io import rng_state
from rldt_train.checkpoint_io import set_rng_state
from rldt_train.config import TrainConfig
from rldt_train.config import config_to_dict
from rldt_train.config import save_config
from rldt_train.envs.registry import make_env
from rldt_train.envs.registry import make_vector_env
from rldt_train.evaluate import evaluate
from rldt_train.evaluate import torch_policy
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import load_policy
from rldt_train.policy.flow_policy import save_policy
from rldt_train.pretrain import configure_torch
from rldt_train.rl.config import FinetuneConfig
from rldt_train.rl.critic import QEnsemble
from rldt_train.rl.critic import flow_space_bounds
from rldt_train.rl.critic import make_target
from rldt_train.rl.critic import polyak_update
from rldt_train.rl.replay import RolloutReplay
from rldt_train.rl.rldt import explore
from rldt_train.rl.rldt import grad_norm_per_step
from rldt_train.rl.rldt import rldt_losses
from rldt_train.rl.td import RewardScaler
from rldt_train.rl.td import td_lambda_targets

STATE_FILE = 'checkpoints/finetune_last.pt'
POLICY_FILE = 'policy_finetuned.pt'
CURVE_FILE = 'learning_curve.png'
# Resuming may extend a run; any other change would make the resumed run a different run.
RESUMABLE_CHANGES = {'finetune.iterations'}


# --------------------------------------------------------------------------------------------
# Helpers (plumbing): env info parsing, RNG state, checkpoint IO, evaluation, plotting.
# --------------------------------------------------------------------------------------------
def _per_env(info: dict, done: np.ndarray, key: str, default) -> np.ndarray:
    """info[key] per env; for envs that just ended, the value from info['final_info'].

    Gymnasium 1.4 SAME_STEP autoreset: a finished env's step info moves to
    info['final_info'] (mask '_key' inside), and info itself holds the reset info.
    """
    out = np.full(len(done), default)
    if key in info:
        out = np.where(info[f'_{key}'], info[key], out)
    final = info.get('final_info', {})
    if key in final:
        out = np.where(done & final[f'_{key}'], final[key], out)
    return out


def _flatten(d: dict, prefix: str = '') -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def _check_resume_config(saved: dict, current: dict) -> None:
    saved_flat, current_flat = _flatten(saved), _flatten(current)
    changed = sorted(k for k in set(saved_flat) | set(current_flat)
                     if saved_flat.get(k) != current_flat.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        raise ValueError(f'cannot resume: config differs from the checkpoint in {changed}')


def _evaluate(policy: FlowPolicy, config: TrainConfig, device: torch.device,
              iteration: int) -> dict:
    """Deterministic (x_0 = 0) and/or stochastic evaluation on fixed seeds."""
    cfg, out = config.finetune, {}
    modes = [m for m, on in (('det', cfg.eval_deterministic), ('stoch', cfg.eval_stochastic))
             if on]
    for mode in modes:
        result = evaluate(torch_policy(policy, deterministic=mode == 'det', device=device),
                          config.task, cfg.eval_episodes, policy.config.horizon,
                          seed=config.seed + 10_000, num_envs=min(cfg.eval_episodes, 16))
        out[f'return_{mode}'] = result.return_mean
        out[f'success_{mode}'] = result.success_rate
    out['iteration'] = iteration
    return out


def _plot_curve(history: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    evals = history['eval']
    for mode in ('det', 'stoch'):
        if evals and f'return_{mode}' in evals[0]:
            ax.plot([e['env_steps'] for e in evals], [e[f'return_{mode}'] for e in evals],
                    marker='o', label=f'eval ({mode})')
    if history['train_return']:
        ax.plot(history['train_env_steps'], history['train_return'], alpha=0.6,
                label='train episodes (exploring)')
    ax.set_xlabel('env steps')
    ax.set_ylabel('episode return')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix('.tmp.png')
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


# --------------------------------------------------------------------------------------------
# ALGO LOGIC: collection, critic rounds, actor steps.
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def collect_rollout(venv, obs_np: np.ndarray, policy: FlowPolicy, cfg: FinetuneConfig,
                    action_low: torch.Tensor, action_high: torch.Tensor, tracker: dict
                    ) -> tuple[dict, np.ndarray]:
    """One segment of cfg.rollout_steps chunk steps per env, stored on device.

    Executed chunk = explore(chain) unnormalized (relative actions: plus the joint positions)
    and clipped to the action bounds; the critic scores what really ran, so the stored chunk is
    the clipped one, mapped back to the flow space. Observations are stored raw (relative
    actions need the joint positions). tracker carries running episode returns / lengths.
    """
    steps, num_envs = cfg.rollout_steps, obs_np.shape[0]
    device = action_low.device
    seg = {'obs': [], 'chunk': [], 'reward': [], 'next_obs': [], 'terminated': [],
           'episode_end': [], 'success': []}
    explore_scale = torch.zeros((), device=device)
    for _ in range(steps):
        obs = torch.as_tensor(obs_np, dtype=torch.float32, device=device)
        chain = policy.chain(policy.normalize_obs(obs),
                             policy.initial_noise(num_envs, device=device), cfg.flow_steps)
        if cfg.explore:
            a_n, scale = explore(chain)
            explore_scale += scale.mean()
        else:
            a_n = chain[-1]
        chunk = torch.clamp(policy.unnormalize_actions(a_n, obs), action_low, action_high)
        next_np, reward, terminated, truncated, info = venv.step(chunk.cpu().numpy())
        done = terminated | truncated
        real_next = next_np.copy()
        for i in np.flatnonzero(done):
            real_next[i] = info['final_obs'][i]
        chunk_steps = _per_env(info, done, 'chunk_steps', policy.config.horizon)
        success = _per_env(info, done, 'success', False).astype(bool)
        seg['obs'].append(obs)
        seg['chunk'].append(policy.normalize_actions(chunk, obs))
        seg['next_obs'].append(torch.as_tensor(real_next, dtype=torch.float32, device=device))
        for name, value in (('reward', reward), ('terminated', terminated),
                            ('episode_end', done), ('success', success)):
            seg[name].append(torch.as_tensor(value, device=device))
        tracker['return'] += reward
        tracker['length'] += chunk_steps
        tracker['env_steps'] += int(chunk_steps.sum())
        for i in np.flatnonzero(done):
            tracker['finished'].append((float(tracker['return'][i]), bool(success[i])))
            tracker['return'][i] = 0.0
            tracker['length'][i] = 0
        obs_np = next_np
    segment = {name: torch.stack(values) for name, values in seg.items()}
    segment['reward'] = segment['reward'].float()
    tracker['explore_scale'] = float(explore_scale) / steps
    return segment, obs_np


@torch.no_grad()
def bootstrap_values(policy: FlowPolicy, critic_target: QEnsemble, next_obs: torch.Tensor,
                     action_box: tuple[torch.Tensor, torch.Tensor], cfg: FinetuneConfig
                     ) -> torch.Tensor:
    """V(s') = mean over K fresh policy actions of min over target nets; raw (M, D) -> (M,)."""
    values = []
    for obs in next_obs.split(cfg.bootstrap_batch_size):
        rep = obs.repeat(cfg.bootstrap_actions, 1)                        # (K*m, D)
        rep_n = policy.normalize_obs(rep)
        a_n = policy.chain(rep_n, policy.initial_noise(rep.shape[0], device=rep.device),
                           cfg.flow_steps)[-1]
        bounds = flow_space_bounds(policy, *action_box, rep)
        q_min = critic_target(rep_n, a_n, bounds).min(0).values          # (K*m,)
        values.append(q_min.view(cfg.bootstrap_actions, -1).mean(0))
    return torch.cat(values)


@torch.no_grad()
def critic_targets(policy: FlowPolicy, critic_target: QEnsemble, replay: RolloutReplay,
                   scale: float, action_box: tuple[torch.Tensor, torch.Tensor],
                   cfg: FinetuneConfig) -> torch.Tensor:
    """TD(lambda) targets for every stored transition, flat (S*T*E,)."""
    next_obs = replay.view('next_obs')
    lead = next_obs.shape[:3]                                             # (S, T, E)
    values = bootstrap_values(policy, critic_target, next_obs.reshape(-1, next_obs.shape[-1]),
                              action_box, cfg).view(lead)

    def time_first(x):
        return x.transpose(0, 1)                                          # (T, S, E)
    targets = td_lambda_targets(time_first(replay.view('reward')) / scale, time_first(values),
                                time_first(replay.view('terminated')),
                                time_first(replay.view('episode_end')), cfg.gamma,
                                cfg.td_lambda)
    if cfg.sparse_reward:
        targets = targets.clamp(0.0, cfg.target_clip_max)
    return time_first(targets).reshape(-1)


def critic_step(critic: QEnsemble, critic_target: QEnsemble, optimizer: torch.optim.Optimizer,
                obs_n: torch.Tensor, chunk_n: torch.Tensor, y: torch.Tensor,
                cfg: FinetuneConfig) -> torch.Tensor:
    """One MSE step of every ensemble member towards y (B,), then Polyak; returns Q (E, B).

    obs_n: standardized states (B, D); chunk_n: executed (clipped) chunks, flow space.
    """
    q = critic(obs_n, chunk_n)                                            # (E, B)
    loss = (q - y).pow(2).mean(1).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(critic.parameters(), cfg.max_grad_norm)
    optimizer.step()
    polyak_update(critic_target, critic, cfg.polyak)
    return q.detach()


def train_critic(critic: QEnsemble, critic_target: QEnsemble, optimizer: torch.optim.Optimizer,
                 policy: FlowPolicy, replay: RolloutReplay, scale: float,
                 action_box: tuple[torch.Tensor, torch.Tensor], cfg: FinetuneConfig) -> dict:
    """cfg.critic_steps steps in cfg.critic_rounds rounds; TD targets refreshed per round."""
    obs = replay.view('obs').flatten(0, 2)
    chunk = replay.view('chunk').flatten(0, 2)
    sums = torch.zeros(4, device=obs.device)                # loss, q, target, |td error|
    for round_steps in np.array_split(np.arange(cfg.critic_steps), cfg.critic_rounds):
        targets = critic_targets(policy, critic_target, replay, scale, action_box, cfg)
        for _ in round_steps:
            idx = replay.sample(cfg.critic_batch_size, cfg.new_data_fraction, cfg.sparse_reward)
            y = targets[idx]
            q = critic_step(critic, critic_target, optimizer, policy.normalize_obs(obs[idx]),
                            chunk[idx], y, cfg)
            sums += torch.stack([(q - y).pow(2).mean(1).sum(), q.mean(), y.mean(),
                                 (q - y).abs().mean()])
    means = (sums / max(cfg.critic_steps, 1)).tolist()
    return dict(zip(('loss', 'q_mean', 'target_mean', 'td_error'), means))


def train_actor(policy: FlowPolicy, reference: FlowPolicy, critic: QEnsemble,
                optimizer: torch.optim.Optimizer, scheduler, replay: RolloutReplay,
                action_box: tuple[torch.Tensor, torch.Tensor], cfg: FinetuneConfig) -> dict:
    """cfg.actor_steps RLDT steps on states drawn uniformly from the replay."""
    obs = replay.view('obs').flatten(0, 2)
    # Field terms that only the rbf transport has are absent for delta, and not logged.
    names = ('loss', 'rl', 'cons', 'fd', 'phi_norm', 'attraction_norm', 'repulsion_norm',
             'bandwidth', 'alpha_eff', 'grad_q_norm', 'q_particles')
    sums: dict[str, torch.Tensor] = {}
    grad_per_k = torch.zeros(cfg.flow_steps, device=obs.device)
    grad_norm = torch.zeros((), device=obs.device)
    max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float('inf')
    for _ in range(cfg.actor_steps):
        idx = torch.randint(0, obs.shape[0], (cfg.actor_batch_size,), device=obs.device)
        out = rldt_losses(policy, reference, critic, obs[idx], cfg, action_box)
        out['v'].retain_grad()
        optimizer.zero_grad(set_to_none=True)
        out['loss'].backward()
        grad_norm += torch.nn.utils.clip_grad_norm_(policy.parameters(), max_norm)
        optimizer.step()
        scheduler.step()
        grad_per_k += grad_norm_per_step(out['v'], out['k'], cfg.flow_steps)
        for name in names:
            if name in out:
                sums[name] = sums.get(name, 0.0) + out[name].detach()
    n = max(cfg.actor_steps, 1)
    stats = {name: float(value) / n for name, value in sums.items()}
    stats['grad_norm'] = float(grad_norm) / n
    stats['grad_v_per_k'] = (grad_per_k / n).tolist()
    return stats


# --------------------------------------------------------------------------------------------
# The loop.
# --------------------------------------------------------------------------------------------
def run_finetune(config: TrainConfig, run_dir: Path, base_checkpoint: Path,
                 resume: bool = False, progress: bool = True) -> dict:
    """Fine-tune the policy in base_checkpoint with RLDT; returns a summary dict.

    Writes run_dir/checkpoints/finetune_last.pt (full state), run_dir/policy_finetuned.pt
    (loadable by load_policy), run_dir/learning_curve.png and TensorBoard under run_dir/tb.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = config.finetune
    device = configure_torch(config)
    if device.type == 'cuda':
        # TF32 matmuls: the MLPs here are far from needing full fp32 mantissas.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # ---- policy, reference, critic, optimizers ------------------------------------------
    base = load_policy(base_checkpoint, map_location=device).to(device)
    if base.config.horizon != config.policy.horizon:
        raise ValueError(f'policy.horizon is {config.policy.horizon} but the base checkpoint '
                         f'{base_checkpoint} has horizon {base.config.horizon}')
    # Fine-tuning trains the chain it samples with, so export must use the same N.
    base.config = replace(base.config, sampler_steps=cfg.flow_steps)
    base.requires_grad_(False)
    policy = copy.deepcopy(base).requires_grad_(True)
    reference = copy.deepcopy(base) if cfg.reference == 'previous' else base
    horizon, action_dim, obs_dim = base.config.horizon, base.config.action_dim, base.config.obs_dim
    bounds_env = make_env(config.task, horizon=horizon)                   # (H, A) chunk bounds
    space = bounds_env.action_space
    bounds_env.close()
    action_low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
    action_high = torch.as_tensor(space.high, dtype=torch.float32, device=device)
    action_box = (action_low, action_high)
    critic = QEnsemble(obs_dim, horizon * action_dim, cfg.critic_ensemble, cfg.critic_hidden_dim,
                       cfg.critic_depth, cfg.critic_init_std).to(device)
    critic_target = make_target(critic)
    actor_opt = torch.optim.Adam(policy.parameters(), lr=cfg.actor_lr)
    warmup = max(cfg.actor_lr_warmup_steps, 1)
    actor_sched = torch.optim.lr_scheduler.LambdaLR(actor_opt,
                                                    lambda s: min(1.0, (s + 1) / warmup))
    critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)
    replay = RolloutReplay(cfg.replay_rollouts, cfg.rollout_steps, cfg.num_envs, obs_dim,
                           (horizon, action_dim), device)
    scaler = RewardScaler(cfg.reward_scale_decay, cfg.reward_scale == 'ema_abs')
    history = {'eval': [], 'train_return': [], 'train_env_steps': [], 'iteration_s': []}
    start, env_steps, wall_s = 0, 0, 0.0

    state_path = run_dir / STATE_FILE
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=True)
        _check_resume_config(state['config'], config_to_dict(config))
        policy.load_state_dict(state['policy'])
        reference.load_state_dict(state['reference'])
        critic.load_state_dict(state['critic'])
        critic_target.load_state_dict(state['critic_target'])
        actor_opt.load_state_dict(state['actor_optimizer'])
        actor_sched.load_state_dict(state['actor_scheduler'])
        critic_opt.load_state_dict(state['critic_optimizer'])
        replay.load_state_dict(state['replay'])
        scaler.load_state_dict(state['reward_scaler'])
        history = state['history']
        start, env_steps, wall_s = state['iteration'], state['env_steps'], state['wall_s']
        set_rng_state(state['rng'])
    save_config(config, run_dir / 'config.yaml')

    writer = SummaryWriter(str(run_dir / 'tb'))
    if start == 0:
        writer.add_text('config', '```\n' + json.dumps(config_to_dict(config), indent=2)
                        + '\n```')
        writer.add_text('rldt', f'transport={cfg.transport} reference={cfg.reference} '
                        f'device={device}')
    # Envs restart on resume (their state is not checkpointable); the seed moves with the
    # iteration so a resumed run does not replay the same episodes.
    venv = make_vector_env(config.task, cfg.num_envs, horizon, seed=config.seed + 7919 * start,
                           vectorization=cfg.vectorization)
    obs_np, reset_info = venv.reset(seed=config.seed + 7919 * start)
    has_success = 'success' in reset_info
    tracker = {'return': np.zeros(cfg.num_envs), 'length': np.zeros(cfg.num_envs, int),
               'env_steps': 0, 'finished': []}

    def log_eval(result: dict) -> None:
        result['env_steps'] = env_steps
        history['eval'].append(result)
        for key, value in result.items():
            if key.startswith(('return_', 'success_')) and (has_success or 'return' in key):
                writer.add_scalar(f'charts/eval_{key}', value, env_steps)

    if start == 0:
        log_eval(_evaluate(policy, config, device, 0))

    bar = tqdm(range(start, cfg.iterations), desc=f'rldt {config.task}', unit='it',
               disable=not progress, initial=start, total=cfg.iterations)
    for iteration in bar:
        t_iter = time.perf_counter()
        # ---- collect ----------------------------------------------------------------------
        tracker['env_steps'], tracker['finished'] = 0, []
        segment, obs_np = collect_rollout(venv, obs_np, policy, cfg, action_low, action_high,
                                          tracker)
        collect_s = time.perf_counter() - t_iter
        env_steps += tracker['env_steps']
        replay.add(segment)
        scaler.update(segment['reward'])

        # ---- critic rounds ----------------------------------------------------------------
        t_update = time.perf_counter()
        critic_stats = train_critic(critic, critic_target, critic_opt, policy, replay,
                                    scaler.scale, action_box, cfg)

        # ---- actor steps (after the critic-only warm-up) ----------------------------------
        actor_stats = None
        if iteration >= cfg.warmup_iterations and cfg.actor_steps > 0:
            actor_stats = train_actor(policy, reference, critic, actor_opt, actor_sched,
                                      replay, action_box, cfg)
        # ---- reference update: `previous` copies v_theta after every iteration -----------
        if cfg.reference == 'previous':
            reference.load_state_dict(policy.state_dict())
        if device.type == 'cuda':
            torch.cuda.synchronize()
        update_s = time.perf_counter() - t_update

        # ---- evaluate, log, checkpoint (TRY NOT TO MODIFY: plumbing) ----------------------
        last = iteration + 1 == cfg.iterations
        if last or (cfg.eval_every and (iteration + 1) % cfg.eval_every == 0):
            log_eval(_evaluate(policy, config, device, iteration + 1))
        iteration_s = time.perf_counter() - t_iter
        wall_s += iteration_s
        history['iteration_s'].append(iteration_s)
        finished = tracker['finished']
        if finished:
            train_return = float(np.mean([r for r, _ in finished]))
            history['train_return'].append(train_return)
            history['train_env_steps'].append(env_steps)
            writer.add_scalar('charts/train_episode_return', train_return, env_steps)
            if has_success:
                writer.add_scalar('charts/train_success', float(np.mean(
                    [s for _, s in finished])), env_steps)
        scalars = {
            'charts/env_steps_per_s': tracker['env_steps'] / collect_s,
            'charts/collect_s': collect_s, 'charts/update_s': update_s,
            'charts/iteration_s': iteration_s, 'charts/reward_scale': scaler.scale,
            'charts/explore_scale': tracker['explore_scale'],
            'charts/actor_lr': actor_sched.get_last_lr()[0],
            'charts/reference_is_previous': float(cfg.reference == 'previous'),
            'losses/critic': critic_stats['loss'], 'critic/q_mean': critic_stats['q_mean'],
            'critic/target_mean': critic_stats['target_mean'],
            'critic/td_error': critic_stats['td_error'],
        }
        if actor_stats is not None:
            for name in ('loss', 'rl', 'cons', 'fd'):
                scalars[f'losses/actor_{name}' if name == 'loss' else f'losses/{name}'] = \
                    actor_stats[name]
            scalars['losses/actor_grad_norm'] = actor_stats['grad_norm']
            for name in ('phi_norm', 'attraction_norm', 'repulsion_norm', 'bandwidth',
                         'alpha_eff', 'grad_q_norm', 'q_particles'):
                if name in actor_stats:
                    scalars[f'field/{name}'] = actor_stats[name]
            for k, value in enumerate(actor_stats['grad_v_per_k']):
                scalars[f'field/grad_v_k{k}'] = value
        for name, value in scalars.items():
            writer.add_scalar(name, value, env_steps)
        latest = history['eval'][-1]
        bar.set_postfix(ret=f"{latest.get('return_det', latest.get('return_stoch')):.1f}",
                        q=f"{critic_stats['q_mean']:.2f}", steps=env_steps)

        if last or (iteration + 1) % cfg.checkpoint_every == 0:
            atomic_save({
                'iteration': iteration + 1, 'env_steps': env_steps, 'wall_s': wall_s,
                'config': config_to_dict(config), 'policy': policy.state_dict(),
                'reference': reference.state_dict(), 'base': base.state_dict(),
                'critic': critic.state_dict(), 'critic_target': critic_target.state_dict(),
                'actor_optimizer': actor_opt.state_dict(),
                'actor_scheduler': actor_sched.state_dict(),
                'critic_optimizer': critic_opt.state_dict(), 'replay': replay.state_dict(),
                'reward_scaler': scaler.state_dict(), 'history': history, 'rng': rng_state(),
            }, state_path)
            save_policy(run_dir / POLICY_FILE, policy,
                        extra={'task': config.task, 'base': str(base_checkpoint),
                               'iteration': iteration + 1, 'env_steps': env_steps,
                               'transport': cfg.transport, 'reference': cfg.reference})
            _plot_curve(history, run_dir / CURVE_FILE,
                        f'RLDT {config.task} ({cfg.transport}, ref={cfg.reference})')
    bar.close()
    writer.close()
    venv.close()
    base_eval, final_eval = history['eval'][0], history['eval'][-1]
    mode = 'det' if cfg.eval_deterministic else 'stoch'
    summary = {'task': config.task, 'device': str(device), 'transport': cfg.transport,
               'reference': cfg.reference, 'iterations': cfg.iterations, 'env_steps': env_steps,
               'wall_s': wall_s, 'base_return': base_eval[f'return_{mode}'],
               'final_return': final_eval[f'return_{mode}'],
               'policy': str(run_dir / POLICY_FILE)}
    if has_success:
        summary['base_success'] = base_eval[f'success_{mode}']
        summary['final_success'] = final_eval[f'success_{mode}']
    if cfg.eval_deterministic and cfg.eval_stochastic:
        summary['base_return_stoch'] = base_eval['return_stoch']
        summary['final_return_stoch'] = final_eval['return_stoch']
    return summary
