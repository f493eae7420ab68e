"""Start-up checks: does a model card fit the robot's parameters (no ROS, no model file)."""
import numpy as np
import pytest

from rldt_ros.model_card import parse_model_card
from rldt_ros.robot_fit import fit
from rldt_ros.robot_fit import FitError
from rldt_ros.robot_fit import training_mismatch

CARD = {
    'format_version': 1, 'name': 'm', 'version': '1', 'task': 't',
    'observation': {'state': {'joints': ['a', 'b'], 'fields': ['position'], 'dim': 2},
                    'cameras': [{'name': 'front', 'topic': 'front/image_raw', 'height': 8,
                                 'width': 8}]},
    'action': {'dim': 2, 'names': ['a', 'b'], 'units': 'rad', 'low': [-1.0, -1.0],
               'high': [1.0, 1.0], 'chunk_length': 4, 'steps_per_chunk': 2,
               'control_rate_hz': 20.0},
    'sampler': {'steps': 4},
}
ROBOT = {'joint_names': [], 'cameras': [], 'refill_threshold': -1, 'joint_limits_low': [],
         'joint_limits_high': [], 'robot_description': ''}


def _fit(**robot):
    return fit(parse_model_card(CARD, '/m'), {**ROBOT, **robot})


def test_unset_robot_parameters_take_the_card():
    f = _fit()
    assert f.joint_names == ['a', 'b'] and f.out_index.tolist() == [0, 1]
    assert f.limits_from == 'model card'


def test_joint_order_and_limits_are_mapped_by_name():
    f = _fit(joint_names=['b', 'a'], joint_limits_low=[-0.5, -2.0],
             joint_limits_high=[0.5, 2.0])
    assert f.out_index.tolist() == [1, 0]
    np.testing.assert_allclose(f.low, [-1.0, -0.5])  # card order: a, b
    np.testing.assert_allclose(f.high, [1.0, 0.5])


@pytest.mark.parametrize('robot, words', [
    ({'joint_names': ['a']}, 'joint_names'),
    ({'cameras': ['wrist']}, 'cameras'),
    ({'refill_threshold': 4}, 'refill_threshold'),
    ({'joint_limits_low': [2.0, -1.0], 'joint_limits_high': [3.0, 1.0]}, "joint 'a'"),
    ({'robot_description': '<robot'}, 'not valid XML'),
])
def test_mismatches_refuse_with_a_reason(robot, words):
    with pytest.raises(FitError, match=words):
        _fit(**robot)


@pytest.mark.parametrize('conditions, node_delta, expected', [
    (None, 0.1, None),  # the card does not say: nothing to compare
    ({'command_filter': {'max_delta_per_tick': 0.1}}, 0.1, None),
    ({'command_filter': {'max_delta_per_tick': 0.1}}, 1.0, 'differs from the 0.1'),
    ({'command_filter': None}, 0.1, 'trained without a command filter'),
    ({'action_delay_ticks': [0, 1]}, 0.1, None),
])
def test_training_mismatch_compares_the_command_filter(conditions, node_delta, expected):
    card = parse_model_card({**CARD, **({'training_conditions': conditions}
                                        if conditions is not None else {})}, '/m')
    message = training_mismatch(card, node_delta)
    if expected is None:
        assert message is None
    else:
        assert expected in message and f'max_delta_per_tick {node_delta:g}' in message
