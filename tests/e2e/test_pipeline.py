"""End to end on the built-in task: demos -> BC -> ONNX export -> the ONNX policy, run by
ONNX Runtime in the environment, beats uniformly random joint targets."""
import numpy as np

from rldt_ros.tasks import make_task
from rldt_train.evaluate import evaluate
from rldt_train.evaluate import onnx_policy
from rldt_train.evaluate import random_policy


def test_exported_policy_beats_random(exported_model):
    task = make_task('cube_push')
    episodes = 40
    trained = evaluate(onnx_policy(str(exported_model), seed=0), 'cube_push', episodes, 4,
                       seed=5000)
    chance = evaluate(random_policy(task.action_low, task.action_high, 4, seed=0), 'cube_push',
                      episodes, 4, seed=5000)
    # Welch's t statistic on episode returns: > 4 does not happen by chance (p < 1e-4).
    diff = trained.return_mean - chance.return_mean
    se = np.sqrt(trained.returns.var(ddof=1) / episodes + chance.returns.var(ddof=1) / episodes)
    print(f'ONNX policy {trained.as_dict()}\nrandom {chance.as_dict()}\nt = {diff / se:.1f}')
    assert diff / se > 4.0
    assert trained.success_rate > chance.success_rate
