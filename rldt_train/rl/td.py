"""TD(lambda) targets over stored rollout segments, and the reward scaler.

One transition per executed chunk: r_t is the chunk's summed reward and gamma applies once per
chunk. A termination stops bootstrapping; a truncation (time limit) or the end of the stored
segment bootstraps from V(s'_t) but does not continue into the next episode's return.
"""
import torch


def td_lambda_targets(rewards: torch.Tensor, next_values: torch.Tensor,
                      terminated: torch.Tensor, episode_end: torch.Tensor, gamma: float,
                      lam: float) -> torch.Tensor:
    """Lambda-returns, time on dim 0: all inputs (T, ...) -> (T, ...).

    G_t = r_t + gamma (1 - term_t) [ V(s'_t)                              if the episode
                                                                           ends at t or t = T-1
                                    (1 - lam) V(s'_t) + lam G_{t+1}       otherwise ]
    next_values: V(s'_t) for the true next state (the final obs when an episode ended).
    episode_end: terminated OR truncated. lam = 0 gives one-step TD.
    The loop is over time only (T steps of whole-batch tensor ops).
    """
    horizon = rewards.shape[0]
    targets = torch.empty_like(rewards)
    not_term = (~terminated).to(rewards.dtype)
    next_return = next_values[-1]
    for t in reversed(range(horizon)):
        if t == horizon - 1:
            mixed = next_values[t]
        else:
            mixed = torch.where(episode_end[t], next_values[t],
                                (1.0 - lam) * next_values[t] + lam * next_return)
        targets[t] = rewards[t] + gamma * not_term[t] * mixed
        next_return = targets[t]
    return targets


def episode_success(success: torch.Tensor, episode_end: torch.Tensor) -> torch.Tensor:
    """Marks every step of an episode (within the segment) with a success step; time on dim 0.

    Sparse tasks balance critic batches between successful and failed episodes; an episode
    cut by the segment end without success so far counts as failed. Two scans: successes at
    or after t (backward) and before t (forward), each stopping at episode boundaries.
    """
    horizon = success.shape[0]
    after = torch.empty_like(success)
    later = torch.zeros_like(success[0])
    for t in reversed(range(horizon)):
        later = success[t] | (~episode_end[t] & later)
        after[t] = later
    before = torch.empty_like(success)
    earlier = torch.zeros_like(success[0])
    for t in range(horizon):
        earlier = success[t] | earlier
        before[t] = earlier
        earlier = earlier & ~episode_end[t]
    return after | before


class RewardScaler:
    """Scale = EMA of mean |r| per collected rollout; dense tasks train on r / scale.

    Dividing by a running magnitude keeps Q targets O(1 / (1 - gamma)) whatever the task's
    reward units, so one critic learning rate fits all tasks. A rollout whose rewards are all
    zero carries no magnitude (a sparse task before its first success, a paused env) and is
    skipped: counting it would set the scale near 0 and multiply every reward by ~100 until
    the EMA recovers.
    """

    def __init__(self, decay: float, enabled: bool):
        self.decay = decay
        self.enabled = enabled
        self.ema_abs = 0.0
        self.updates = 0

    def update(self, rewards: torch.Tensor) -> None:
        value = float(rewards.abs().mean())
        if value == 0.0:
            return
        # Bias-free start: the first informative rollout sets the scale instead of decaying
        # from 0.
        self.ema_abs = value if self.updates == 0 else (
            self.decay * self.ema_abs + (1.0 - self.decay) * value)
        self.updates += 1

    @property
    def scale(self) -> float:
        """Divisor of the rewards: 1 until an informative rollout was seen, or when disabled."""
        return self.ema_abs if self.enabled and self.updates > 0 else 1.0

    def state_dict(self) -> dict:
        return {'ema_abs': self.ema_abs, 'updates': self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.ema_abs = float(state['ema_abs'])
        self.updates = int(state['updates'])
