"""Control slots on simulation time, counted on the clock itself instead of an rclpy timer.

Under `use_sim_time` a simulator's /clock update is the control tick. The policy node hears it
through a jump callback on its ROS clock, which rclpy calls right after it set the new time
(inside its own /clock subscription callback), so `now()` already reads the new time there.
A slot at sim time t is served with the joint state stamped t: the simulator publishes that
state just before the clock, but the two topics can be handled in either order, so a slot whose
state has not arrived waits for it (or for the next clock update, for a robot or simulator whose
states do not carry sim-time stamps).

Why not an rclpy timer on the ROS clock, as on wall time: rclpy 9.1's EventsExecutor dispatches
such a timer more than once per due time, and each extra call counts as the next tick (lockstep
loop at real_time_factor 50, 2-core VM: 83-292 extra calls in 40 s of ~25,000 ticks, once a
storm of 166,071 in 25 s), and a tick can come before the state it should answer. Before this
module and the sim node's episode boundary (sim_node.py), in lockstep loops of 30-60 s, 0.4-6.7%
(EventsExecutor, 7 runs) and 25-50% (single-threaded, 7 runs) of the commands were planned from
another state than the one they answered (a one-off check in the sim node), and 2 of 11
EventsExecutor runs waited out the lockstep timeout step after step (an episode of 30 steps
took 20-23 s; a CI run saw one episode in 60 s). After both: none in 17 runs (~370,000
commands). tests/ros/test_clock_ticks.py checks the answers exactly; bench/lockstep_loop.py
times the loop.
"""


class SimTimeSlots:
    """Which clock updates are control slots: the first one, then one each `period_ns` of sim
    time. A clock that skips several periods gives one slot (the node counts the missed ones);
    a clock that goes back (a restarted simulator) re-phases the slots to it."""

    def __init__(self, period_ns: int):
        if period_ns <= 0:
            raise ValueError(f'period_ns must be positive, got {period_ns}')
        self.period_ns = period_ns
        self.next_ns: int | None = None

    def due(self, now_ns: int) -> bool:
        """Whether the clock, now at `now_ns`, reached the next slot (and moves it on if so)."""
        if self.next_ns is None or now_ns < self.next_ns - self.period_ns:
            self.next_ns = now_ns + self.period_ns  # the first clock, or time went back
            return True
        if now_ns < self.next_ns:
            return False
        self.next_ns += ((now_ns - self.next_ns) // self.period_ns + 1) * self.period_ns
        return True

    def served_through(self, stamp_ns: int) -> None:
        """A slot was served with a state stamped `stamp_ns` before the clock got there: the
        clock reaching that time is not another slot."""
        if self.next_ns is not None and self.next_ns <= stamp_ns:
            self.due(stamp_ns)
