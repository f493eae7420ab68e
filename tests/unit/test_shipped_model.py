"""The model shipped in models/cube_push (what `rldt-ros run loop` and policy.launch.py use
without training) is intact, fits its task, and is a trained policy, not a placeholder."""
from pathlib import Path

import numpy as np

from rldt_ros.model_card import load_model_card
from rldt_ros.sampler import ChunkSampler
from rldt_ros.tasks import make_task
from rldt_train.evaluate import evaluate
from rldt_train.evaluate import onnx_policy

MODEL = Path(__file__).resolve().parents[2] / 'models' / 'cube_push'


def test_shipped_model_loads_and_matches_the_task():
    card = load_model_card(MODEL)  # verifies the sha256 too
    task = make_task(card.task)
    assert card.state_joints == tuple(task.observed_joints)
    assert card.action_names == tuple(task.actuated_joints)
    chunk = ChunkSampler(card, providers='cpu').sample({'state': task.state()})
    assert chunk.shape == (card.chunk_length, card.action_dim) and np.all(np.isfinite(chunk))


def test_shipped_model_solves_the_task_often():
    # Shipped at 80% success over 50 episodes; random targets get ~3%. 30 episodes with
    # >= 50% success cannot come from a 3%-policy (binomial tail < 1e-20).
    result = evaluate(onnx_policy(str(MODEL)), 'cube_push', 30, 4, seed=777)
    assert result.success_rate >= 0.5, result.as_dict()
