"""FlowPolicy: normalizers + image encoders + velocity net + Euler sampler, and its checkpoint
format.

The network works in normalized spaces (observations standardized, actions mapped to [-1, 1]);
`sample` takes and returns robot units. Camera policies encode each image with their own
encoder (policy/encoders.py) and condition on [normalized state, image features]. Checkpoints
are plain dicts of tensors and builtins so they load with `torch.load(weights_only=True)`.
"""
from contextlib import contextmanager
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rldt_train.checkpoint_io import atomic_save
from rldt_train.policy import flow
from rldt_train.policy.encoders import ENCODERS
from rldt_train.policy.encoders import ImageEncoder
from rldt_train.policy.networks import VelocityMLP
from rldt_train.policy.normalizer import Normalizer

CHECKPOINT_FORMAT = 1


@dataclass
class PolicyConfig:
    """Shape and size of a flow-matching policy.

    Args:
        obs_dim: length of the state observation vector.
        action_dim: joints commanded per control step (A).
        horizon: action chunk length H (actions predicted per sample).
        hidden_dim: width of the velocity MLP. Usually changed.
        depth: hidden layers (plain) or residual blocks (residual).
        residual: residual pre-norm blocks instead of a plain MLP.
        time_embed_dim: size of the sinusoidal flow-time embedding (even).
        sampler_steps: Euler steps N used for sampling and export. Usually changed.
        action_reference_index: for position-controlled robots, the indices in the state vector
            of each commanded joint's current position. The network then models targets
            relative to where the joints are (a - q), which needs far less precision than
            absolute targets normalized over the whole joint range; the offset is added back
            inside `unnormalize_actions` (and inside the exported graph). None: absolute.
        cameras: camera names the policy sees; each is a uint8 (B, H, W, 3) RGB entry of the
            observation dict, encoded by its own image encoder. Empty: a state policy.
        image_size: [height, width] of the camera images (required with cameras).
        encoder: image encoder architecture, 'conv' or 'resnet' (see policy/encoders.py).
        image_features: features per camera, concatenated with the normalized state.
        image_channels: convolution width of the image encoder.
        image_shift: random-shift augmentation in pixels (train mode only; 0: none).
    """

    obs_dim: int
    action_dim: int
    horizon: int = 4
    hidden_dim: int = 256
    depth: int = 3
    residual: bool = False
    time_embed_dim: int = 32
    sampler_steps: int = 8
    action_reference_index: list[int] | None = None
    cameras: list[str] = field(default_factory=list)
    image_size: list[int] | None = None
    encoder: str = 'conv'
    image_features: int = 64
    image_channels: int = 32
    image_shift: int = 4

    def __post_init__(self):
        for name in ('obs_dim', 'action_dim', 'horizon', 'hidden_dim', 'depth', 'sampler_steps'):
            if getattr(self, name) < 1:
                raise ValueError(f'PolicyConfig.{name} must be >= 1, got {getattr(self, name)}')
        if self.time_embed_dim < 2 or self.time_embed_dim % 2:
            raise ValueError(f'PolicyConfig.time_embed_dim must be even and >= 2, '
                             f'got {self.time_embed_dim}')
        index = self.action_reference_index
        if index is not None and (len(index) != self.action_dim or
                                  not all(0 <= i < self.obs_dim for i in index)):
            raise ValueError(f'PolicyConfig.action_reference_index must hold action_dim '
                             f'({self.action_dim}) indices into the state (< {self.obs_dim}), '
                             f'got {index}')
        if self.encoder not in ENCODERS:
            raise ValueError(f'PolicyConfig.encoder must be one of {ENCODERS}, '
                             f'got {self.encoder!r}')
        if len(set(self.cameras)) != len(self.cameras) or 'state' in self.cameras:
            raise ValueError(f'PolicyConfig.cameras must be distinct names other than '
                             f"'state', got {self.cameras}")
        if self.cameras and (self.image_size is None or len(self.image_size) != 2 or
                             min(self.image_size) < 32):
            raise ValueError(f'PolicyConfig.image_size must be [height, width] >= 32 (three '
                             f'stride-2 convolutions) with cameras, got {self.image_size}')
        for name in ('image_features', 'image_channels'):
            if getattr(self, name) < 2:
                raise ValueError(f'PolicyConfig.{name} must be >= 2, got {getattr(self, name)}')
        if self.image_shift < 0:
            raise ValueError(f'PolicyConfig.image_shift must be >= 0, got {self.image_shift}')

    @property
    def cond_dim(self) -> int:
        """Length of the conditioning features: normalized state + image features."""
        return self.obs_dim + len(self.cameras) * self.image_features


