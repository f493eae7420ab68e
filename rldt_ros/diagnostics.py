"""Health summary of the policy node as plain data: rolling percentiles and the OK/WARN/ERROR rule.

Kept out of the node so the rule that operators and tests rely on ("stopped -> ERROR") is
readable in one place and testable without ROS. Levels match diagnostic_msgs/DiagnosticStatus.
"""
import collections

import numpy as np

OK = 0
WARN = 1
ERROR = 2


class Window:
    """The last `size` samples of a quantity (e.g. latency in ms) with p50/p99."""

    def __init__(self, size: int = 1000):
        self._values = collections.deque(maxlen=size)

    def add(self, value: float) -> None:
        self._values.append(value)

    def percentiles(self) -> dict[str, float]:
        if not self._values:
            return {'p50': float('nan'), 'p99': float('nan')}
        p50, p99 = np.percentile(np.fromiter(self._values, float), [50, 99])
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
