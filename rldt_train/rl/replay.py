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

Images are stored once (`image_keys`): the next observation of row t is the observation of row
t + 1 of the same env, except where an episode ended (the env has already reset) and on the
segment's last row. Only those next images are kept, apart, per slot; a sampled mix gets its
'next_obs/<key>' rebuilt, identical to what was added. With 50-chunk segments and ~20-chunk
episodes this stores 1.07 images per transition instead of 2 (docs/architecture.md 6).
"""
import torch

from rldt_train.rl.td import episode_success

# Per (time, env) of a slot: where its next image sits in the slot's kept next images, or -1
# when it is the following row's observation.
NEXT_IMAGE_INDEX = 'next_image_index'


class RolloutReplay:
    """Ring buffer of (T, E) rollout segments; see the module docstring for the fields."""

    def __init__(self, capacity: int, device: torch.device, image_keys: tuple[str, ...] = ()):
        if capacity < 1:
            raise ValueError(f'replay capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self.device = device
        self.image_keys = tuple(image_keys)
        self.data: dict[str, torch.Tensor] = {}
        # Per slot and image key: the next images the following row cannot give, (K, ...).
        self.next_images: list[dict[str, torch.Tensor]] = [{} for _ in range(capacity)]
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
        next_images = self._split_next_images(segment) if self.image_keys else {}
        if not self.data:
            self.data = {name: torch.zeros((self.capacity,) + tuple(value.shape),
                                           dtype=value.dtype, device=self.device)
                         for name, value in segment.items()}
        if set(segment) != set(self.data):
            raise ValueError(f'segment fields {sorted(segment)} differ from the replay\'s '
                             f'{sorted(self.data)}')
        for name, value in segment.items():
            self.data[name][self.ptr].copy_(value)
        self.next_images[self.ptr] = {k: v.to(self.device) for k, v in next_images.items()}
        self.ptr = (self.ptr + 1) % self.capacity
        self.count += 1

    def _split_next_images(self, segment: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Replace segment's 'next_obs/<image key>' by NEXT_IMAGE_INDEX; return the next images
        that are not the following row's observation, (K, ...) per key, in (t, env) order."""
        kept = segment['episode_end'].clone()
        kept[-1] = True
        index = torch.full(kept.shape, -1, dtype=torch.long, device=kept.device)
        index[kept] = torch.arange(int(kept.sum()), device=kept.device)
        follows = ~kept[:-1]
        out = {}
        for key in self.image_keys:
            if f'obs/{key}' not in segment or f'next_obs/{key}' not in segment:
                raise ValueError(f'segment lacks obs/{key} or next_obs/{key} (an image key of '
                                 'this replay)')
            obs, next_obs = segment[f'obs/{key}'], segment.pop(f'next_obs/{key}')
            # Storing once is only right if the env's next observation IS the next row's.
            if not torch.equal(next_obs[:-1][follows], obs[1:][follows]):
                raise ValueError(f'next_obs/{key} differs from the following row\'s obs/{key} '
                                 'where no episode ended: the segment is not one contiguous '
                                 'rollout per env')
            out[key] = next_obs[kept].clone()
        segment[NEXT_IMAGE_INDEX] = index
        return out

    def _rebuild_next_images(self, key: str, obs: torch.Tensor, index: torch.Tensor,
                             slot: torch.Tensor) -> torch.Tensor:
        """'next_obs/<key>' (T, M, ...) of a mix from its obs (T, M, ...), its trajectories'
        NEXT_IMAGE_INDEX (T, M) and slots (M,)."""
        next_obs = torch.empty_like(obs)
        next_obs[:-1] = obs[1:]
        for s in slot.unique().tolist():
            columns = (slot == s).nonzero().squeeze(1)
            sub = index[:, columns]
            t, j = (sub >= 0).nonzero(as_tuple=True)
            next_obs[t, columns[j]] = self.next_images[s][key][sub[t, j]]
        return next_obs

    @property
    def nbytes(self) -> int:
        """Bytes the stored segments take (fields and kept next images)."""
        kept = sum(v.nbytes for slot in self.next_images for v in slot.values())
        return sum(v.nbytes for v in self.data.values()) + kept

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
        mix = {name: value[slot, :, env].transpose(0, 1) for name, value in self.data.items()}
        if self.image_keys:
            index = mix.pop(NEXT_IMAGE_INDEX)
            for key in self.image_keys:
                mix[f'next_obs/{key}'] = self._rebuild_next_images(key, mix[f'obs/{key}'],
                                                                   index, slot)
        return mix

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
                'count': self.count,
                'next_images': [{k: v.clone() for k, v in slot.items()}
                                for slot in self.next_images]}

    def load_state_dict(self, state: dict) -> None:
        self.data = {k: v.to(self.device).clone() for k, v in state['data'].items()}
        self.next_images = [{k: v.to(self.device).clone() for k, v in slot.items()}
                            for slot in state['next_images']]
        self.ptr = int(state['ptr'])
        self.count = int(state['count'])


def observation_fields(batch: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """{'obs/state': x, 'obs/front': y, ...} -> {'state': x, 'front': y} for prefix 'obs'."""
    start = prefix + '/'
    return {name[len(start):]: value for name, value in batch.items() if name.startswith(start)}
