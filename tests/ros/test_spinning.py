"""The executors the nodes spin on (rldt_ros.spinning), in this process over real DDS."""
import sys
import threading
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState

from rldt_ros.spinning import EXECUTORS
from rldt_ros.spinning import events_executor_class
from rldt_ros.spinning import make_executor
from rldt_ros.spinning import spin
from rldt_ros.spinning import with_message_info


@pytest.fixture
def context(domain_id):
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    yield context
    rclpy.try_shutdown(context=context)


def test_this_rclpy_has_the_events_executor():
    # The default (config/*.yaml) is only fast where this holds; the wheels pinned by setup.py
    # (Kilted) have it.
    assert events_executor_class() is not None


@pytest.mark.parametrize('kind', EXECUTORS)
def test_message_info_callback_gets_message_and_source_timestamp(kind, context):
    node = rclpy.create_node('spinning_info', context=context)
    received = []
    node.create_subscription(
        JointState, 'spin_js', with_message_info(lambda msg, info: received.append((msg, info))),
        10)
    publisher = node.create_publisher(JointState, 'spin_js', 10)
    executor, used, warning = make_executor(kind, context=context)
    assert (used, warning) == (kind, None)
    executor.add_node(node)
    deadline = time.monotonic() + 10
    while len(received) < 3 and time.monotonic() < deadline:
        publisher.publish(JointState(name=['a'], position=[1.5]))
        executor.spin_once(timeout_sec=0.1)
    node.destroy_node()
    assert len(received) >= 3, f'{len(received)} messages on the {kind} executor'
    msg, info = received[0]
    assert list(msg.position) == [1.5]
    age_ns = time.time_ns() - info['source_timestamp']
    assert 0 <= age_ns < 10**10, age_ns


@pytest.mark.parametrize('kind', EXECUTORS)
def test_spin_runs_timers_idles_without_busy_waiting_and_returns_on_shutdown(kind, context):
    """rclpy 9.1's EventsExecutor.spin() burns a core and never fires a timer: spin() here
    must fire them, sleep in between, and return once the context shuts down."""
    node = rclpy.create_node('spinning_timer', context=context)
    ticks = []
    node.create_timer(0.02, lambda: ticks.append(time.monotonic()))
    threading.Timer(1.0, lambda: rclpy.shutdown(context=context)).start()
    cpu0, start = time.process_time(), time.monotonic()
    try:
        spin(node, kind)
    except rclpy.executors.ExternalShutdownException:
        pass  # the single-threaded executor's way to say the context went down
    cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - start
    node.destroy_node()
    assert wall_s < 5, f'spin did not return after shutdown ({wall_s:.1f} s)'
    assert 30 <= len(ticks) <= 60, f'{len(ticks)} timer ticks in 1 s at 50 Hz'
    assert cpu_s < 0.5 * wall_s, f'{cpu_s:.2f} CPU s in {wall_s:.2f} s: busy-waiting'


def test_unknown_executor_is_refused_with_the_choices():
    with pytest.raises(ValueError, match='events, single_threaded'):
        make_executor('multi_threaded')


def test_events_falls_back_with_a_warning_where_rclpy_has_no_events_executor(monkeypatch,
                                                                            context):
    # Stands in for an older rclpy (Jazzy), which cannot be installed beside this one.
    monkeypatch.setitem(sys.modules, 'rclpy.experimental', None)
    executor, used, warning = make_executor('events', context=context)
    assert isinstance(executor, SingleThreadedExecutor) and used == 'single_threaded'
    assert 'EventsExecutor' in warning and 'single-threaded' in warning


@pytest.mark.parametrize('kind', EXECUTORS)
@pytest.mark.parametrize('shuts_down', [True, False], ids=['shutting_down', 'running'])
def test_an_executor_error_ends_spin_quietly_only_while_the_context_goes_down(
        kind, shuts_down, context, capfd):
    """rclpy 9.1's EventsExecutor once raised a RuntimeError from spin_once while a SIGINT shut
    the context down (rclpy's signal handler does that from its own thread). Here a callback
    raises, the context going down 50 ms later or not at all: the first is a quiet shutdown,
    the second an error that must still reach the caller."""
    node = rclpy.create_node('spinning_error', context=context)

    def fail():
        if shuts_down:
            threading.Timer(0.05, lambda: rclpy.shutdown(context=context)).start()
        raise RuntimeError('Unable to convert call argument')
    node.create_timer(0.05, fail)
    start = time.monotonic()
    if shuts_down:
        spin(node, kind)
        assert 'shutting down (the executor raised on the way, ignored: RuntimeError' in \
            capfd.readouterr().err
    else:
        with pytest.raises(RuntimeError, match='Unable to convert'):
            spin(node, kind)
        assert context.ok()
    assert time.monotonic() - start < 5
    node.destroy_node()
