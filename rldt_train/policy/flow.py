"""Flow-matching maths as stateless functions.

Convention (docs/architecture.md section 4): flow time tau in [0, 1]; tau = 0 is Gaussian noise and
tau = 1 is the action. The interpolant is x_tau = (1 - tau) eps + tau a, whose velocity is
a - eps. Sampling integrates dx/dtau = v(x, tau, s) from tau = 0 to 1 with N Euler steps.
Shapes: actions and noise are chunks (B, H, A); tau is (B,); observations are (B, D).
"""
from typing import Callable

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _expand_tau(tau: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, ...) so tau broadcasts over a chunk."""
    return tau.reshape(tau.shape + (1,) * (like.dim() - tau.dim()))


def interpolate(eps: torch.Tensor, a: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """x_tau = (1 - tau) eps + tau a."""
    t = _expand_tau(tau, a)
    return (1.0 - t) * eps + t * a


def bc_target(eps: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Velocity of the straight interpolant: d x_tau / d tau = a - eps."""
    return a - eps


def euler_chain(velocity_fn: VelocityFn, x0: torch.Tensor, obs: torch.Tensor,
                steps: int) -> torch.Tensor:
    """Integrate x_{k+1} = x_k + v(x_k, k/N, s) / N and keep the whole chain.

    Returns (N + 1, B, H, A): index 0 is x0 (noise), index N is the action.
    """
    if steps < 1:
        raise ValueError(f'steps must be >= 1, got {steps}')
    xs = [x0]
    x = x0
    batch = x0.shape[0]
    for k in range(steps):
        tau = torch.full((batch,), k / steps, dtype=x0.dtype, device=x0.device)
        x = x + velocity_fn(x, tau, obs) / steps
        xs.append(x)
    return torch.stack(xs)


def expected_target(x_k: torch.Tensor, v_k: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """a_dag = x_k + (1 - tau) v(x_k, tau, s): one-step estimate of the chain's final action.

    At k = N - 1 (tau = 1 - 1/N) this is exactly the chain's last Euler step.
    """
    return x_k + (1.0 - _expand_tau(tau, x_k)) * v_k
