"""The RLDT learner: what fine-tuning trains, how one iteration of updates runs, one state.

`RLDTLearner` owns the policy v_theta, its reference v_ref, the frozen base, the critic
ensemble with its Polyak targets, both optimizers, the actor's warm-up schedule and the reward
scale, and has one `state_dict` for all of them. `update(replay)` is one iteration of learning
(docs/architecture.md 4, the authors' schedule):

    for each of critic_rounds rounds:
        mix   <- trajectories from the replay, >= new_data_fraction of them fresh
        a'    <- bootstrap_actions fresh policy actions at every next state of the mix
        repeat critic_steps / rounds:   TD(lambda) targets from the moving target nets
                                        (every target_refresh_steps), one full-batch step
                                        (member e on its own share of the trajectories),
                                        Polyak
        repeat actor_steps / rounds:    one RLDT step on states of the same mix
    reference <- policy (reference 'previous')

Everything here is tensors on one device; the application (rldt_train/finetune.py) owns the
environments, evaluation, files and logging.
"""
import copy

import torch

from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import state_of
from rldt_train.policy.normalizer import Normalizer
from rldt_train.rl.config import FinetuneConfig
from rldt_train.rl.critic import QEnsemble
from rldt_train.rl.critic import flow_space_bounds
from rldt_train.rl.critic import make_target
from rldt_train.rl.critic import polyak_update
from rldt_train.rl.replay import RolloutReplay
from rldt_train.rl.replay import observation_fields
from rldt_train.rl.rldt import explore
from rldt_train.rl.rldt import grad_norm_per_step
from rldt_train.rl.rldt import rldt_losses
from rldt_train.rl.td import RewardScaler
from rldt_train.rl.td import td_lambda_targets

Observation = dict[str, torch.Tensor]
# Actor statistics averaged per iteration (terms only the rbf transport or the deterministic
# query has are absent otherwise, and not logged).
ACTOR_STATS = ('loss', 'rl', 'cons', 'fd', 'phi_norm', 'attraction_norm', 'repulsion_norm',
               'bandwidth', 'alpha_eff', 'grad_q_norm', 'q_particles', 'q_deterministic')


