"""Critic ensemble Q(s, a) over the flattened executed chunk, with Polyak targets.

All members run as one batched matmul per layer (weights stacked (E, in, out)), so an ensemble
of 2 costs one kernel launch per layer, not two. Inputs: the critic's standardized observation
(B, D) and the chunk in the policy's flow space (B, H, A): normalized, and relative to the
joints for position-controlled tasks, where a joint's whole range would otherwise squash the
small moves that matter into a sliver of the input. Each member can also take its own batch
((E, B, D) inputs): the ensemble trains member e on its own share of the trajectories.

The activation is smooth (SiLU) by default: grad_a Q is the whole RL signal of the transport
field, and a ReLU critic's gradient is piecewise constant in a (it jumps between linear
regions and is blind inside one).

Q scores the EXECUTED chunk: given per-sample bounds (the action box mapped into the flow space
for that state, see `flow_space_bounds`), the chunk is clamped to them inside forward. The env
clips what it runs and the critic only ever sees clipped chunks in its data; without the clamp,
bootstrap actions and actor particles outside the box read extrapolated Q, which the actor
exploits (measured on Hopper: 42% of action components out of bounds, Q diverging). The clamp's
zero gradient outside the box stops the pull there.
"""
import copy
import itertools
from collections.abc import Callable

import torch
from torch import nn

ACTIVATIONS = {'silu': nn.functional.silu, 'relu': torch.relu}


class EnsembleLinear(nn.Module):
    """E independent linear layers applied to (E, B, in) -> (E, B, out)."""

    def __init__(self, ensemble: int, in_dim: int, out_dim: int, init_std: float):
        super().__init__()
        # Weights N(0, init_std^2), zero biases (the authors' initialisation, std 0.1).
        self.weight = nn.Parameter(torch.randn(ensemble, in_dim, out_dim) * init_std)
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class QEnsemble(nn.Module):
    """E MLPs Q_e(s, a); forward returns (E, B)."""

    def __init__(self, obs_dim: int, chunk_dim: int, ensemble: int = 2, hidden_dim: int = 256,
                 depth: int = 3, init_std: float = 0.1, activation: str = 'silu'):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f'critic activation must be one of {sorted(ACTIVATIONS)}, '
                             f'got {activation!r}')
        self.ensemble = ensemble
        self.activation = ACTIVATIONS[activation]
        dims = [obs_dim + chunk_dim] + [hidden_dim] * depth
        self.hidden = nn.ModuleList(EnsembleLinear(ensemble, i, o, init_std)
                                    for i, o in itertools.pairwise(dims))
        self.out = EnsembleLinear(ensemble, hidden_dim, 1, init_std)

    def forward(self, obs_n: torch.Tensor, chunk_n: torch.Tensor,
                bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """obs_n (B, D) and chunk_n (B, H, A) shared by every member, or (E, B, D) and
        (E, B, H, A) with one batch per member; bounds (low, high) shaped like chunk_n.

        Returns Q (E, B).
        """
        if bounds is not None:
            chunk_n = torch.clamp(chunk_n, bounds[0], bounds[1])
        per_member = obs_n.dim() == 3
        lead = obs_n.shape[:-1]
        x = torch.cat([obs_n, chunk_n.reshape(*lead, -1)], dim=-1)
        if not per_member:
            x = x.unsqueeze(0).expand(self.ensemble, -1, -1)
        for layer in self.hidden:
            x = self.activation(layer(x))
        return self.out(x).squeeze(-1)


def flow_space_bounds(policy, action_low: torch.Tensor, action_high: torch.Tensor,
                      state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The action box (H, A) in robot units -> per-sample bounds (B, H, A) in the flow space.

    The policy's action map is affine with positive scale (plus the joint positions for
    relative actions), so the box maps to a box; state is the raw state (B, D).
    """
    batch = state.shape[0]
    low = policy.normalize_actions(action_low.expand(batch, *action_low.shape), state)
    high = policy.normalize_actions(action_high.expand(batch, *action_high.shape), state)
    return low, high


def make_target(critic: QEnsemble) -> QEnsemble:
    """Frozen copy for bootstrapping; updated only by `polyak_update`."""
    target = copy.deepcopy(critic)
    target.requires_grad_(False)
    return target


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, polyak: float) -> None:
    """theta' <- polyak theta' + (1 - polyak) theta (in place, all parameters at once)."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    torch._foreach_mul_(t_params, polyak)
    torch._foreach_add_(t_params, o_params, alpha=1.0 - polyak)


def action_gradient(q_fn: Callable[[torch.Tensor], torch.Tensor], a: torch.Tensor
                    ) -> torch.Tensor:
    """grad_a of the ensemble-mean Q at a (B, H, A), per sample; detached result (B, H, A).

    q_fn maps a (in whatever space the caller differentiates in, e.g. the flow's normalized
    space) to Q (E, B). Summing Q over the batch before differentiating gives each sample its
    own gradient, because sample b's Q depends only on a[b].
    """
    return value_and_action_gradient(q_fn, a)[1]


def value_and_action_gradient(q_fn: Callable[[torch.Tensor], torch.Tensor], a: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q (E, B), grad_a of the ensemble-mean Q (B, H, A)) at a, both detached: the value
    comes from the same forward pass, so a caller that logs Q needs no second one."""
    with torch.enable_grad():
        a = a.detach().requires_grad_(True)
        q = q_fn(a)
        (grad,) = torch.autograd.grad(q.mean(0).sum(), a)
    return q.detach(), grad.detach()
