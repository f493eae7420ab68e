"""cube_push_vision: cube_push as a real robot would see it, through cameras.

Same world, expert, reward and success as cube_push, but the policy observes only the arm's
joint states (shoulder, elbow, wrist, gripper) and camera images: nobody publishes a cube's pose
on a real robot. The cube's joints stay in the privileged state, which only a simulator has
(the scripted expert and a critic trained in simulation may use it; a policy must not).
"""
from rldt_ros.tasks.cube_push import ACTUATED_JOINTS
from rldt_ros.tasks.cube_push import CubePushTask


class CubePushVisionTask(CubePushTask):
    """Arm joint states + the `front` (fixed, sees the table) and `wrist` (sees the cube up
    close) cameras at 64 x 64 RGB."""

    name = 'cube_push_vision'
    OBSERVED_JOINTS = ACTUATED_JOINTS
    OBSERVED_CAMERAS = ('front', 'wrist')
    IMAGE_SIZE = (64, 64)
