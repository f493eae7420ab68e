"""Export writes one parity-checked graph; a failing parity check writes nothing."""
import numpy as np
import pytest
import torch

from rldt_ros.model_card import load_model_card
from rldt_ros.sampler import ChunkSampler
from rldt_train.export import ExportError
from rldt_train.export import export_policy
from rldt_train.policy.flow_policy import load_policy


def test_onnx_matches_torch_with_same_noise(exported_model, bc_checkpoint):
    card = load_model_card(exported_model)
    assert card.raw['provenance']['parity_max_abs_error'] <= 1e-4
    policy = load_policy(bc_checkpoint)
    sampler = ChunkSampler(card, providers='cpu')
    rng = np.random.default_rng(3)
    obs = policy.obs_normalizer.shift.numpy() + rng.normal(size=(5, card.state_dim)).astype(
        np.float32) * policy.obs_normalizer.scale.numpy()
    noise = rng.normal(size=(5, card.chunk_length, card.action_dim)).astype(np.float32)
    onnx_out = sampler.session.run(None, {'obs_state': obs.astype(np.float32),
                                          'noise': noise})[0]
    torch_out = policy.sample(torch.as_tensor(obs, dtype=torch.float32),
                              noise=torch.as_tensor(noise)).numpy()
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4)
    assert len(sampler.session.get_inputs()) == 2  # ONE graph: obs + noise in, actions out


def test_parity_failure_writes_nothing(tmp_path, bc_checkpoint):
    with pytest.raises(ExportError, match='parity'):
        export_policy(bc_checkpoint, tmp_path / 'm', task='cube_push', tolerance=-1.0)
    assert not (tmp_path / 'm' / 'policy.onnx').exists()


def test_wrong_task_is_refused(tmp_path, bc_checkpoint):
    with pytest.raises(ExportError, match='obs_dim'):
        export_policy(bc_checkpoint, tmp_path / 'm', task='Hopper-v5')
