"""Headless offscreen cameras for MuJoCo worlds (the sim node's images, the demo's frames).

The GL backend (EGL by default) is chosen in rldt_ros/__init__.py, before mujoco is imported.
"""
import mujoco
import numpy as np


class OffscreenCameras:
    """Renders named MJCF cameras; one renderer (GL context) per image size, built lazily."""

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}

    def render(self, data: mujoco.MjData, camera: str, height: int, width: int) -> np.ndarray:
        """(height, width, 3) uint8 RGB."""
        renderer = self._renderers.get((height, width))
        if renderer is None:
            renderer = mujoco.Renderer(self.model, height, width)
            # Shadows cost 5-25x in software GL; these scenes need none.
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            self._renderers[(height, width)] = renderer
        renderer.update_scene(data, camera=camera)
        return renderer.render()

    def close(self) -> None:
        """Free the GL contexts."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