@contextmanager
def eval_mode(module: nn.Module):
    """Eval mode inside the block (no image augmentation), the previous mode after it."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def state_of(obs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
    """The raw state (B, D) of an observation given as a tensor or a dict with 'state'."""
    return obs['state'] if isinstance(obs, dict) else obs


class FlowPolicy(nn.Module):
    """Flow-matching action-chunk policy (tau = 0 noise -> tau = 1 action)."""

    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.config = config
        self.obs_normalizer = Normalizer(config.obs_dim)
        self.action_normalizer = Normalizer(config.action_dim)
        index = config.action_reference_index
        self.register_buffer('reference_index', torch.tensor(index if index else [],
                                                             dtype=torch.long),
                             persistent=False)
        self.image_encoders = nn.ModuleDict({
            camera: ImageEncoder(tuple(config.image_size), config.image_features,
                                 config.image_channels, config.encoder, config.image_shift)
            for camera in config.cameras})
        self.velocity_net = VelocityMLP(config.cond_dim, config.horizon, config.action_dim,
                                        config.hidden_dim, config.depth, config.residual,
                                        config.time_embed_dim)

    def fit_normalizers(self, obs: torch.Tensor, actions: torch.Tensor) -> None:
        """Observation mean/std and (relative) action min/max from the training data."""
        self.obs_normalizer.load_state_dict(Normalizer.from_data(obs, 'meanstd').state_dict())
        self.action_normalizer.load_state_dict(
            Normalizer.from_data(actions - self.action_reference(obs), 'minmax').state_dict())

    def action_reference(self, obs: torch.Tensor | None) -> torch.Tensor | float:
        """(B, 1, A) current joint positions for relative actions; 0 for absolute ones."""
        if self.config.action_reference_index is None:
            return 0.0
        if obs is None:
            raise ValueError('this policy predicts actions relative to the joint positions: '
                             'pass the raw observation')
        return obs[:, None, :].index_select(-1, self.reference_index)

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return self.obs_normalizer.normalize(obs)

    def encode(self, obs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """Conditioning features (B, C) of v_theta for raw observations.

        obs: the raw state (B, D) or a dict with 'state' and, for a camera policy, each
        camera's uint8 (B, H, W, 3) image under its name (other keys are ignored). Everything
        that samples or trains the flow conditions through here, once per state: callers that
        need several chains per state repeat the features, not the images. Images are
        augmented (random shift) in train mode only.
        """
        state_n = self.normalize_obs(state_of(obs))
        if not self.config.cameras:
            return state_n
        if not isinstance(obs, dict):
            raise ValueError(f'this policy sees cameras {self.config.cameras}: pass a dict '
                             "observation with 'state' and the images")
        missing = [c for c in self.config.cameras if c not in obs]
        if missing:
            raise ValueError(f'observation lacks camera image(s) {missing}')
        return torch.cat([state_n, *[self.image_encoders[c](obs[c])
                                     for c in self.config.cameras]], dim=-1)

    def shift_images(self, obs: torch.Tensor | dict[str, torch.Tensor]
                     ) -> torch.Tensor | dict[str, torch.Tensor]:
        """obs with each camera image randomly shifted (its encoder's `image_shift`), in either
        module mode: an update that compares several networks on one state (the policy and
        its reference in RLDT's L_fd) shows them all the SAME augmented view this way."""
        if not self.config.cameras:
            return obs
        return {**obs, **{c: self.image_encoders[c].augment.shift(obs[c])
                          for c in self.config.cameras if c in obs}}

    def normalize_actions(self, actions: torch.Tensor, obs: torch.Tensor | None = None
                          ) -> torch.Tensor:
        """Robot-unit chunks (B, H, A) -> the flow's space; obs (B, D) raw, for relative."""
        return self.action_normalizer.normalize(actions - self.action_reference(obs))

    def unnormalize_actions(self, actions_n: torch.Tensor, obs: torch.Tensor | None = None
                            ) -> torch.Tensor:
        """The flow's space -> robot-unit chunks; obs (B, D) raw, for relative actions."""
        return self.action_normalizer.unnormalize(actions_n) + self.action_reference(obs)

    def velocity(self, x_n: torch.Tensor, tau: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """v_theta(x, tau, s) in normalized spaces: x (B, H, A), tau (B,), cond (B, C) from
        `encode`."""
        return self.velocity_net(x_n, tau, cond)

    def chain(self, cond: torch.Tensor, x0_n: torch.Tensor, steps: int | None = None
              ) -> torch.Tensor:
        """Whole Euler chain (N + 1, B, H, A) in normalized action space; cond from `encode`."""
        return flow.euler_chain(self.velocity, x0_n, cond, steps or self.config.sampler_steps)

    def initial_noise(self, batch: int, generator: torch.Generator | None = None,
                      device: torch.device | None = None) -> torch.Tensor:
        shape = (batch, self.config.horizon, self.config.action_dim)
        return torch.randn(shape, generator=generator, device=device)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor | dict[str, torch.Tensor],
               noise: torch.Tensor | None = None, steps: int | None = None,
               deterministic: bool = False) -> torch.Tensor:
        """Action chunks (B, H, A) in robot units for raw observations (state (B, D) or dict).

        deterministic: x0 = 0 (the deterministic sampling mode), else x0 = noise or fresh
        N(0, I). Images are never augmented here, in either module mode: an action is chosen
        for the image the camera gave.
        """
        state = state_of(obs)
        batch = state.shape[0]
        if deterministic:
            x0 = torch.zeros(batch, self.config.horizon, self.config.action_dim,
                             device=state.device)
        elif noise is None:
            x0 = self.initial_noise(batch, device=state.device)
        else:
            x0 = noise
        with eval_mode(self):
            cond = self.encode(obs)
        final = self.chain(cond, x0, steps)[-1]
        return self.unnormalize_actions(final, state)

    def bc_loss(self, obs: torch.Tensor | dict[str, torch.Tensor], actions: torch.Tensor
                ) -> torch.Tensor:
        """Flow-matching BC: tau ~ U[0,1], eps ~ N(0,I), ||v(x_tau, tau, s) - (a - eps)||^2."""
        a = self.normalize_actions(actions, state_of(obs))
        eps = torch.randn_like(a)
        tau = torch.rand(a.shape[0], device=a.device)
        x_tau = flow.interpolate(eps, a, tau)
        v = self.velocity(x_tau, tau, self.encode(obs))
        return (v - flow.bc_target(eps, a)).pow(2).mean()


def save_policy(path: str | Path, policy: FlowPolicy, ema_state: dict | None = None,
                extra: dict[str, Any] | None = None) -> None:
    """Write a policy checkpoint atomically (a killed write never leaves a torn file)."""
    atomic_save({'format': CHECKPOINT_FORMAT, 'config': asdict(policy.config),
                 'policy': policy.state_dict(), 'ema': ema_state, 'extra': extra or {}}, path)


def load_policy(path: str | Path, use_ema: bool = True,
                map_location: str | torch.device = 'cpu') -> FlowPolicy:
    """FlowPolicy from a checkpoint; the EMA weights when present and use_ema is True."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if payload.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f'{path}: unknown policy checkpoint format {payload.get("format")!r}')
    policy = FlowPolicy(PolicyConfig(**payload['config']))
    state = payload['ema'] if use_ema and payload.get('ema') else payload['policy']
    policy.load_state_dict(state)
    return policy
