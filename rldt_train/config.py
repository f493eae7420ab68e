"""Training configuration: one dataclass per concern, loaded from YAML plus `key=value` overrides.

`config/train/<task>.yaml` only overrides fields; an unknown key is an error (no hidden
defaults: the dataclasses below ARE the defaults). The resolved config is saved with every run.
"""
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any

import yaml

from rldt_ros.randomization import Randomization
from rldt_ros.safety import check_max_delta
from rldt_train.rl.config import FinetuneConfig


class ConfigError(ValueError):
    """A config file or override that names an unknown key or has a wrong type."""


@dataclass
class PolicySection:
    """Flow policy architecture (see rldt_train.policy.flow_policy.PolicyConfig)."""

    horizon: int = 4
    """Action chunk length H."""
    hidden_dim: int = 256
    """Velocity MLP width."""
    depth: int = 3
    """Hidden layers / residual blocks."""
    residual: bool = False
    """Residual pre-norm blocks instead of a plain MLP."""
    time_embed_dim: int = 32
    """Sinusoidal flow-time embedding size."""
    sampler_steps: int = 8
    """Euler steps N for sampling, fine-tuning and export."""
    relative_actions: bool = False
    """Model joint-position targets relative to the current joint positions (position-
    controlled tasks only; the exported graph adds the positions back)."""
    cameras: list = field(default_factory=list)
    """Camera tasks: the cameras the policy sees (a subset of the task's); empty: all of
    them. Images come at the task's image size."""
    encoder: str = 'conv'
    """Image encoder per camera: 'conv' (4 convolutions, DrQ-style) or 'resnet' (the same
    stem + 2 residual blocks)."""
    image_features: int = 64
    """Features per camera, concatenated with the normalized joint state."""
    image_channels: int = 32
    """Convolution width of the image encoder."""
    image_shift: int = 4
    """Random-shift augmentation (pixels, training only; 0: none)."""


@dataclass
class CollectSection:
    """Demonstration collection (scripted expert) or medium-data generation (Gym tasks)."""

    episodes: int = 100
    """Episodes to record (Gym tasks: only when transitions is 0)."""
    noise_std: float = -1.0
    """Action noise: built-in task, the expert's joint-target noise (< 0: the task's demo
    default); Gym tasks, extra Gaussian noise on the medium agent's own samples (< 0: none)."""
    format: str = 'robomimic'
    """Dataset layout: 'robomimic' or 'd4rl'."""
    transitions: int = 0
    """Gym tasks: record whole episodes until at least this many env steps (0: `episodes`)."""
    expert_timesteps: int = 1_500_000
    """Gym tasks: PPO training budget (env steps) of the medium behaviour agent."""
    expert_eval_every: int = 50_000
    """Gym tasks: env steps between the medium agent's evaluations (10 episodes each)."""
    medium_return_low: float = 0.0
    """Gym tasks: PPO stops at the first evaluation with a mean return in
    [medium_return_low, medium_return_high]; 0 and 0: train the whole budget."""
    medium_return_high: float = 0.0
    """Upper end of the medium return band (see medium_return_low)."""

    def __post_init__(self):
        if self.format not in ('robomimic', 'd4rl'):
            raise ValueError(f"collect.format must be 'robomimic' or 'd4rl', got {self.format!r}")
        for name in ('episodes', 'expert_eval_every'):
            if getattr(self, name) < 1:
                raise ValueError(f'collect.{name} must be >= 1, got {getattr(self, name)}')
        for name in ('transitions', 'expert_timesteps'):
            if getattr(self, name) < 0:
                raise ValueError(f'collect.{name} must be >= 0, got {getattr(self, name)}')
        if self.medium_return_high < self.medium_return_low:
            raise ValueError(f'collect.medium_return_high ({self.medium_return_high}) must be '
                             f'>= medium_return_low ({self.medium_return_low})')


@dataclass
class PretrainSection:
    """Behaviour cloning."""

    steps: int = 5000
    """Gradient steps."""
    batch_size: int = 256
    """Chunks per batch."""
    lr: float = 3e-4
    """Adam learning rate (cosine decay to 10%)."""
    weight_decay: float = 1e-6
    """AdamW weight decay."""
    ema_decay: float = 0.995
    """EMA of the weights; fine-tuning and export start from the EMA."""
    checkpoint_every: int = 1000
    """Steps between checkpoints (a killed run resumes from the last)."""
    log_every: int = 100
    """Steps between TensorBoard scalars."""
    eval_episodes: int = 20
    """Episodes for the evaluation at the end (0: none)."""

    def __post_init__(self):
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f'pretrain.ema_decay must be in (0, 1), got {self.ema_decay}')
        for name in ('steps', 'batch_size', 'checkpoint_every', 'log_every'):
            if getattr(self, name) < 1:
                raise ValueError(f'pretrain.{name} must be >= 1, got {getattr(self, name)}')


