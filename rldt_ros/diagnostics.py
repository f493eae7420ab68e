"""Health summary of the policy node as plain data: rolling percentiles and the OK/WARN/ERROR rule.

Kept out of the node so the rule that operators and tests rely on ("stopped -> ERROR") is
readable in one place and testable without ROS. Levels match diagnostic_msgs/DiagnosticStatus.
"""
import collections
import time

import numpy as np

OK = 0
WARN = 1
ERROR = 2


class Window:
    """Samples of a quantity (e.g. latency in ms) over the last `span_s` seconds (at most
    `size` of them), with p50/p99. A time span, not a sample count: what an operator reads is
    the node's health now, and a start-up transient must not linger for minutes in a window
    that fills at 12 samples a second."""

    def __init__(self, span_s: float = 10.0, size: int = 10_000, clock=time.monotonic):
        self.span_s = span_s
        self._clock = clock
        self._samples = collections.deque(maxlen=size)  # (time s, value)

    def add(self, value: float) -> None:
        self._samples.append((self._clock(), value))

    def percentiles(self) -> dict[str, float]:
        oldest = self._clock() - self.span_s
        while self._samples and self._samples[0][0] < oldest:
            self._samples.popleft()
        if not self._samples:
            return {'p50': float('nan'), 'p99': float('nan')}
        p50, p99 = np.percentile([v for _, v in self._samples], [50, 99])
        return {'p50': float(p50), 'p99': float(p99)}


def flatten(stats: dict) -> dict[str, str]:
    """{key: text} for DiagnosticStatus.values: nested groups become 'group.key'."""
    flat = {}
    for key, value in stats.items():
        if isinstance(value, dict):
            flat.update({f'{key}.{k}': str(v) for k, v in value.items()})
        else:
            flat[key] = str(value)
    return flat


def health(mode: str, ever_sent: bool, estop_reason: str | None, problems: list[str],
           stale: list[str], rearm_needed: bool = False,
           warnings: list[str] = ()) -> tuple[int, str]:
    """(level, message) for /diagnostics.

    ERROR: e-stop latched, an observation that cannot be built or is implausible (missing
    joint, bad encoding, a reading outside the joint's limits), or commands stopped after having
    run (the robot is no longer driven; the message says how to re-arm). WARN: holding the last
    command, not started yet, or running under `warnings` (e.g. a command filter other than the
    one the model was trained with). OK: commands flow.
    """
    if estop_reason is not None:
        return ERROR, f'e-stop latched: {estop_reason}; release with ~/reset_estop'
    if problems:
        return ERROR, '; '.join(problems)
    if mode == 'stop':
        why = f'stale observations: {", ".join(stale)}' if stale else 'no actions'
        if rearm_needed:
            now = why if stale else 'data healthy again'
            return ERROR, f'stopped after a fault ({now}); stays stopped until ~/rearm'
        if ever_sent:
            return ERROR, f'stopped ({why})'
        return WARN, f'waiting ({why})'
    if mode == 'hold':
        why = f'stale: {", ".join(stale)}' if stale else 'action queue empty'
        return WARN, f'holding last command ({why})'
    if warnings:
        return WARN, 'running; ' + '; '.join(warnings)
    return OK, 'running'
