"""Action queue between the chunk sampler and the control timer.

Every control tick has an integer index. A chunk sampled from the observation taken at tick `k`
(right after tick k's action went out) holds the actions for ticks k+1 .. k+H. Inference takes
time, so when the chunk arrives at tick t the actions for ticks k+1 .. t-1 are already in the past:
they are skipped, never replayed late (a late action would move the robot where it should have
been, not where it should be).

Timeline (H = 4, steps_per_chunk = 2, so refill when 2 actions are left; inference takes ~1 tick):

    tick        10    11    12    13    14    15    16
    queue       c0[0] c0[1] c0[2] c0[3]
    request           ^ obs at 11 -> c1 for ticks 12..15
    c1 arrives              (before 13: c1[0], for tick 12, is late and skipped)
    pops        c0[0] c0[1] c0[2] c1[1] c1[2] c1[3]
                                 ^ `none`: c1 overrides c0 from tick 13 on
                                 ^ `ensemble`: tick 13 = weighted mean of c0[3] and c1[1]

`ensemble` is ACT's temporal ensembling: every chunk that predicted a tick votes with weight
exp(-coef * i), where i = 0 for the oldest prediction, so a small coef favours older predictions
and smooths switching between chunks; `none` executes the newest chunk only.
"""
import collections
import statistics

import numpy as np

BLENDINGS = ('none', 'ensemble')


class ActionQueue:
    """Actions keyed by control tick; `push` a chunk with the tick it starts at, `pop` per tick.

    Not thread-safe on purpose: the node calls both methods from the control timer (the worker
    only computes chunks), which keeps the ordering above exact.
    """

    def __init__(self, action_dim: int, blending: str = 'none', ensemble_coef: float = 0.01):
        if blending not in BLENDINGS:
            raise ValueError(f'blending must be one of {BLENDINGS}, got {blending!r}')
        if ensemble_coef < 0 or not np.isfinite(ensemble_coef):
            raise ValueError(f'ensemble_coef must be finite and >= 0, got {ensemble_coef}')
        self.action_dim = action_dim
        self.blending = blending
        self.ensemble_coef = ensemble_coef
        self._sum: dict[int, np.ndarray] = {}
        self._weight: dict[int, float] = {}
        self._votes: dict[int, int] = {}
        self._next_tick = 0

    def __len__(self) -> int:
        """Actions left for ticks >= the next tick to pop."""
        return sum(1 for t in self._sum if t >= self._next_tick)

    def push(self, chunk: np.ndarray, start_tick: int) -> int:
        """Adds chunk (H, A); chunk[i] is for tick start_tick + i. Returns how many were late."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[1] != self.action_dim:
            raise ValueError(f'chunk must be (H, {self.action_dim}), got {chunk.shape}')
        skipped = 0
        for i, action in enumerate(chunk):
            tick = start_tick + i
            if tick < self._next_tick:
                skipped += 1
                continue
            if self.blending == 'none' or tick not in self._sum:
                self._sum[tick] = action.copy()
                self._weight[tick] = 1.0
                self._votes[tick] = 1
            else:
                w = float(np.exp(-self.ensemble_coef * self._votes[tick]))
                self._sum[tick] += w * action
                self._weight[tick] += w
                self._votes[tick] += 1
        if self.blending == 'none':
            # The newest chunk wins: drop older predictions beyond its end too.
            end = start_tick + len(chunk)
            for tick in [t for t in self._sum if t >= end]:
                self._drop(tick)
        return skipped

    def pop(self, tick: int) -> np.ndarray | None:
        """The action for `tick` (A,), or None if nothing covers it; drops ticks <= tick."""
        for old in [t for t in self._sum if t < tick]:
            self._drop(old)
        self._next_tick = tick + 1
        if tick not in self._sum:
            return None
        action = self._sum[tick] / self._weight[tick]
        self._drop(tick)
        return action

    def peek(self, n: int) -> list[np.ndarray]:
        """Up to n upcoming actions (for multi-point trajectories), consecutive ticks only."""
        out = []
        tick = self._next_tick
        while len(out) < n and tick in self._sum:
            out.append(self._sum[tick] / self._weight[tick])
            tick += 1
        return out

    def clear(self) -> None:
        self._sum.clear()
        self._weight.clear()
        self._votes.clear()

    def _drop(self, tick: int) -> None:
        del self._sum[tick], self._weight[tick], self._votes[tick]


class ObservationClock:
    """When a refill slot is served under event-driven inference (docs/architecture.md 5).

    Observations come on their own clock (a driver's or a simulator's rate and phase), the
    control timer on another, so a chunk sampled on a timer tick acts on an observation up to one
    control period old. Instead the slot that needs a new chunk is served from the whole
    observation (every input newer than the last slot) that completes NEAREST to the slot's
    nominal time: one completing within half an observation interval before the slot serves it
    at once (early: the gap to the previous command shrinks by at most that much), otherwise the
    slot waits for the next one (late: the gap grows by the wait). The node then re-phases its
    timer to that moment, so observations at the control rate lock the loop to their phase and
    their latency falls to the sampler's.

    The observation interval is the slowest input's median arrival interval over the last
    `window` arrivals, capped at the control period (the period until every input has 3).
    """

    def __init__(self, keys: list[str], period_s: float, window: int = 16):
        if not period_s > 0:
            raise ValueError(f'period_s must be > 0, got {period_s}')
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._gaps = {k: collections.deque(maxlen=window) for k in keys}

    def arrived(self, key: str, now_s: float) -> None:
        if key in self._last:
            self._gaps[key].append(now_s - self._last[key])
        self._last[key] = now_s

    def interval_s(self) -> float:
        """The observation interval: the slowest input's median arrival gap, <= the period."""
        if any(len(g) < 3 for g in self._gaps.values()):
            return self.period_s
        # statistics.median: 16 numbers, on every arrival (np.median costs 25x more here).
        return min(self.period_s, max(statistics.median(g) for g in self._gaps.values()))

    def serves_early(self, until_slot_s: float) -> bool:
        """Whether an observation completing `until_slot_s` before the slot is the nearest one
        (the next is expected a whole interval later, so it would be further away)."""
        return until_slot_s <= self.interval_s() / 2
