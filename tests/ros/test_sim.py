"""The MuJoCo sim node alone: cameras, a user's plain MJCF file, commands, reset,
randomization."""
import json
import time

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_msgs.msg import String
from std_srvs.srv import Trigger

from conftest import output

PENDULUM = """<mujoco>
  <option timestep="0.002"/>
  <worldbody>
    <body name="link">
      <joint name="hinge" type="hinge" axis="0 1 0" damping="0.5"/>
      <geom type="capsule" fromto="0 0 0 0 0 -0.3" size="0.02" mass="0.2"/>
    </body>
  </worldbody>
  <actuator><position joint="hinge" kp="5" ctrlrange="-1 1"/></actuator>
</mujoco>
"""


def test_cameras_publish_rgb8_images_and_intrinsics(probe, procs):
    images = probe.record(Image, '/front/image_raw', qos=qos_profile_sensor_data)
    infos = probe.record(CameraInfo, '/front/camera_info', qos=qos_profile_sensor_data)
    procs.start('run', 'sim', '--', '-p', 'cameras:=[front]', '-p', 'image_height:=48',
                '-p', 'image_width:=64')
    probe.wait_for(lambda: images and infos, 30, 'an image and camera_info')
    with probe.lock:
        image, info = images[-1][1], infos[-1][1]
    assert (image.height, image.width, image.encoding, image.step) == (48, 64, 'rgb8', 192)
    pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(48, 64, 3)
    assert pixels.std() > 5, 'a rendered scene is not a flat colour'
    assert image.header.frame_id == 'front'
    assert info.k[0] > 0 and info.k[0] == info.k[4] and info.k[2] == 31.5


def test_camera_task_publishes_what_its_policy_observes_every_step(probe, procs):
    """cube_push_vision: the front and wrist cameras at the task's 64x64, one image per
    camera per control step with the step's stamp, and joint_states of the arm only (the
    cube is seen, never published)."""
    cameras = {c: probe.record(Image, f'/{c}/image_raw', qos=qos_profile_sensor_data)
               for c in ('front', 'wrist')}
    states = probe.record(JointState, '/joint_states')
    procs.start('run', 'sim', '--', '-p', 'task:=cube_push_vision')
    probe.wait_for(lambda: len(states) >= 40 and all(len(v) >= 40 for v in cameras.values()),
                   30, 'images and joint states')
    time.sleep(1.0)
    with probe.lock:
        stamps = {c: {(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in v[-30:]}
                  for c, v in cameras.items()}
        state_stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in states]
        names = list(states[-1][1].name)
        image = cameras['wrist'][-1][1]
        n_states, n_images = len(states), {c: len(v) for c, v in cameras.items()}
    assert names == ['shoulder', 'elbow', 'wrist', 'gripper']
    assert (image.height, image.width, image.encoding) == (64, 64, 'rgb8')
    for c in cameras:  # every image belongs to a step whose joint state went out too
        assert stamps[c] <= set(state_stamps), c
        assert abs(n_images[c] - n_states) <= 3, (c, n_images[c], n_states)


def test_plain_mjcf_publishes_its_joints_and_follows_commands(tmp_path, probe, procs):
    mjcf = tmp_path / 'pendulum.xml'
    mjcf.write_text(PENDULUM)
    states = probe.record(JointState, '/joint_states')
    pub = probe.node.create_publisher(Float64MultiArray, '/forward_position_controller/commands',
                                      10)
    procs.start('run', 'sim', '--', '-p', f'mjcf:={mjcf}', '-p', 'control_rate_hz:=50.0')
    probe.wait_for(lambda: states, 30, 'joint_states')
    assert list(states[-1][1].name) == ['hinge']

    def at_target():
        pub.publish(Float64MultiArray(data=[0.8]))
        return abs(states[-1][1].position[0] - 0.8) < 0.05
    probe.wait_for(at_target, 10, 'the hinge at the commanded 0.8 rad')
    assert probe.call(Trigger, '/sim_node/reset').success
    reset_at = time.monotonic()
    probe.wait_for(lambda: states[-1][0] > reset_at + 0.1
                   and abs(states[-1][1].position[0]) < 0.05, 5, 'the hinge back at 0')


def test_randomization_file_perturbs_each_episode_and_the_readings(tmp_path, probe, procs):
    """The sim node takes the training config's randomization ranges: each episode draws its
    own perturbation (logged with the result) and joint_states carry the sensor noise."""
    pytest.importorskip('rldt_ros.randomization',
                        reason='needs rldt_ros/randomization.py (the s2r branch)')
    ranges = tmp_path / 'randomization.yaml'
    ranges.write_text('object_mass_scale: [0.5, 2.0]\njoint_position_noise_std: 0.01\n')
    episodes = probe.record(String, '/sim_node/episode')
    states = probe.record(JointState, '/joint_states')
    procs.start('run', 'sim', '--', '-p', f'randomization_file:={ranges}',
                '-p', 'wait_for_command:=false', '-p', 'max_episode_steps:=20')
    probe.wait_for(lambda: len(episodes) >= 2 and len(states) >= 30, 30, 'two episodes')
    with probe.lock:
        drawn = [json.loads(m.data)['perturbation'] for _, m in episodes[:2]]
        shoulder = np.array([m.position[0] for _, m in states[-15:]])
    masses = [d['object_mass_scale'][0] for d in drawn]
    assert all(0.5 <= m <= 2.0 for m in masses) and masses[0] != masses[1]
    # The arm holds its start pose (no commands); its readings scatter by the noise.
    assert 0.003 < np.std(np.diff(shoulder)) < 0.05


def test_unknown_randomization_key_refuses_to_start_naming_it(tmp_path, procs):
    pytest.importorskip('rldt_ros.randomization',
                        reason='needs rldt_ros/randomization.py (the s2r branch)')
    ranges = tmp_path / 'randomization.yaml'
    ranges.write_text('cube_mass_scale: [0.5, 2.0]\n')
    proc = procs.start('run', 'sim', '--', '-p', f'randomization_file:={ranges}')
    assert proc.wait(timeout=30) != 0
    text = output(proc)
    assert "unknown randomization key 'cube_mass_scale'" in text and str(ranges) in text
    assert 'Traceback' not in text
