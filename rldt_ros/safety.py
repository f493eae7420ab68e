"""Safety layer between the action queue and the command topic; pure numpy, no ROS.

Order per tick: a chunk is checked once when it arrives (`chunk_is_finite`); joint readings are
checked for plausibility when they arrive (`ReadingCheck`); each action is then rate-limited
and clamped (`CommandFilter`), starting from the MEASURED joint positions whenever control
(re)starts; the `Watchdog` decides whether to send it, hold the last command, or stop (and stay
stopped until re-armed); the `EStop` latch overrides everything until it is reset.
"""
import enum

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)


def chunk_is_finite(chunk: np.ndarray) -> bool:
    """A chunk with any NaN/inf is rejected whole: its finite entries came from the same bad
    pass."""
    return bool(np.all(np.isfinite(chunk)))


class CommandFilter:
    """Per-tick delta cap from the previous command, then a clamp to the joint limits.

    The previous command is the arm's MEASURED position on the first tick after every (re)start
    (`restart`): a policy's first action may be far from where the arm is, and the cap exists
    to stop exactly that jump. Capping before clamping keeps the command inside the limits even
    when the measured anchor is slightly outside them (within the reading margin).
    """

    def __init__(self, low: np.ndarray, high: np.ndarray, max_delta_per_tick: float):
        low = np.asarray(low, dtype=np.float64)
        high = np.asarray(high, dtype=np.float64)
        if low.shape != high.shape or low.ndim != 1:
            raise ValueError(f'low/high must be equal 1-D shapes, got {low.shape}, {high.shape}')
        if not np.all(low <= high):
            raise ValueError(f'joint limits need low <= high, got low={low} high={high}')
        self.low = low
        self.high = high
        self.max_delta_per_tick = check_max_delta(max_delta_per_tick)
        self.last: np.ndarray | None = None
        self.clamped = 0
        self.rate_limited = 0

    def restart(self) -> None:
        """Control stops or restarts: the next command starts from the measured position."""
        self.last = None

    def apply(self, action: np.ndarray, measured: np.ndarray) -> np.ndarray:
        """The command (A,) float64 for this tick; it becomes the anchor of the next one.

        `measured` (the arm's joint positions, same order) is used only after a restart.
        """
        anchor = np.asarray(measured, dtype=np.float64) if self.last is None else self.last
        command, clamped, limited = self._step(np.asarray(action, dtype=np.float64), anchor)
        self.clamped += clamped
        self.rate_limited += limited
        self.last = command
        return command

    def preview(self, actions: list[np.ndarray]) -> list[np.ndarray]:
        """Upcoming actions filtered as if sent tick by tick after the last command (for
        multi-point trajectories); changes nothing."""
        points, last = [], self.last
        for action in actions:
            last = self._step(np.asarray(action, dtype=np.float64), last)[0]
            points.append(last)
        return points

    def _step(self, action: np.ndarray, anchor: np.ndarray) -> tuple[np.ndarray, bool, bool]:
        d = self.max_delta_per_tick
        capped = np.clip(action, anchor - d, anchor + d)
        command = np.clip(capped, self.low, self.high)
        return (command, not np.array_equal(np.clip(action, self.low, self.high), action),
                not np.array_equal(capped, action))


MAX_DELTA_RANGE = (1e-6, 1.0)


def check_max_delta(value: float) -> float:
    """max_delta_per_tick must be in MAX_DELTA_RANGE: 0 freezes the robot forever, and more than
    1 rad (or m) per tick is no limit at all."""
    if not MAX_DELTA_RANGE[0] <= value <= MAX_DELTA_RANGE[1]:
        raise ValueError(f'max_delta_per_tick must be in [{MAX_DELTA_RANGE[0]}, '
                         f'{MAX_DELTA_RANGE[1]}], got {value}')
    return float(value)


class ReadingCheck:
    """Rejects joint readings that cannot be true, naming the joint.

    A finite 1e30 or a position far outside the joint's range is a driver or encoder fault, not
    a state: a policy fed with it drives into a limit. Positions may exceed the limits by
    `margin` (a controller overshoots a little at a limit); velocities are bounded by
    `max_velocity`; anything beyond float32 (the model's input type) is refused too.
    """

    def __init__(self, names: list[str], low: np.ndarray, high: np.ndarray, margin: float,
                 max_velocity: float):
        self.names = list(names)
        self.low = np.asarray(low, dtype=np.float64) - margin
        self.high = np.asarray(high, dtype=np.float64) + margin
        self.max_velocity = max_velocity

    def problem(self, positions: np.ndarray, velocities: np.ndarray | None) -> str | None:
        """None if plausible, else one line naming the first joint at fault."""
        for i, name in enumerate(self.names):
            p = positions[i]
            if not np.isfinite(p) or abs(p) > FLOAT32_MAX:
                return f'implausible joint_states: {name} position {p!r} is not a number'
            if not self.low[i] <= p <= self.high[i]:
                return (f'implausible joint_states: {name} position {p:.4g} outside its limits '
                        f'[{self.low[i]:.4g}, {self.high[i]:.4g}] (incl. margin)')
            if velocities is not None:
                v = velocities[i]
                if not (np.isfinite(v) and abs(v) <= self.max_velocity):
                    return (f'implausible joint_states: {name} velocity {v:.4g} beyond '
                            f'max_joint_velocity {self.max_velocity:g}')
        return None


class Mode(enum.Enum):
    RUN = 'run'    # fresh observations and an action for this tick: send it
    HOLD = 'hold'  # something is missing, still within the grace period: resend the last command
    STOP = 'stop'  # grace period over (or nothing was ever sent): send nothing


class Watchdog:
    """Stale observations, a starved queue or a bad reading -> HOLD for `grace_s`, then STOP.

    Holding briefly rides out one slow inference or a dropped frame without a jerk. After a
    stop the node stays stopped until `rearm` (an operator's decision: the world it stopped in
    is no longer observed), unless `auto_resume` (simulation) lets healthy data restart it.
    """

    def __init__(self, grace_s: float, auto_resume: bool = False):
        if not grace_s >= 0:
            raise ValueError(f'starvation_grace_s must be >= 0, got {grace_s}')
        self.grace_s = grace_s
        self.auto_resume = auto_resume
        self.latched = False
        self._bad_since: float | None = None
        self.mode = Mode.STOP

    def update(self, now_s: float, healthy: bool, have_last: bool) -> Mode:
        """healthy: fresh observations and an action for this tick. have_last: a command exists."""
        if healthy and not self.latched:
            self._bad_since = None
            self.mode = Mode.RUN
            return self.mode
        if self._bad_since is None:
            self._bad_since = now_s
        hold = (not self.latched and have_last and self.mode is not Mode.STOP
                and now_s - self._bad_since <= self.grace_s)
        if not hold and self.mode is not Mode.STOP and not self.auto_resume:
            self.latched = True  # it ran (or held) and now stops: an operator must re-arm
        self.mode = Mode.HOLD if hold else Mode.STOP
        return self.mode

    def rearm(self) -> None:
        """An operator's go-ahead after a stop; control restarts when data is healthy."""
        self.latched = False
        self._bad_since = None


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
