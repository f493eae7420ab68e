"""Queueing, late-action skipping and blending of rldt_ros.chunking.ActionQueue."""
import numpy as np
import pytest

from rldt_ros.chunking import ActionQueue


def _chunk(start, h=4, a=2):
    return np.array([[start + i] * a for i in range(h)], dtype=np.float64)


def test_pop_follows_ticks_and_runs_dry():
    q = ActionQueue(2)
    q.push(_chunk(0), start_tick=10)
    assert len(q) == 4
    assert [q.pop(t)[0] for t in range(10, 14)] == [0, 1, 2, 3]
    assert q.pop(14) is None and len(q) == 0


def test_actions_consumed_during_inference_are_skipped():
    q = ActionQueue(2)
    q.pop(11)  # ticks 0..11 happened while the chunk for 10.. was computed
    assert q.push(_chunk(0), start_tick=10) == 2
    assert q.pop(12)[0] == 2


def test_a_skipped_tick_is_dropped_not_replayed():
    q = ActionQueue(2)
    q.push(_chunk(0), start_tick=0)
    assert q.pop(2)[0] == 2  # ticks 0 and 1 were missed (e.g. a slow timer)
    assert len(q) == 1


def test_none_blending_newest_chunk_wins_everywhere():
    q = ActionQueue(2, 'none')
    q.push(_chunk(0, h=8), start_tick=0)
    q.push(_chunk(100, h=2), start_tick=2)
    assert [q.pop(t)[0] for t in range(4)] == [0, 1, 100, 101]
    assert q.pop(4) is None


def test_ensemble_weights_older_predictions_exp_minus_coef_i():
    coef = 0.5
    q = ActionQueue(1, 'ensemble', coef)
    q.push(np.zeros((4, 1)), start_tick=0)
    q.push(np.ones((4, 1)), start_tick=2)
    assert q.pop(1)[0] == 0.0
    w1 = np.exp(-coef)
    assert q.pop(2)[0] == pytest.approx(w1 / (1 + w1))
    assert q.pop(3)[0] == pytest.approx(w1 / (1 + w1))
    assert q.pop(4)[0] == 1.0  # only the newer chunk covers tick 4


def test_ensemble_third_vote_gets_weight_exp_minus_2coef():
    coef = 0.3
    q = ActionQueue(1, 'ensemble', coef)
    for value in (0.0, 1.0, 2.0):
        q.push(np.full((1, 1), value), start_tick=5)
    w = np.exp(-coef * np.arange(3))
    assert q.pop(5)[0] == pytest.approx(np.dot(w, [0, 1, 2]) / w.sum())


def test_peek_returns_consecutive_upcoming_actions_without_consuming():
    q = ActionQueue(2)
    q.push(_chunk(0), start_tick=0)
    q.pop(0)
    assert [a[0] for a in q.peek(10)] == [1, 2, 3]
    assert len(q) == 3


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='blending'):
        ActionQueue(2, 'rtc')
    with pytest.raises(ValueError, match='ensemble_coef'):
        ActionQueue(2, 'ensemble', -1.0)
    with pytest.raises(ValueError, match=r'\(H, 2\)'):
        ActionQueue(2).push(np.zeros((4, 3)), 0)


def test_observation_clock_interval_is_the_slowest_inputs_median_capped_at_the_period():
    from rldt_ros.chunking import ObservationClock
    clock = ObservationClock(['state', 'front'], period_s=0.05)
    assert clock.interval_s() == 0.05  # no estimate yet: assume the control rate
    for i in range(10):
        clock.arrived('state', i * 0.001)   # 1 kHz joint states
        clock.arrived('front', i * 0.033)   # a 30 Hz camera
    assert clock.interval_s() == pytest.approx(0.033)
    assert clock.serves_early(0.016) and not clock.serves_early(0.017)
    slow = ObservationClock(['state'], period_s=0.05)
    for i in range(10):
        slow.arrived('state', i * 0.1)      # slower than the control rate: capped
    assert slow.interval_s() == 0.05