class RLDTLearner:
    """Policy, reference, critic and their optimizers, trained by `update` (module docstring).

    base: the pretrained policy (kept frozen; the 'pretrained' reference and drift statistics
    use it). action_box: (low, high) (H, A) in robot units, the executable chunk box.
    critic_obs_key: the observation field the critic reads: 'state', or 'privileged' for
    camera tasks whose critic sees the simulator state (asymmetric actor-critic).
    """

    def __init__(self, base: FlowPolicy, cfg: FinetuneConfig,
                 action_box: tuple[torch.Tensor, torch.Tensor], critic_obs_dim: int,
                 critic_obs_key: str = 'state'):
        self.cfg = cfg
        self.action_box = action_box
        self.critic_obs_key = critic_obs_key
        self.base = base.requires_grad_(False)
        self.policy = copy.deepcopy(base).requires_grad_(True)
        self.reference = copy.deepcopy(base) if cfg.reference == 'previous' else base
        # Eval mode throughout: a camera policy's random shift must not act while collecting,
        # bootstrapping or measuring drift (those see the image as deployment does); the actor
        # update augments explicitly (cfg.actor_augmentation).
        for net in (self.base, self.policy, self.reference):
            net.eval()
        device = action_box[0].device
        horizon, action_dim = base.config.horizon, base.config.action_dim
        self.critic = QEnsemble(critic_obs_dim, horizon * action_dim, cfg.critic_ensemble,
                                cfg.critic_hidden_dim, cfg.critic_depth, cfg.critic_init_std,
                                cfg.critic_activation).to(device)
        self.critic_target = make_target(self.critic)
        # The critic's input scale: the policy's own state statistics when it reads the
        # state; for privileged inputs, fitted on the first rollout (then frozen, so Q's
        # input meaning never moves under it).
        self.critic_normalizer = Normalizer(critic_obs_dim).to(device)
        self.critic_normalizer_fitted = critic_obs_key == 'state'
        if self.critic_normalizer_fitted:
            self.critic_normalizer.load_state_dict(base.obs_normalizer.state_dict())
        # Fused Adam: one kernel over all parameters instead of ~10 ops per tensor; on one CPU
        # thread it cuts the critic step's optimizer time 0.7 -> 0.2 ms (512 steps/iteration).
        self.actor_opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.actor_lr, fused=True)
        warmup = max(cfg.actor_lr_warmup_steps, 1)
        self.actor_sched = torch.optim.lr_scheduler.LambdaLR(
            self.actor_opt, lambda s: min(1.0, (s + 1) / warmup))
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr,
                                           fused=True)
        self.scaler = RewardScaler(cfg.reward_scale_decay, cfg.reward_scale == 'ema_abs')
        self.actor_updates = 0

    # ---- acting -------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: Observation, exploring: bool = True
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Chunks to execute for raw observations (B, ...).

        Returns (chunk in robot units clipped to the action box (B, H, A), the same chunk in
        the flow space (what the critic scores), exploration noise scale (B,)).
        """
        policy, state = self.policy, state_of(obs)
        x0 = policy.initial_noise(state.shape[0], device=state.device)
        # The first envs act in the deterministic mode (x_0 = 0), so the critic sees its actions.
        x0[:round(self.cfg.deterministic_envs * state.shape[0])] = 0.0
        chain = policy.chain(policy.encode(obs), x0, self.cfg.flow_steps)
        if exploring and self.cfg.explore:
            a_n, scale = explore(chain)
        else:
            a_n, scale = chain[-1], torch.zeros(state.shape[0], device=state.device)
        chunk = torch.clamp(policy.unnormalize_actions(a_n, state), *self.action_box)
        return chunk, policy.normalize_actions(chunk, state), scale

    # ---- learning -----------------------------------------------------------------------

    def update(self, replay: RolloutReplay, train_actor: bool) -> dict:
        """One iteration of critic rounds (with actor steps when train_actor); stats."""
        cfg = self.cfg
        if not self.critic_normalizer_fitted:
            self._fit_critic_normalizer(replay)
        critic_per_round = cfg.critic_steps // cfg.critic_rounds
        actor_per_round = cfg.actor_steps // cfg.critic_rounds if train_actor else 0
        critic_sums = torch.zeros(4, device=self.action_box[0].device)
        staleness = []
        actor_sums: dict[str, torch.Tensor] = {}
        grad_per_k = torch.zeros(cfg.flow_steps, device=self.action_box[0].device)
        grad_norm = 0.0
        for _ in range(cfg.critic_rounds):
            mix = replay.sample_trajectories(cfg.mix_size, cfg.new_data_fraction,
                                             cfg.sparse_reward)
            round_data = self.prepare_round(mix)
            targets = None
            for step in range(critic_per_round):
                if step % cfg.target_refresh_steps == 0:
                    fresh = self.td_targets(round_data)
                    if targets is not None:
                        # How far the moving target nets carried the targets since the last
                        # refresh: what reusing them for target_refresh_steps steps costs.
                        staleness.append((fresh - targets).abs().mean())
                    targets = fresh
                critic_sums += self.critic_step(round_data, targets)
            for _ in range(actor_per_round):
                out, norm = self.actor_step(round_data)
                grad_norm += norm
                grad_per_k += grad_norm_per_step(out['v'], out['k'], cfg.flow_steps)
                for name in ACTOR_STATS:
                    if name in out:
                        actor_sums[name] = actor_sums.get(name, 0.0) + out[name].detach()
        if cfg.reference == 'previous':
            self.reference.load_state_dict(self.policy.state_dict())
        stats = dict(zip(('critic_loss', 'q_mean', 'target_mean', 'td_error'),
                         (critic_sums / max(cfg.critic_steps, 1)).tolist()))
        if staleness:
            stats['target_staleness'] = float(torch.stack(staleness).mean())
        n_actor = actor_per_round * cfg.critic_rounds
        if n_actor:
            stats.update({f'actor_{k}': float(v) / n_actor for k, v in actor_sums.items()})
            stats['actor_grad_norm'] = grad_norm / n_actor
            stats['grad_v_per_k'] = (grad_per_k / n_actor).tolist()
        return stats

    def critic_input(self, obs: Observation) -> torch.Tensor:
        """The critic's standardized input for raw observations (..., Dc)."""
        return self.critic_normalizer.normalize(obs[self.critic_obs_key])

    def _fit_critic_normalizer(self, replay: RolloutReplay) -> None:
        data = replay.data[f'obs/{self.critic_obs_key}'][:replay.filled]
        fitted = Normalizer.from_data(data.reshape(-1, data.shape[-1]), 'meanstd')
        self.critic_normalizer.load_state_dict(fitted.state_dict())
        self.critic_normalizer_fitted = True

    @torch.no_grad()
    def prepare_round(self, mix: dict[str, torch.Tensor]) -> dict:
        """What a round's critic and actor steps share: inputs, bootstrap actions, splits."""
        cfg = self.cfg
        obs = observation_fields(mix, 'obs')                                # (T, M, ...)
        next_obs = observation_fields(mix, 'next_obs')
        steps, trajectories = mix['reward'].shape
        flat = {k: v.flatten(0, 1) for k, v in next_obs.items()}          # (T*M, ...)
        next_state = state_of(flat)
        rep_state = next_state.repeat(cfg.bootstrap_actions, 1)             # (K*T*M, D)
        cond = self.policy.encode(flat)
        actions = []
        for part in cond.repeat(cfg.bootstrap_actions, 1).split(cfg.bootstrap_batch_size):
            noise = self.policy.initial_noise(part.shape[0], device=part.device)
            actions.append(self.policy.chain(part, noise, cfg.flow_steps)[-1])
        round_data = {
            'obs': obs, 'critic_obs': self.critic_input(obs), 'chunk': mix['chunk'],
            'reward': mix['reward'] / self.scaler.scale, 'terminated': mix['terminated'],
            'episode_end': mix['episode_end'], 'shape': (steps, trajectories),
            'next_critic_obs': self.critic_input(flat).repeat(cfg.bootstrap_actions, 1),
            'next_actions': torch.cat(actions),
            'next_bounds': flow_space_bounds(self.policy, *self.action_box, rep_state),
        }
        members = cfg.critic_ensemble
        if cfg.critic_split == 'trajectory':
            # Member e trains on trajectories e, e + E, ... (equal shares; a remainder of the
            # mix beyond a multiple of E is left out of the critic step).
            share = trajectories // members
            index = torch.arange(share * members, device=mix['reward'].device)
            index = index.view(share, members).T                            # (E, share)
            round_data['member_index'] = index
            round_data['member_obs'] = round_data['critic_obs'][:, index].permute(1, 0, 2, 3)
            round_data['member_chunk'] = mix['chunk'][:, index].permute(1, 0, 2, 3, 4)
        return round_data

    @torch.no_grad()
    def td_targets(self, data: dict) -> torch.Tensor:
        """TD(lambda) targets (T, M) with V(s') = mean_k min_e Q_target(s', a'_k)."""
        cfg = self.cfg
        steps, trajectories = data['shape']
        q = self.critic_target(data['next_critic_obs'], data['next_actions'],
                               data['next_bounds'])                          # (E, K*T*M)
        values = q.min(0).values.view(cfg.bootstrap_actions, steps, trajectories).mean(0)
        targets = td_lambda_targets(data['reward'], values, data['terminated'],
                                    data['episode_end'], cfg.gamma, cfg.td_lambda)
        if cfg.sparse_reward:
            targets = targets.clamp(0.0, cfg.target_clip_max)
        return targets

    def critic_step(self, data: dict, targets: torch.Tensor) -> torch.Tensor:
        """One full-batch MSE step of every member, then Polyak; returns summed stats (4,)."""
        cfg = self.cfg
        if 'member_index' in data:
            index = data['member_index']
            obs_n = data['member_obs'].flatten(1, 2)                       # (E, T*share, Dc)
            chunk = data['member_chunk'].flatten(1, 2)                     # (E, T*share, H, A)
            y = targets[:, index].permute(1, 0, 2).flatten(1)              # (E, T*share)
        else:
            obs_n = data['critic_obs'].flatten(0, 1)
            chunk = data['chunk'].flatten(0, 1)
            y = targets.flatten()[None]
        q = self.critic(obs_n, chunk)                                       # (E, B)
        loss = (q - y).pow(2).mean(1).sum()
        _check_finite(loss, 'critic loss')
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
        self.critic_opt.step()
        polyak_update(self.critic_target, self.critic, cfg.polyak)
        q = q.detach()
        return torch.stack([(q - y).pow(2).mean(1).sum(), q.mean(), y.mean(),
                            (q - y).abs().mean()])

    def actor_step(self, data: dict) -> tuple[dict, float]:
        """One RLDT step on states of the round's mix; returns the loss dict and grad norm."""
        cfg = self.cfg
        steps, trajectories = data['shape']
        if cfg.actor_batch_states:
            flat = torch.randint(0, steps * trajectories, (cfg.actor_batch_states,),
                                 device=data['reward'].device)
            t, m = flat // trajectories, flat % trajectories
        else:
            # Every P-th trajectory of the mix, rotating which one starts (the authors' rule;
            # the stride shrinks to the mix size for tiny mixes).
            stride = min(cfg.particles, trajectories)
            start = self.actor_updates % stride
            m = torch.arange(start, trajectories, stride, device=data['reward'].device)
            t = torch.arange(steps, device=m.device).repeat_interleave(len(m))
            m = m.repeat(steps)
        obs = {k: v[t, m] for k, v in data['obs'].items()}
        if cfg.actor_augmentation == 'shared_shift':
            # One shifted view per state, seen by both v_theta and v_ref: L_fd then compares
            # the two nets on the same input, not on two different augmentations.
            obs = self.policy.shift_images(obs)
        out = rldt_losses(self.policy, self.reference, self.critic, obs,
                          data['critic_obs'][t, m], cfg, self.action_box)
        _check_finite(out['loss'], 'actor loss')
        out['v'].retain_grad()
        self.actor_opt.zero_grad(set_to_none=True)
        out['loss'].backward()
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float('inf')
        norm = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), max_norm))
        self.actor_opt.step()
        self.actor_sched.step()
        self.actor_updates += 1
        return out, norm

    # ---- diagnostics --------------------------------------------------------------------

    @torch.no_grad()
    def drift(self, obs: Observation, samples: int = 8) -> dict[str, float]:
        """How far the policy's actions moved from the base's, per sampling mode.

        Mean ||a_theta(x0) - a_base(x0)|| in the flow space over the given states, for x0 = 0
        (the deterministic mode) and for `samples` shared Gaussian x0. A deterministic drift
        far above the stochastic one means training moves the x0 = 0 path without looking at
        it (docs/architecture.md 6).
        """
        state = state_of(obs)
        batch, shape = state.shape[0], (self.base.config.horizon, self.base.config.action_dim)
        out = {}
        for mode, x0 in (('deterministic', torch.zeros(batch, *shape, device=state.device)),
                         ('stochastic', torch.randn(samples * batch, *shape,
                                                    device=state.device))):
            reps = x0.shape[0] // batch
            finals = [net.chain(net.encode(obs).repeat(reps, 1), x0, self.cfg.flow_steps)[-1]
                      for net in (self.policy, self.base)]
            out[mode] = float((finals[0] - finals[1]).flatten(1).norm(dim=-1).mean())
        return out

    # ---- state --------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {'policy': self.policy.state_dict(), 'reference': self.reference.state_dict(),
                'critic': self.critic.state_dict(),
                'critic_target': self.critic_target.state_dict(),
                'critic_normalizer': self.critic_normalizer.state_dict(),
                'critic_normalizer_fitted': self.critic_normalizer_fitted,
                'actor_optimizer': self.actor_opt.state_dict(),
                'actor_scheduler': self.actor_sched.state_dict(),
                'critic_optimizer': self.critic_opt.state_dict(),
                'reward_scaler': self.scaler.state_dict(), 'actor_updates': self.actor_updates}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state['policy'])
        self.reference.load_state_dict(state['reference'])
        self.critic.load_state_dict(state['critic'])
        self.critic_target.load_state_dict(state['critic_target'])
        self.critic_normalizer.load_state_dict(state['critic_normalizer'])
        self.critic_normalizer_fitted = bool(state['critic_normalizer_fitted'])
        self.actor_opt.load_state_dict(state['actor_optimizer'])
        self.actor_sched.load_state_dict(state['actor_scheduler'])
        self.critic_opt.load_state_dict(state['critic_optimizer'])
        self.scaler.load_state_dict(state['reward_scaler'])
        self.actor_updates = int(state['actor_updates'])



def _check_finite(loss: torch.Tensor, what: str) -> None:
    """Stop before a non-finite loss poisons the weights (and the next checkpoint)."""
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f'RLDT {what} is {loss.item()}: training diverged. The last checkpoint was written '
            'before this iteration and is intact; lower the learning rates or enable '
            'max_grad_norm, then resume.')
