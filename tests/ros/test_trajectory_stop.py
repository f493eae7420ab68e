"""In joint_trajectory mode a stop must reach the trajectory controller: it would otherwise
finish the last trajectory it was sent. The node sends a one-point trajectory holding the
MEASURED position (velocities zero), which replaces the running one in ros2_control's JTC and
in the sim node."""
import time

import numpy as np
import pytest
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from conftest import CUBE_JOINTS
from conftest import make_model

TRAJECTORIES = '/forward_position_controller/joint_trajectory'
ARM = np.array([0.3, -0.45, 0.6, 0.01])


@pytest.mark.parametrize('stop', ['estop', 'stale data'])
def test_stop_sends_a_hold_at_the_measured_position(stop, tmp_path, probe, procs,
                                                    record_property):
    folder = make_model(tmp_path / 'model', bias=0.5)
    trajectories = probe.record(JointTrajectory, TRAJECTORIES)
    publishing = [True]

    def make():
        if not publishing[0]:
            return None
        return JointState(name=list(CUBE_JOINTS), position=np.r_[ARM, 0.0, 0.0, 0.0].tolist(),
                          velocity=[0.0] * len(CUBE_JOINTS))
    probe.publish_at(JointState, '/joint_states', 50.0, make)
    procs.start('run', 'policy', '--model', str(folder), '--', '-p', 'enable_control:=true',
                '-p', 'command_type:=joint_trajectory', '-p', 'max_obs_age_s:=0.2',
                '-p', 'starvation_grace_s:=0.3')
    probe.wait_for(lambda: len(trajectories) >= 10, 20, 'trajectories')
    with probe.lock:
        assert len(trajectories[-1][1].points) > 1  # running: multi-point trajectories
    stopped = time.monotonic()  # before the call: the hold may arrive before its answer
    if stop == 'estop':
        assert probe.call(Trigger, '/policy_node/estop').success
    else:
        publishing[0] = False
    time.sleep(1.2)
    with probe.lock:
        last_t, last = trajectories[-1]
    record_property('stop_to_hold_s', round(last_t - stopped, 3))
    assert last_t > stopped, 'nothing was sent on stop: the controller keeps executing'
    assert list(last.joint_names) == CUBE_JOINTS[:4] and len(last.points) == 1
    np.testing.assert_allclose(last.points[0].positions, ARM)
    np.testing.assert_allclose(last.points[0].velocities, 0.0)
