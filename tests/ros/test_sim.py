"""The MuJoCo sim node alone: cameras, a user's plain MJCF file, commands, reset."""
import time

import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

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
                '-p', 'image_width:=64', '-p', 'camera_rate_hz:=20.0')
    probe.wait_for(lambda: images and infos, 30, 'an image and camera_info')
    with probe.lock:
        image, info = images[-1][1], infos[-1][1]
    assert (image.height, image.width, image.encoding, image.step) == (48, 64, 'rgb8', 192)
    pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(48, 64, 3)
    assert pixels.std() > 5, 'a rendered scene is not a flat colour'
    assert image.header.frame_id == 'front'
    assert info.k[0] > 0 and info.k[0] == info.k[4] and info.k[2] == 31.5


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
