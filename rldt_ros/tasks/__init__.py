"""Built-in simulated tasks, by name (pure numpy + mujoco: safe for the robot side).

This is the ONE registry: the gymnasium envs (rldt_train.envs), the model card's task spec and
the sim node all build tasks from it. A new task is one module here and one entry below.
"""
from rldt_ros.tasks.cube_push import CubePushTask
from rldt_ros.tasks.cube_push_vision import CubePushVisionTask

TASKS = {'cube_push': CubePushTask, 'cube_push_vision': CubePushVisionTask}


def make_task(name: str, **kw) -> CubePushTask:
    """A fresh task instance; kw go to the task's constructor."""
    if name not in TASKS:
        raise ValueError(f'unknown task {name!r}; known: {", ".join(TASKS)}')
    return TASKS[name](**kw)