@dataclass
class EnvSection:
    """What the built-in task's env adds to the bare simulator so that what is optimised is
    what runs on the robot: the policy node's command filter, its latency, and domain
    randomization. Applied to demonstration collection, fine-tuning and every evaluation of
    the run, and written into the exported model card. The defaults add nothing."""

    max_delta_per_tick: float = 0.0
    """The policy node's per-tick command cap (rad or m; config/policy.yaml holds the robot's
    value): each command moves at most this far from the previous one, and from the MEASURED
    joint positions at episode start, then is clamped to the joint limits
    (rldt_ros.safety.CommandFilter). 0: no filter."""
    action_delay_ticks: list = field(default_factory=lambda: [0, 0])
    """[min, max] control ticks by which commands lag their observation, drawn per chunk:
    meanwhile the previous chunk's remaining actions run, or the last command is held."""
    observation_delay_ticks: list = field(default_factory=lambda: [0, 0])
    """[min, max] control ticks by which the observation a chunk is sampled from is stale,
    drawn per chunk (< policy.horizon)."""
    randomization: Randomization = field(default_factory=Randomization)
    """Per-episode domain randomization (rldt_ros.randomization.Randomization: masses,
    friction, damping, servo gains, sensor noise, control-period jitter, cameras, light,
    colours)."""

    def __post_init__(self):
        if self.max_delta_per_tick != 0.0:
            try:
                check_max_delta(self.max_delta_per_tick)
            except ValueError as exc:
                raise ValueError(f'env.{exc} (or 0: no filter)') from None
        for name in ('action_delay_ticks', 'observation_delay_ticks'):
            value = getattr(self, name)
            if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                          for v in value) or not 0 <= value[0] <= value[1]:
                raise ValueError(f'env.{name} must be [min, max] whole ticks with 0 <= min <= '
                                 f'max, got {value!r}')

    def describe(self) -> str:
        """One line for logs: what the env adds to the bare simulator."""
        if self.is_nominal:
            return 'none (the bare simulator)'
        nominal = Randomization().to_dict()
        changed = {k: v for k, v in self.randomization.to_dict().items() if v != nominal[k]}
        parts = [f'command filter {self.max_delta_per_tick:g}/tick' if self.max_delta_per_tick
                 else 'no command filter',
                 f'action delay {self.action_delay_ticks} ticks',
                 f'observation delay {self.observation_delay_ticks} ticks',
                 f'randomization {changed}' if changed else 'no randomization']
        return '; '.join(parts)

    @property
    def is_nominal(self) -> bool:
        """No filter, no delay, no randomization: the bare simulator."""
        return (self.max_delta_per_tick == 0.0 and list(self.action_delay_ticks) == [0, 0]
                and list(self.observation_delay_ticks) == [0, 0]
                and self.randomization.is_nominal)


@dataclass
class TrainConfig:
    """Everything one task's pipeline needs."""

    task: str = 'cube_push'
    """Environment id (rldt_train.envs.registry.TASK_IDS)."""
    seed: int = 0
    """Seed for data, networks and environments."""
    device: str = 'auto'
    """'auto' (CUDA when present), 'cpu' or 'cuda'."""
    torch_threads: int = 1
    """torch CPU threads. Small policies run fastest single-threaded, and more OpenMP threads
    than free cores stall badly (measured here: 2 threads next to one busy process ran BC at
    2.3 steps/s, 1 thread at 137 steps/s). 0: torch's default."""
    policy: PolicySection = field(default_factory=PolicySection)
    collect: CollectSection = field(default_factory=CollectSection)
    pretrain: PretrainSection = field(default_factory=PretrainSection)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    env: EnvSection = field(default_factory=EnvSection)


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def _to_float(value: int | str, where: str) -> float:
    """YAML 1.1 reads `1e-3` as a string; accept it (and ints) where a float is expected."""
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f'config key {where} must be float, got {value!r}') from None


def _merge(obj: Any, updates: dict, where: str) -> Any:
    """Recursively replace dataclass fields from a dict; unknown keys are errors."""
    known = {f.name: f for f in fields(obj)}
    values = {}
    for key, value in updates.items():
        if key not in known:
            raise ConfigError(f'unknown config key "{where}{key}"; known: {", ".join(known)}')
        current = getattr(obj, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f'config key {where}{key} must be a mapping, got {value!r}')
            value = _merge(current, value, f'{where}{key}.')
        elif isinstance(current, float) and isinstance(value, (int, str)) \
                and not isinstance(value, bool):
            value = _to_float(value, f'{where}{key}')
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)  # YAML has lists only; [low, high] ranges are tuples here
        elif isinstance(value, bool) != isinstance(current, bool) and current is not None:
            raise ConfigError(f'config key {where}{key} must be {type(current).__name__}, '
                              f'got {value!r}')
        elif current is not None and not isinstance(value, type(current)):
            raise ConfigError(f'config key {where}{key} must be {type(current).__name__}, '
                            f'got {value!r}')
        values[key] = value
    merged = {f.name: getattr(obj, f.name) for f in fields(obj)}
    merged.update(values)
    return type(obj)(**merged)


def overrides_to_dict(overrides: list[str]) -> dict:
    """['pretrain.steps=100', 'seed=3'] -> nested dict (values parsed as YAML scalars)."""
    out: dict = {}
    for item in overrides:
        if '=' not in item:
            raise ConfigError(f'override must look like key=value, got {item!r}')
        key, text = item.split('=', 1)
        node = out
        parts = key.strip().split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _parse_value(text)
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None
                ) -> TrainConfig:
    """Defaults <- YAML file <- command-line overrides."""
    config = TrainConfig()
    if path is not None:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        config = _merge(config, data, '')
    if overrides:
        config = _merge(config, overrides_to_dict(overrides), '')
    return config


def config_to_dict(config: TrainConfig) -> dict:
    return asdict(config)


def save_config(config: TrainConfig, path: str | Path) -> None:
    with open(path, 'w') as f:
        yaml.safe_dump(config_to_dict(config), f, sort_keys=False)
