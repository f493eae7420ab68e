"""Robot joint limits (parameters, URDF) intersected with the model card's."""
import numpy as np
import pytest

from rldt_ros.joint_limits import describe
from rldt_ros.joint_limits import intersect
from rldt_ros.joint_limits import JointLimitsError
from rldt_ros.joint_limits import parameter_limits
from rldt_ros.joint_limits import urdf_limits

URDF = """<robot name="arm">
  <link name="base"/><link name="l1"/><link name="l2"/><link name="l3"/>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="l1"/>
    <limit lower="-1.5" upper="1.0" effort="10" velocity="2"/></joint>
  <joint name="elbow" type="continuous"><parent link="l1"/><child link="l2"/></joint>
  <joint name="slide" type="prismatic"><parent link="l2"/><child link="l3"/>
    <limit lower="0" upper="0.02" effort="10" velocity="2"/></joint>
</robot>"""


def test_urdf_limits_of_revolute_and_prismatic_joints_only():
    assert urdf_limits(URDF) == {'shoulder': (-1.5, 1.0), 'slide': (0.0, 0.02)}


def test_bad_urdf_is_a_clear_error():
    with pytest.raises(JointLimitsError, match='not valid XML'):
        urdf_limits('<robot><joint')


def test_intersection_of_card_parameters_and_urdf():
    names = ['shoulder', 'elbow', 'slide']
    params = parameter_limits(names, [-2.0, -0.5, -1.0], [0.8, 0.5, 1.0])
    low, high = intersect(names, [-2.0, -2.8, 0.0], [2.0, 2.8, 0.03], params, urdf_limits(URDF))
    np.testing.assert_allclose(low, [-1.5, -0.5, 0.0])
    np.testing.assert_allclose(high, [0.8, 0.5, 0.02])
    assert describe(names, low, high, ['rad', 'rad', 'm']) == \
        'shoulder [-1.5, 0.8] rad, elbow [-0.5, 0.5] rad, slide [0, 0.02] m'


def test_empty_intersection_names_the_joint():
    with pytest.raises(JointLimitsError, match="joint 'elbow'.*model card"):
        intersect(['shoulder', 'elbow'], [-1.0, -1.0], [1.0, 1.0],
                  {'elbow': (2.0, 3.0)})


def test_parameter_limits_need_one_value_per_joint():
    assert parameter_limits(['a', 'b'], [], []) == {}
    with pytest.raises(JointLimitsError, match='2 values each'):
        parameter_limits(['a', 'b'], [-1.0], [1.0, 1.0])
