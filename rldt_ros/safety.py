"""Safety layer between the action queue and the command topic; pure numpy, no ROS.

Order per tick: a chunk is checked once when it arrives (`chunk_is_finite`); each action is then
clamped to the joint limits and rate-limited against the last command (`CommandFilter`); the
`Watchdog` decides whether to send it, hold the last command, or send nothing; the `EStop` latch
overrides everything until it is reset.
"""
import enum

import numpy as np


def chunk_is_finite(chunk: np.ndarray) -> bool:
    """A chunk with any NaN/inf is rejected whole: its finite entries came from the same bad
    pass."""
    return bool(np.all(np.isfinite(chunk)))


class CommandFilter:
    """Joint-limit clamp, then a per-tick delta cap relative to the last command sent.

    Clamping first keeps the capped command inside the limits too (the last command is inside
    them, and a step towards an inside point stays inside the box).
    """

    def __init__(self, low: np.ndarray, high: np.ndarray, max_delta_per_tick: float):
        low = np.asarray(low, dtype=np.float64)
        high = np.asarray(high, dtype=np.float64)
        if low.shape != high.shape or low.ndim != 1:
            raise ValueError(f'low/high must be equal 1-D shapes, got {low.shape}, {high.shape}')
        if not np.all(low <= high):
            raise ValueError(f'joint limits need low <= high, got low={low} high={high}')
        # 0 would freeze the robot forever and a negative cap has no meaning: refuse both.
        if not max_delta_per_tick > 0:
            raise ValueError(f'max_delta_per_tick must be > 0, got {max_delta_per_tick}')
        self.low = low
        self.high = high
        self.max_delta_per_tick = float(max_delta_per_tick)
        self.clamped = 0
        self.rate_limited = 0

    def apply(self, action: np.ndarray, last: np.ndarray | None) -> np.ndarray:
        """Returns the command (A,) float64; counts clamped and rate-limited ticks."""
        command = np.clip(action, self.low, self.high)
        if not np.array_equal(command, action):
            self.clamped += 1
        if last is not None:
            delta = command - last
            capped = np.clip(delta, -self.max_delta_per_tick, self.max_delta_per_tick)
            if not np.array_equal(capped, delta):
                self.rate_limited += 1
                command = last + capped
        return command


class Mode(enum.Enum):
    RUN = 'run'    # fresh observations and an action for this tick: send it
    HOLD = 'hold'  # something is missing, still within the grace period: resend the last command
    STOP = 'stop'  # grace period over (or nothing was ever sent): send nothing


class Watchdog:
    """Stale observations or a starved queue -> HOLD for `grace_s`, then STOP until healthy.

    Holding briefly rides out one slow inference or a dropped frame without a jerk; stopping
    afterwards hands the robot to the controller's own timeout/hold behaviour instead of
    streaming a target computed from a world that is no longer observed.
    """

    def __init__(self, grace_s: float):
        if not grace_s >= 0:
            raise ValueError(f'starvation_grace_s must be >= 0, got {grace_s}')
        self.grace_s = grace_s
        self._bad_since: float | None = None
        self.mode = Mode.STOP

    def update(self, now_s: float, healthy: bool, have_last: bool) -> Mode:
        """healthy: fresh observations and an action for this tick. have_last: a command exists."""
        if healthy:
            self._bad_since = None
            self.mode = Mode.RUN
        else:
            if self._bad_since is None:
                self._bad_since = now_s
            hold = have_last and now_s - self._bad_since <= self.grace_s
            self.mode = Mode.HOLD if hold else Mode.STOP
        return self.mode


class EStop:
    """Latched emergency stop: once triggered, nothing is sent until `reset` is called."""

    def __init__(self):
        self.engaged = False
        self.reason = ''

    def trigger(self, reason: str) -> None:
        self.engaged = True
        self.reason = reason

    def reset(self) -> None:
        self.engaged = False
        self.reason = ''
