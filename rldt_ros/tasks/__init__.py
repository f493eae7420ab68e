"""Built-in simulated tasks, by name (pure numpy + mujoco: safe for the robot side)."""
from rldt_ros.tasks.cube_push import CubePushTask

TASKS = {'cube_push': CubePushTask}


def make_task(name: str, **kw) -> CubePushTask:
    """A fresh task instance; kw go to the task's constructor."""
    if name not in TASKS:
        raise ValueError(f'unknown task {name!r}; known: {", ".join(TASKS)}')
    return TASKS[name](**kw)
