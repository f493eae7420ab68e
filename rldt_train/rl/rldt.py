"""The RLDT update, top-down in docs/architecture.md section 4 order.

Notation: flow time tau in [0, 1]; tau = 0 is Gaussian noise, tau = 1 is the action. A chain
x_0 .. x_N comes from N Euler steps of v_theta; k indexes its states, tau = k / N, so
N (1 - tau) = N - k. The chain, a_dag, phi, the losses and the critic's chunk input all live
in the policy's flow space (normalized, relative for position-controlled tasks; chunks
(B, H, A)); the critic clamps to the action box mapped into that space per state. Kernels,
bandwidths and alpha_eff are computed per state with batched tensor ops; particles of
different states never meet.

Order: Euler chain -> a_dag (expected target) -> bandwidth h -> phi (rbf or delta) ->
L_rl, L_cons, L_fd -> total. Only v_theta at the sampled points carries gradient.
"""
import math

import torch

from rldt_train.policy import flow
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import state_of
from rldt_train.rl.config import FinetuneConfig
from rldt_train.rl.critic import QEnsemble
from rldt_train.rl.critic import action_gradient
from rldt_train.rl.critic import flow_space_bounds
from rldt_train.rl.critic import value_and_action_gradient

# A bandwidth of exactly 0 (all particles on the query) would give 0/0 in the kernel; with this
# floor the kernel is 1 and the repulsion (x - a_j) / h is 0, which is the right limit.
MIN_BANDWIDTH = 1e-12


