"""The camera model prepared in models/cube_push_vision is intact, names its cameras, and is a
trained policy that sees: it solves the task from the arm's joints and two 64 x 64 images."""
from pathlib import Path

import numpy as np

from rldt_ros.model_card import load_model_card
from rldt_ros.sampler import ChunkSampler
from rldt_ros.tasks import make_task
from rldt_train.evaluate import evaluate
from rldt_train.evaluate import onnx_policy

MODEL = Path(__file__).resolve().parents[2] / 'models' / 'cube_push_vision'


def test_vision_model_loads_and_matches_the_task():
    card = load_model_card(MODEL)  # verifies the sha256 too
    task = make_task(card.task)
    assert card.state_joints == tuple(task.observed_joints)
    assert [(c.name, c.topic, c.height, c.width, c.encoding) for c in card.cameras] == [
        (c, f'{c}/image_raw', *task.image_size, 'rgb8') for c in task.observed_cameras]
    task.reset(seed=0)
    chunk = ChunkSampler(card, providers='cpu').sample({'state': task.state(), **task.images()})
    task.close()
    assert chunk.shape == (card.chunk_length, card.action_dim) and np.all(np.isfinite(chunk))


def test_vision_model_solves_the_task_often():
    # Prepared at 99% (deterministic) over 100 episodes; random targets get ~3%. 30 episodes
    # with >= 60% success cannot come from a 3%-policy (binomial tail < 1e-25).
    result = evaluate(onnx_policy(str(MODEL), deterministic=True), 'cube_push_vision', 30, 4,
                      seed=777)
    assert result.success_rate >= 0.6, result.as_dict()
