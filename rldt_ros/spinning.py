"""Which rclpy executor runs a node's callbacks, and the two workarounds the fast one needs.

The executor is most of a Python node's overhead per message: rclpy's SingleThreadedExecutor
rebuilds a wait set in Python for every callback; the EventsExecutor (rclpy.experimental,
Kilted and newer) dispatches from C++. Measured on the loop benchmark (bench/ros_latency.py,
2-core VM): 35-45% less CPU per node and a lower observation -> command median. Opt-in
(`executor: events`), because of the fourth defect below.

rclpy 9.1's EventsExecutor has four defects; this module works around the first two:
- its `spin()` busy-waits without running any callback (100% CPU, timers never fire), so
  `spin` here runs `spin_once` in a loop, which works;
- it calls a subscription callback that takes message info with one (msg, info) tuple
  instead of two arguments; `with_message_info` accepts both;
- it makes stale timer calls (one that fell due before the timer was reset, or a due timer
  dispatched twice on sim time, as far as measured), and rcl counts each as the next tick;
  the policy node's control timer recognises them (`PolicyNode._on_timer`);
- `spin_once` can raise `RuntimeError: Unable to convert call argument '0' to Python object`
  while a SIGINT shuts it down (once in a run of tests/ros: the sim node printed a traceback
  and exited non-zero); not worked around.
Older rclpy (Jazzy) has no EventsExecutor: `make_executor` falls back to the single-threaded one
and says so.
"""
import inspect

from rclpy.executors import SingleThreadedExecutor

EXECUTORS = ('events', 'single_threaded')


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
    executor.add_node(node)
    try:
        while node.context.ok():
            executor.spin_once(timeout_sec=wait_s)
    finally:
        executor.remove_node(node)


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