def explore(chain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exploration action a = a_N + ||a_N - a_dag_k|| N(0, I), k ~ U{N-2, N-1} per sample.

    chain: (N + 1, B, H, A) with N >= 2. v_theta(x_k) is read off the chain itself,
    v_k = N (x_{k+1} - x_k), so no extra network call is needed. Returns (a (B, H, A),
    noise scale (B,)).
    """
    steps, batch = chain.shape[0] - 1, chain.shape[1]
    rows = torch.arange(batch, device=chain.device)
    k = steps - 2 + torch.randint(0, 2, (batch,), device=chain.device)
    x_k = chain[k, rows]
    v_k = steps * (chain[k + 1, rows] - x_k)
    a_dag = flow.expected_target(x_k, v_k, k.to(chain.dtype) / steps)
    a_n = chain[-1]
    scale = (a_n - a_dag).flatten(1).norm(dim=-1)
    # At k = N-1, a_dag == a_N analytically; mask the float round-off to get exactly zero noise.
    scale = torch.where(k == steps - 1, torch.zeros_like(scale), scale)
    return a_n + scale[:, None, None] * torch.randn_like(a_n), scale


def median_bandwidth(d2: torch.Tensor) -> torch.Tensor:
    """h = median_j ||x - a_j||^2 / (2 log(P + 1)) over the last dim of d2 (..., P) -> (...).

    d2 holds SQUARED distances. For even P the median is the mean of the two middle values
    (numpy's convention, as in the original SVGD code).
    """
    p = d2.shape[-1]
    d2_sorted = d2.sort(dim=-1).values
    median = 0.5 * (d2_sorted[..., (p - 1) // 2] + d2_sorted[..., p // 2])
    return median / (2.0 * math.log(p + 1))


def rbf_field(x: torch.Tensor, a: torch.Tensor, grad_q: torch.Tensor, temperature: float,
              alpha_min: float, alpha_max: float) -> dict[str, torch.Tensor]:
    """SVGD transport field at queries x from particles a of the SAME state.

    phi(x) = (1/P) sum_j [ k(x, a_j) grad_a Q(s, a_j) + alpha_eff k(x, a_j) (x - a_j) / h ],
    k(x, a) = exp(-||x - a||^2 / (2 h)), h per query (median rule), alpha_eff =
    clamp(temperature * mean_j ||grad_a Q(s, a_j)||) per state.

    x: (B, Q, H, A) queries; a, grad_q: (B, P, H, A). Returns phi, attraction, repulsion
    (B, Q, H, A), h (B, Q), alpha_eff (B,).
    """
    batch, queries, p = x.shape[0], x.shape[1], a.shape[1]
    x_f, a_f, g_f = x.flatten(2), a.flatten(2), grad_q.flatten(2)
    diff = x_f[:, :, None, :] - a_f[:, None, :, :]                        # (B, Q, P, D)
    d2 = diff.pow(2).sum(-1)                                               # (B, Q, P)
    h = median_bandwidth(d2).clamp_min(MIN_BANDWIDTH)                      # (B, Q)
    kernel = torch.exp(-d2 / (2.0 * h[..., None]))                         # (B, Q, P)
    alpha_eff = (temperature * g_f.norm(dim=-1).mean(-1)).clamp(alpha_min, alpha_max)  # (B,)
    attraction = torch.einsum('bqp,bpd->bqd', kernel, g_f) / p
    repulsion = (alpha_eff[:, None, None] * torch.einsum('bqp,bqpd->bqd', kernel, diff)
                 / (h[..., None] * p))
    shape = x.shape
    return {'phi': (attraction + repulsion).reshape(shape),
            'attraction': attraction.reshape(shape), 'repulsion': repulsion.reshape(shape),
            'h': h.reshape(batch, queries), 'alpha_eff': alpha_eff}


def rldt_losses(policy: FlowPolicy, reference: FlowPolicy, critic: QEnsemble,
                obs: torch.Tensor | dict[str, torch.Tensor], critic_obs: torch.Tensor,
                config: FinetuneConfig,
                action_box: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> dict[str, torch.Tensor]:
    """RLDT actor losses for a batch of B raw observations.

    obs: the raw state (B, D) or a dict of observation fields (the policy encodes it ONCE per
    state; features, not images, are repeated per particle). critic_obs: the critic's
    standardized input for the same states (B, Dc). action_box: (low, high) (H, A) in robot
    units; Q then scores the chunk clipped to it.

    Each state gets P stochastic chains; their final actions are the particles, and each chain
    also supplies one query point x_k with its own k ~ U{0..N-1}. With
    config.deterministic_query, each state also gets the chain from x_0 = 0 (the deterministic
    sampling mode) as one more query: the same field phi at its a_dag, consistency to its own
    final action, and the Fisher constraint at its own chain points. Without it nothing ever
    trains the path the deterministic sampler takes (x_0 = 0 is far from the Gaussian's typical
    set in H*A dimensions), and that mode drifts.

    Returns 'loss' (to minimise), the terms 'rl', 'cons', 'fd', and detached diagnostics;
    'v' is v_theta(x_k) (M, H, A) with 'k' (M,), M = B*P (+ B), kept so the caller can read
    d loss / d v per denoising step; 'x_k', 'a_n', 'a_dag', 'phi' (M, H, A, detached) are the
    points the losses were built from (stochastic rows first, then the deterministic ones).
    """
    steps, p = config.flow_steps, config.particles
    state = state_of(obs)
    batch = state.shape[0]
    shape = (policy.config.horizon, policy.config.action_dim)
    cond = policy.encode(obs)                                              # (B, C)
    with torch.no_grad():
        cond_ref = reference.encode(obs)
    det = config.deterministic_query

    def per_query(x: torch.Tensor) -> torch.Tensor:
        """(B, ...) -> one row per query: B*P stochastic rows, then B deterministic rows."""
        rep = x.repeat_interleave(p, dim=0)
        return torch.cat([rep, x]) if det else rep

    state_q, critic_q = per_query(state), per_query(critic_obs)
    bounds = None if action_box is None else flow_space_bounds(policy, *action_box, state_q)

    def q_fn(a: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
        b = None if bounds is None else (bounds[0][rows], bounds[1][rows])
        return critic(critic_q[rows], a, b)

    # Euler chains, no gradient: the chain is data, not a path for backprop.
    x0 = torch.randn(batch * p, *shape, device=state.device)
    if det:
        x0 = torch.cat([x0, torch.zeros(batch, *shape, device=state.device)])
    with torch.no_grad():
        chain = policy.chain(per_query(cond.detach()), x0, steps)          # (N+1, M, H, A)
    a_n = chain[-1]
    rows = torch.arange(a_n.shape[0], device=state.device)

    # Query points: k ~ U{0..N-1} per chain; v_theta here is the only thing with gradient.
    k = torch.randint(0, steps, (a_n.shape[0],), device=state.device)
    tau = k.to(state.dtype) / steps
    x_k = chain[k, rows]
    v = policy.velocity(x_k, tau, per_query(cond))
    # Expected target a_dag = x_k + (1 - tau) v_theta(x_k, tau, s), no gradient.
    a_dag = flow.expected_target(x_k, v.detach(), tau)

    # Transport field phi(a_dag), detached (action_gradient returns detached gradients).
    stats: dict[str, torch.Tensor] = {}
    particles = slice(0, batch * p)
    if config.transport == 'rbf':
        q_particles, grad_q = value_and_action_gradient(lambda a: q_fn(a, particles),
                                                        a_n[particles])
        stats['q_particles'] = q_particles.mean()
        queries = a_dag[particles].reshape(batch, p, *shape)
        if det:
            queries = torch.cat([queries, a_dag[batch * p:].reshape(batch, 1, *shape)], 1)
        field = rbf_field(queries, a_n[particles].reshape(batch, p, *shape),
                          grad_q.reshape(batch, p, *shape), config.temperature,
                          config.alpha_min, config.alpha_max)

        def flat(x: torch.Tensor) -> torch.Tensor:
            """(B, Q, H, A) in query order -> rows (stochastic, then deterministic)."""
            if not det:
                return x.reshape(-1, *shape)
            return torch.cat([x[:, :p].reshape(-1, *shape), x[:, p]])
        phi = flat(field['phi'])
        stats['attraction_norm'] = field['attraction'].flatten(2).norm(dim=-1).mean()
        stats['repulsion_norm'] = field['repulsion'].flatten(2).norm(dim=-1).mean()
        stats['bandwidth'] = field['h'].mean()
        stats['alpha_eff'] = field['alpha_eff'].mean()
        stats['grad_q_norm'] = grad_q.flatten(1).norm(dim=-1).mean()
    else:
        # delta ablation: phi(x) = grad_a Q(s, x) at the query itself; no kernel, no repulsion.
        phi = action_gradient(q_fn, a_dag)
        stats['grad_q_norm'] = phi.flatten(1).norm(dim=-1).mean()
        with torch.no_grad():
            stats['q_particles'] = q_fn(a_n[particles], particles).mean()
    stats['phi_norm'] = phi.flatten(1).norm(dim=-1).mean()

    # Losses. N (1 - tau) = N - k, computed in integers so k = N-1 gives exactly 1.
    n_minus_k = (steps - k).to(state.dtype)
    loss_rl = -((v * phi).flatten(1).sum(-1) / n_minus_k).mean()
    one_step = x_k + (1.0 - tau)[:, None, None] * v
    loss_cons = ((one_step - a_n).flatten(1).pow(2).sum(-1) / n_minus_k.pow(2)).mean()

    # Fisher constraint with k' ~ U{0..N-1}: stochastic rows on the straight path from fresh
    # noise to a_N; deterministic rows at their own chain's points (the path that is deployed).
    k_fd = torch.randint(0, steps, (a_n.shape[0],), device=state.device)
    tau_fd = k_fd.to(state.dtype) / steps
    x_fd = flow.interpolate(torch.randn_like(a_n), a_n, tau_fd)
    if det:
        x_fd[batch * p:] = chain[k_fd[batch * p:], rows[batch * p:]]
    with torch.no_grad():
        v_ref = reference.velocity(x_fd, tau_fd, per_query(cond_ref))
    loss_fd = (policy.velocity(x_fd, tau_fd, per_query(cond)) - v_ref
               ).flatten(1).pow(2).sum(-1).mean()

    loss = (loss_rl + config.consistency_weight * loss_cons
            + config.constraint_weight * loss_fd)
    if det:
        with torch.no_grad():
            stats['q_deterministic'] = q_fn(a_n[batch * p:], slice(batch * p, None)).mean()
    return {'loss': loss, 'rl': loss_rl, 'cons': loss_cons, 'fd': loss_fd, 'v': v, 'k': k,
            'x_k': x_k, 'a_n': a_n, 'a_dag': a_dag, 'phi': phi,
            **{name: value.detach() for name, value in stats.items()}}


def grad_norm_per_step(v: torch.Tensor, k: torch.Tensor, steps: int) -> torch.Tensor:
    """Mean ||d loss / d v_theta(x_k)|| for each denoising step k (N,), after backward.

    Needs v.retain_grad() before backward. Steps with no sample get 0.
    """
    norms = v.grad.flatten(1).norm(dim=-1)
    total = torch.zeros(steps, device=v.device).index_add_(0, k, norms)
    count = torch.zeros(steps, device=v.device).index_add_(0, k, torch.ones_like(norms))
    return total / count.clamp_min(1.0)
