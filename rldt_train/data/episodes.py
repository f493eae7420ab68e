"""In-memory episodes and the (observation, action chunk) pairs BC trains on."""
from dataclasses import dataclass

import numpy as np


def image_key(camera: str) -> str:
    """Dataset key of a camera's images: robomimic's `obs/<camera>_image`, uint8 (T, H, W, 3)."""
    return f'{camera}_image'


def dataset_obs(obs: dict[str, np.ndarray], cameras: list[str]) -> dict[str, np.ndarray]:
    """An env observation dict -> dataset keys (images renamed <camera>_image, others kept)."""
    return {(image_key(k) if k in cameras else k): v for k, v in obs.items()}


@dataclass
class Episode:
    """One recorded episode; every array has the episode length T first.

    obs: observation key -> array, 'state' (T, D) float, for camera tasks '<camera>_image'
    (T, H, W, 3) uint8 and 'privileged' (T, P) float; actions (T, A); rewards (T,);
    dones (T,) bool, True where the episode terminated (robomimic semantics: the last step of a
    successful episode, never a time-out); success: whether the task was solved.
    """

    obs: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    success: bool = False

    def __post_init__(self):
        length = len(self.actions)
        for name, array in [('rewards', self.rewards), ('dones', self.dones),
                            *[(f'obs/{k}', v) for k, v in self.obs.items()]]:
            if len(array) != length:
                raise ValueError(f'episode {name} has length {len(array)}, actions {length}')

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def total_return(self) -> float:
        return float(np.sum(self.rewards))


def action_chunks(episodes: list[Episode], horizon: int, obs_key: str = 'state'
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Every step's observation with the next H actions: (N, D) float32, (N, H, A) float32.

    Chunks that run past the episode end repeat the last action (the robot holds still), the
    usual padding for action-chunking policies.
    """
    observations, chunks = [], []
    for episode in episodes:
        length = len(episode)
        index = np.minimum(np.arange(length)[:, None] + np.arange(horizon)[None, :], length - 1)
        observations.append(episode.obs[obs_key])
        chunks.append(episode.actions[index])
    return (np.concatenate(observations).astype(np.float32),
            np.concatenate(chunks).astype(np.float32))


def stacked_obs(episodes: list[Episode], key: str) -> np.ndarray:
    """Every step's `obs[key]`, in the order of `action_chunks` (images stay uint8)."""
    missing = sum(key not in e.obs for e in episodes)
    if missing:
        raise ValueError(f'{missing} of {len(episodes)} episodes have no obs/{key}; '
                         f'they have {sorted(episodes[0].obs)}')
    return np.concatenate([e.obs[key] for e in episodes])
