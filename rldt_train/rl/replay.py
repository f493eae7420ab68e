"""Replay of whole rollout segments, stored as device tensors (slot, time, env, ...).

Keeping segments intact (not shuffled transitions) is what lets TD(lambda) run backwards in
time over them. Each iteration adds one segment of T chunk steps for every env; the ring keeps
the newest `capacity` segments (docs/architecture.md: ~20 rollouts per env). Plain tensors and ints
only, so the state goes through torch.save / torch.load(weights_only=True).
"""
import torch

from rldt_train.rl.td import episode_success

FIELDS = ('obs', 'chunk', 'reward', 'next_obs', 'terminated', 'episode_end', 'success')


class RolloutReplay:
    """Ring buffer of (T, E) rollout segments.

    obs, next_obs: (C, T, E, D) float raw; chunk: (C, T, E, H, A) executed chunk, flow space;
    reward: (C, T, E) raw summed chunk reward; terminated, episode_end: (C, T, E) bool;
    success: (C, T, E) bool, True on every step of an episode that reached success.
    """

    def __init__(self, capacity: int, steps: int, num_envs: int, obs_dim: int,
                 chunk_shape: tuple[int, int], device: torch.device):
        self.capacity, self.steps, self.num_envs = capacity, steps, num_envs
        lead = (capacity, steps, num_envs)
        self.data = {
            'obs': torch.zeros(lead + (obs_dim,), device=device),
            'chunk': torch.zeros(lead + tuple(chunk_shape), device=device),
            'reward': torch.zeros(lead, device=device),
            'next_obs': torch.zeros(lead + (obs_dim,), device=device),
            'terminated': torch.zeros(lead, dtype=torch.bool, device=device),
            'episode_end': torch.zeros(lead, dtype=torch.bool, device=device),
            'success': torch.zeros(lead, dtype=torch.bool, device=device),
        }
        self.ptr = 0
        self.count = 0

    @property
    def filled(self) -> int:
        return min(self.count, self.capacity)

    @property
    def newest(self) -> int:
        return (self.ptr - 1) % self.capacity

    def add(self, segment: dict[str, torch.Tensor]) -> None:
        """segment: FIELDS as (T, E, ...) tensors; 'success' is the per-step success flag."""
        segment = dict(segment)
        segment['success'] = episode_success(segment['success'], segment['episode_end'])
        for name in FIELDS:
            self.data[name][self.ptr].copy_(segment[name])
        self.ptr = (self.ptr + 1) % self.capacity
        self.count += 1

    def view(self, name: str) -> torch.Tensor:
        """Filled part of a field, (S, T, E, ...) with S = filled slots."""
        return self.data[name][:self.filled]

    def sample(self, batch: int, new_fraction: float, balance_success: bool) -> torch.Tensor:
        """Flat indices into view(...).reshape(-1, ...): >= new_fraction from the newest slot.

        balance_success: the rest is drawn half from successful, half from failed episodes
        (when both exist), so a sparse critic sees both outcomes even when one is rare.
        """
        per_slot = self.steps * self.num_envs
        device = self.data['reward'].device
        n_new = min(batch, round(new_fraction * batch))
        new = self.newest * per_slot + torch.randint(0, per_slot, (n_new,), device=device)
        n_old = batch - n_new
        total = self.filled * per_slot
        if balance_success:
            success = self.view('success').reshape(-1)
            n_success = int(success.sum())
            if 0 < n_success < total:
                weights = torch.where(success, 0.5 / n_success, 0.5 / (total - n_success))
                old = torch.multinomial(weights, n_old, replacement=True)
                return torch.cat([new, old])
        return torch.cat([new, torch.randint(0, total, (n_old,), device=device)])

    def state_dict(self) -> dict:
        return {'data': {k: v.clone() for k, v in self.data.items()}, 'ptr': self.ptr,
                'count': self.count}

    def load_state_dict(self, state: dict) -> None:
        for name in FIELDS:
            self.data[name].copy_(state['data'][name])
        self.ptr = int(state['ptr'])
        self.count = int(state['count'])
