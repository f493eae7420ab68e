"""rldt_ros: the robot side. numpy + onnxruntime + rclpy; never torch."""
import os

# Headless MuJoCo rendering (sim node cameras, demo frames): EGL needs no display. mujoco reads
# this when it is first imported, so it is set here, before any rldt_ros module imports mujoco.
# A user's own MUJOCO_GL (e.g. osmesa) wins.
os.environ.setdefault('MUJOCO_GL', 'egl')
