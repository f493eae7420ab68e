"""RLDT fine-tuning configuration: every method switch and number of docs/architecture.md 4.

The dataclass below IS the default; `config/train/<task>.yaml` overrides fields under
`finetune:` and an unknown key is an error. Users usually change: `iterations`, `num_envs`,
`rollout_steps`, `transport`, `reference`, `sparse_reward`, `eval_every`, `deploy_mode`.
Where our default differs from the authors' released code, the field's docstring says so and
docs/architecture.md section 6 gives the measurement behind it.
"""
from dataclasses import dataclass

TRANSPORTS = ('rbf', 'delta')
REFERENCES = ('previous', 'pretrained')
REWARD_SCALES = ('ema_abs', 'none')
REWARDS = ('task', 'success')
VECTORIZATIONS = ('sync', 'async')
CRITIC_ACTIVATIONS = ('silu', 'relu')
CRITIC_SPLITS = ('trajectory', 'none')
DEPLOY_MODES = ('auto', 'deterministic', 'stochastic')
ACTOR_AUGMENTATIONS = ('shared_shift', 'none')
SELECT_METRICS = ('auto', 'return', 'success')


@dataclass
class FinetuneConfig:
    """RLDT fine-tuning (docs/architecture.md section 4).

    Args are documented field by field below; groups: schedule, environment interaction,
    transport field, losses, critic, replay, optimisation, evaluation and selection,
    bookkeeping.
    """

    # --- schedule -------------------------------------------------------------------------
    iterations: int = 10
    """Outer iterations (collect, critic rounds with actor steps, reference update)."""
    warmup_iterations: int = 2
    """First iterations that train only the critic (the actor waits for a usable Q)."""

    # --- environment interaction ----------------------------------------------------------
    num_envs: int = 100
    """Parallel environments collecting each iteration."""
    rollout_steps: int = 500
    """Chunk steps per environment per iteration (one stored trajectory per env)."""
    vectorization: str = 'sync'
    """'sync' (best on few cores) or 'async' (worker processes, many cores)."""
    explore: bool = True
    """Exploration a = a_N + ||a_N - a_dag_k|| N(0, I), k ~ U{N-2, N-1}; False: plain a_N."""

    # --- flow and transport field ---------------------------------------------------------
    flow_steps: int = 8
    """Euler steps N of the chain during fine-tuning (32 on long-horizon assembly)."""
    transport: str = 'rbf'
    """'rbf': SVGD field with RBF kernel and repulsion; 'delta': phi = grad_a Q (ablation)."""
    particles: int = 8
    """P chains per state whose final actions are the SVGD particles."""
    temperature: float = 0.001
    """alpha_eff = temperature * mean_j ||grad_a Q(s, a_j)|| (repulsion scales with the pull)."""
    alpha_min: float = 1e-6
    """Lower clamp of alpha_eff (keeps some repulsion where Q is flat)."""
    alpha_max: float = 1.0
    """Upper clamp of alpha_eff (a critic spike must not blow the particles apart)."""
    deterministic_query: bool = True
    """Also train the chain from x_0 = 0 (the deterministic sampling mode) as one more query
    per state: same field, consistency and constraint. Not in the authors' code, where nothing
    trains that path and the deterministic mode drifts (docs/architecture.md 6)."""
    deterministic_envs: float = 0.0
    """Share of the collecting envs that act from x_0 = 0 (plus the usual exploration noise)
    instead of x_0 ~ N(0, I). Training the deterministic chain on a critic that never saw its
    actions lets it walk off the data (docs/architecture.md 6); these envs show the critic
    what the deterministic mode does. 0 = the authors' collection."""

    # --- losses ---------------------------------------------------------------------------
    consistency_weight: float = 0.5
    """Weight of L_cons (the one-step estimate a_dag must agree with the chain's a_N)."""
    constraint_weight: float = 0.2
    """Weight of L_fd (time-weighted Fisher divergence to v_ref)."""
    reference: str = 'previous'
    """v_ref: 'previous' (copied after every iteration, the released code) or 'pretrained'."""
    actor_augmentation: str = 'shared_shift'
    """Camera policies, actor update only: 'shared_shift' shifts each image once (the policy's
    image_shift) and v_theta and v_ref both see that view; 'none' shows the images unshifted.
    Acting and bootstrap actions never augment (docs/architecture.md 6)."""

    # --- critic ---------------------------------------------------------------------------
    critic_ensemble: int = 2
    """Q networks in the ensemble (bootstrap takes the min over their targets)."""
    critic_hidden_dim: int = 256
    """Width of each Q MLP."""
    critic_depth: int = 3
    """Hidden layers of each Q MLP."""
    critic_init_std: float = 0.1
    """Weights initialised N(0, std^2), biases 0."""
    critic_activation: str = 'silu'
    """'silu' (the authors'; grad_a Q is smooth) or 'relu' (piecewise-constant grad_a Q)."""
    critic_split: str = 'trajectory'
    """'trajectory': ensemble member e trains on its own share of each round's trajectories
    (the authors'); 'none': every member on the same transitions."""
    polyak: float = 0.995
    """Target nets: theta' <- polyak theta' + (1 - polyak) theta after every critic step."""
    gamma: float = 0.99
    """Discount per CHUNK transition (not per env step)."""
    td_lambda: float = 0.0
    """TD(lambda) mixing: 0 for dense rewards, 0.5 for sparse."""
    bootstrap_actions: int = 2
    """Fresh policy actions a' (drawn once per round) averaged in the bootstrap value, each
    the min over target nets."""
    target_refresh_steps: int = 8
    """Critic steps between recomputing the TD targets with the moving target nets (1: every
    step, the authors'). With Polyak 0.995 the targets move by ~3% of the TD error in 8 steps
    (measured on Hopper, logged as critic/target_staleness), and recomputing them was the
    largest cost of an iteration on CPU."""
    reward: str = 'task'
    """What the critic learns to predict: 'task' (the env's reward, summed over the chunk) or
    'success' (1 on the chunk that reaches success, else 0: for tasks that report success,
    Q is then the discounted probability of succeeding, the quantity deployment cares about)."""
    sparse_reward: bool = False
    """Sparse task: balance success/failure in critic batches and clip targets."""
    target_clip_max: float = 1.0
    """With sparse_reward, TD targets are clipped to [0, target_clip_max] (max return)."""
    reward_scale: str = 'ema_abs'
    """'ema_abs': divide rewards by an EMA of mean |r| (dense tasks); 'none' (sparse)."""
    reward_scale_decay: float = 0.99
    """EMA decay of the reward scale, updated once per collected rollout (all-zero rollouts
    are skipped)."""

    # --- replay ---------------------------------------------------------------------------
    replay_rollouts: int = 20
    """Rollout segments kept per env (ring buffer, oldest dropped)."""
    new_data_fraction: float = 0.33
    """Minimum share of each round's trajectories drawn from the newest rollout."""
    round_trajectories: int = 0
    """Trajectories in each critic round's mix (0: num_envs, the authors'); a critic step
    uses the whole mix (full batch), split between the ensemble members."""

    # --- optimisation ---------------------------------------------------------------------
    critic_rounds: int = 16
    """Rounds per iteration; each draws a fresh mix and fresh bootstrap actions, then runs
    critic_steps / critic_rounds critic steps and actor_steps / critic_rounds actor steps on
    that same mix (the authors interleave critic and actor this way)."""
    critic_steps: int = 512
    """Critic gradient steps per iteration (over all rounds)."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critics (the authors' value)."""
    actor_steps: int = 32
    """RLDT actor steps per iteration (over all rounds; after the warm-up iterations)."""
    actor_batch_states: int = 0
    """States per actor step: 0 = every P-th trajectory of the round's mix, rotating (the
    authors' rule, ~mix / P states); > 0 = that many states drawn from the mix."""
    actor_lr: float = 2e-5
    """Adam learning rate of v_theta."""
    actor_lr_warmup_steps: int = 32
    """Linear learning-rate warm-up of the actor over its first steps."""
    max_grad_norm: float = 10.0
    """Gradient clipping for actor and critic (0 disables it)."""
    bootstrap_batch_size: int = 65536
    """States per forward pass when sampling bootstrap actions (bounds memory)."""

    # --- evaluation and selection ---------------------------------------------------------
    eval_every: int = 1
    """Iterations between evaluations (0: only before and after)."""
    eval_episodes: int = 16
    """Episodes per sampling mode in each in-run evaluation (both modes are evaluated)."""
    final_eval_episodes: int = 50
    """Episodes per mode in the final evaluation of the base and the selected policy, on
    seeds the in-run evaluations never used (the numbers the summary and model card report)."""
    select_best: bool = True
    """Keep the best evaluated policy (the base included) and export it; False: the last."""
    selection_floor: float = 0.9
    """A policy is eligible for selection only if EVERY sampling mode keeps at least this
    fraction of the base's same mode (measured as m >= base - (1 - floor) |base|): selection
    must not trade one mode's collapse for the other's gain. 0 disables the floor, so the
    best mode alone decides (for tasks where only the deployed mode matters)."""
    select_metric: str = 'auto'
    """What selection maximises: 'success' rate, mean 'return', or 'auto' (success when the
    task reports it, else return)."""
    deploy_mode: str = 'auto'
    """Sampling mode the exported model is meant for: 'deterministic' (x_0 = 0),
    'stochastic', or 'auto' (whichever the final evaluation rates higher). Written into the
    model card; the policy node's default follows it."""

    # --- bookkeeping ----------------------------------------------------------------------
    checkpoint_every: int = 1
    """Iterations between full-state checkpoints (the last iteration always writes one)."""

    def __post_init__(self):
        choices = {'transport': TRANSPORTS, 'reference': REFERENCES,
                   'reward_scale': REWARD_SCALES, 'vectorization': VECTORIZATIONS,
                   'reward': REWARDS,
                   'critic_activation': CRITIC_ACTIVATIONS, 'critic_split': CRITIC_SPLITS,
                   'deploy_mode': DEPLOY_MODES, 'select_metric': SELECT_METRICS,
                   'actor_augmentation': ACTOR_AUGMENTATIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f'finetune.{name} must be one of {allowed}, '
                                 f'got {getattr(self, name)!r}')
        positive = ('iterations', 'num_envs', 'rollout_steps', 'particles', 'critic_ensemble',
                    'critic_hidden_dim', 'critic_depth', 'bootstrap_actions', 'replay_rollouts',
                    'critic_rounds', 'bootstrap_batch_size', 'eval_episodes',
                    'final_eval_episodes', 'checkpoint_every', 'target_refresh_steps')
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f'finetune.{name} must be >= 1, got {getattr(self, name)}')
        non_negative = ('warmup_iterations', 'critic_steps', 'actor_steps',
                        'actor_lr_warmup_steps', 'eval_every', 'temperature', 'alpha_min',
                        'consistency_weight', 'constraint_weight', 'max_grad_norm',
                        'round_trajectories', 'actor_batch_states')
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f'finetune.{name} must be >= 0, got {getattr(self, name)}')
        # Exploration picks k in {N-2, N-1}: a chain needs at least two steps.
        if self.flow_steps < 2:
            raise ValueError(f'finetune.flow_steps must be >= 2, got {self.flow_steps}')
        # The bandwidth is a median over particles, and the repulsion needs neighbours.
        if self.transport == 'rbf' and self.particles < 2:
            raise ValueError(f'finetune.particles must be >= 2 for transport rbf, '
                             f'got {self.particles}')
        if self.alpha_max < self.alpha_min:
            raise ValueError(f'finetune.alpha_max ({self.alpha_max}) must be >= alpha_min '
                             f'({self.alpha_min})')
        for name in ('polyak', 'reward_scale_decay'):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f'finetune.{name} must be in [0, 1), got {getattr(self, name)}')
        for name in ('gamma', 'td_lambda', 'deterministic_envs'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'finetune.{name} must be in [0, 1], got {getattr(self, name)}')
        if not 0.0 <= self.selection_floor <= 1.0:
            raise ValueError(f'finetune.selection_floor must be in [0, 1], '
                             f'got {self.selection_floor}')
        if not 0.0 < self.new_data_fraction <= 1.0:
            raise ValueError(f'finetune.new_data_fraction must be in (0, 1], '
                             f'got {self.new_data_fraction}')
        if self.critic_init_std <= 0:
            raise ValueError(f'finetune.critic_init_std must be > 0, got {self.critic_init_std}')
        if self.target_clip_max <= 0:
            raise ValueError(f'finetune.target_clip_max must be > 0, got {self.target_clip_max}')
        for name in ('critic_lr', 'actor_lr'):
            if getattr(self, name) <= 0:
                raise ValueError(f'finetune.{name} must be > 0, got {getattr(self, name)}')
        for name in ('critic_steps', 'actor_steps'):
            value = getattr(self, name)
            if value % self.critic_rounds:
                raise ValueError(f'finetune.{name} ({value}) must be a multiple of '
                                 f'critic_rounds ({self.critic_rounds})')
        # Each member needs its own share of trajectories under the trajectory split.
        if self.critic_split == 'trajectory' and self.mix_size < self.critic_ensemble:
            raise ValueError(f'finetune: the round mix ({self.mix_size} trajectories) must '
                             f'hold at least one per ensemble member ({self.critic_ensemble})')

    @property
    def mix_size(self) -> int:
        """Trajectories per critic round."""
        return self.round_trajectories or self.num_envs
