"""Which rclpy executor runs a node's callbacks, and the workarounds the fast one needs.

The executor is most of a Python node's overhead per message: rclpy's SingleThreadedExecutor
rebuilds a wait set in Python for every callback; the EventsExecutor (rclpy.experimental,
Kilted and newer) dispatches from C++. Measured on the loop benchmark (bench/ros_latency.py,
2-core VM): 35-45% less CPU per node and a lower observation -> command latency. It is the
default (`executor: events`); `executor: single_threaded` selects rclpy's Python executor.

rclpy 9.1's EventsExecutor has four defects; this module works around the first two and the
last:
- its `spin()` busy-waits without running any callback (100% CPU, timers never fire), so
  `spin` here runs `spin_once` in a loop, which works;
- it calls a subscription callback that takes message info with one (msg, info) tuple
  instead of two arguments; `with_message_info` accepts both;
- it makes stale timer calls (one that fell due before the timer was reset, or a due timer
  dispatched twice on sim time, as far as measured), and rcl counts each as the next tick;
  the policy node's control timer recognises them (`PolicyNode._on_timer`), and under sim
  time the node has no timer (rldt_ros/sim_time.py);
- `spin_once` can raise `RuntimeError: Unable to convert call argument '0' to Python object`
  while a SIGINT shuts it down (once in a run of tests/ros: the sim node printed a traceback
  and exited non-zero). rclpy's signal handler shuts the context down, so `spin` treats an
  error raised while the context goes down (within `SHUTDOWN_GRACE_S`) as the shutdown it is,
  and re-raises any other.
Older rclpy (Jazzy) has no EventsExecutor: `make_executor` falls back to the single-threaded one
and says so.
"""
import inspect
import sys
import time

from rclpy.executors import SingleThreadedExecutor

EXECUTORS = ('events', 'single_threaded')
# How long an executor error may precede its context's shutdown and still count as part of it:
# rclpy's signal handler shuts the context down from its own thread, microseconds to
# milliseconds after the signal.
SHUTDOWN_GRACE_S = 1.0


def events_executor_class():
    """The EventsExecutor factory of this rclpy, or None where it has none."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return None
    return EventsExecutor


def make_executor(kind: str, context=None):
    """(executor, kind actually used, warning or None). `kind` is one of EXECUTORS."""
    if kind not in EXECUTORS:
        raise ValueError(f'executor {kind!r}: expected one of {", ".join(EXECUTORS)}')
    if kind == 'events':
        events = events_executor_class()
        if events is not None:
            return events(context=context), 'events', None
        return (SingleThreadedExecutor(context=context), 'single_threaded',
                'executor:=events: this rclpy has no rclpy.experimental.EventsExecutor '
                '(it arrived after Jazzy); using the single-threaded executor')
    return SingleThreadedExecutor(context=context), 'single_threaded', None


def spin(node, kind: str, wait_s: float = 0.5) -> None:
    """Runs `node`'s callbacks on a `kind` executor (logged) until its context shuts down
    (Ctrl-C, SIGTERM, rclpy.shutdown). One callback per call: the EventsExecutor's own
    `spin()` busy-waits (module docstring)."""
    executor, used, warning = make_executor(kind, context=node.context)
    if warning:
        node.get_logger().warning(warning)
    node.get_logger().info(f'callbacks on the {used} executor')
    name = node.get_name()  # the node is destroyed once its context is shut down
    executor.add_node(node)
    try:
        while node.context.ok():
            try:
                executor.spin_once(timeout_sec=wait_s)
            except RuntimeError as exc:
                if not goes_down(node.context, SHUTDOWN_GRACE_S):
                    raise
                print(f'{name}: shutting down (the executor raised on the way, '
                      f'ignored: {type(exc).__name__}: {exc})', file=sys.stderr)
                return
    finally:
        executor.remove_node(node)


def goes_down(context, within_s: float) -> bool:
    """True once `context` is shut down, waiting up to `within_s` for it."""
    deadline = time.monotonic() + within_s
    while context.ok():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


class with_message_info:  # noqa: N801 - used like a function: with_message_info(callback)
    """A subscription callback `callback(msg, info)` that works under every executor: the
    SingleThreadedExecutor passes (msg, info) as two arguments, rclpy 9.1's EventsExecutor as
    one tuple. The declared signature makes rclpy hand message info to it."""

    __signature__ = inspect.Signature([
        inspect.Parameter('msg', inspect.Parameter.POSITIONAL_ONLY),
        inspect.Parameter('info', inspect.Parameter.POSITIONAL_ONLY)])

    def __init__(self, callback):
        self.callback = callback

    def __call__(self, *args):
        if len(args) == 1:  # the EventsExecutor's one (msg, info) tuple
            args = tuple(args[0])
        return self.callback(*args)
