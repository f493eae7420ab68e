"""Replay of whole rollout segments, stored as device tensors (slot, time, env, ...).

Keeping segments intact (not shuffled transitions) is what lets TD(lambda) run backwards in
time over them. Each iteration adds one segment of T chunk steps for every env; the ring keeps
the newest `capacity` segments (~20 rollouts per env). One env's T steps of one segment is a
TRAJECTORY, the unit the learner samples: each critic round draws a mix of trajectories with at
least `new_fraction` of them fresh, and each ensemble member trains on its own share of them.

Fields are whatever the segments hold, allocated on the first `add` with their shapes and
dtypes: observation fields as 'obs/<key>' and 'next_obs/<key>' (float state, uint8 camera
images, ...), 'chunk' (executed chunk, flow space), 'reward', 'terminated', 'episode_end' and
'success'. Plain tensors and ints only, so the state goes through
torch.save / torch.load(weights_only=True).
"""
import torch

from rldt_train.rl.td import episode_success


class RolloutReplay:
    """Ring buffer of (T, E) rollout segments; see the module docstring for the fields."""

    def __init__(self, capacity: int, device: torch.device):
        if capacity < 1:
            raise ValueError(f'replay capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self.device = device
        self.data: dict[str, torch.Tensor] = {}
        self.ptr = 0
        self.count = 0

    @property
    def filled(self) -> int:
        return min(self.count, self.capacity)

    @property
    def newest(self) -> int:
        return (self.ptr - 1) % self.capacity

    @property
    def steps(self) -> int:
        return self.data['reward'].shape[1]

    @property
    def num_envs(self) -> int:
        return self.data['reward'].shape[2]

    def add(self, segment: dict[str, torch.Tensor]) -> None:
        """segment: field -> (T, E, ...) tensor; 'success' is the per-step success flag."""
        segment = dict(segment)
        segment['success'] = episode_success(segment['success'], segment['episode_end'])
        if not self.data:
            self.data = {name: torch.zeros((self.capacity,) + tuple(value.shape),
                                           dtype=value.dtype, device=self.device)
                         for name, value in segment.items()}
        if set(segment) != set(self.data):
            raise ValueError(f'segment fields {sorted(segment)} differ from the replay\'s '
                             f'{sorted(self.data)}')
        for name, value in segment.items():
            self.data[name][self.ptr].copy_(value)
        self.ptr = (self.ptr + 1) % self.capacity
        self.count += 1

    def sample_trajectories(self, count: int, new_fraction: float, balance_success: bool,
                            generator: torch.Generator | None = None
                            ) -> dict[str, torch.Tensor]:
        """A mix of `count` whole trajectories, every field as (T, M, ...), time first.

        The fresh share is max(new_fraction, fresh / stored) of the mix (so a young replay is
        not diluted), drawn without replacement from the newest segment; the rest comes
        uniformly from the older segments, or, with balance_success, half from trajectories
        that contain a success and half from those that do not (when both exist), so a sparse
        critic sees both outcomes even when one is rare.
        """
        envs, old_slots = self.num_envs, self.filled - 1
        share = max(new_fraction, 1.0 / self.filled)
        n_fresh = min(envs, count) if old_slots == 0 else min(envs, max(1, int(count * share)))
        n_old = min(count - n_fresh, old_slots * envs)
        fresh_env = torch.randperm(envs, generator=generator)[:n_fresh]
        slot = torch.full((n_fresh,), self.newest, dtype=torch.long)
        env = fresh_env
        if n_old > 0:
            # Old trajectories in flat order (slot offset from newest, env).
            flat_old = self._old_trajectories(n_old, balance_success, generator)
            offset, old_env = flat_old // envs + 1, flat_old % envs
            slot = torch.cat([slot, (self.newest - offset) % self.capacity])
            env = torch.cat([env, old_env])
        slot, env = slot.to(self.device), env.to(self.device)
        return {name: value[slot, :, env].transpose(0, 1) for name, value in self.data.items()}

    def _old_trajectories(self, n: int, balance_success: bool,
                          generator: torch.Generator | None) -> torch.Tensor:
        """n distinct flat indices over (older slot offset - 1, env)."""
        envs, old_slots = self.num_envs, self.filled - 1
        total = old_slots * envs
        if balance_success:
            slots = (self.newest - 1 - torch.arange(old_slots)) % self.capacity
            success = self.data['success'][slots.to(self.device)].any(dim=1)   # (S, E)
            success = success.reshape(-1).cpu()
            n_success = int(success.sum())
            if 0 < n_success < total:
                weights = torch.where(success, 0.5 / n_success, 0.5 / (total - n_success))
                return torch.multinomial(weights, n, replacement=False, generator=generator)
        return torch.randperm(total, generator=generator)[:n]

    def state_dict(self) -> dict:
        return {'data': {k: v.clone() for k, v in self.data.items()}, 'ptr': self.ptr,
                'count': self.count}

    def load_state_dict(self, state: dict) -> None:
        self.data = {k: v.to(self.device).clone() for k, v in state['data'].items()}
        self.ptr = int(state['ptr'])
        self.count = int(state['count'])


def observation_fields(batch: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """{'obs/state': x, 'obs/front': y, ...} -> {'state': x, 'front': y} for prefix 'obs'."""
    start = prefix + '/'
    return {name[len(start):]: value for name, value in batch.items() if name.startswith(start)}
