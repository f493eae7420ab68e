"""GPU paths. They skip here (no GPU on the development machines or in CI) and run on the
device machine: `python -m pytest tests/unit/test_gpu.py` with onnxruntime-gpu and CUDA torch."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from rldt_ros.model_card import load_model_card
from rldt_ros.sampler import ChunkSampler

needs_ort_cuda = pytest.mark.skipif(
    'CUDAExecutionProvider' not in ort.get_available_providers(),
    reason='onnxruntime has no CUDA provider here (install onnxruntime-gpu on a GPU machine)')
needs_torch_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                      reason='torch sees no CUDA GPU')


@pytest.mark.gpu
@needs_ort_cuda
def test_cuda_graph_sampler_matches_cpu(exported_model):
    """IO binding + CUDA graph replay gives the CPU result for the same (zero) noise, also
    after the inputs change (the captured graph reads the rebound buffers)."""
    card = load_model_card(exported_model)
    cuda = ChunkSampler(card, providers='cuda', deterministic=True)
    cpu = ChunkSampler(card, providers='cpu', deterministic=True)
    assert cuda.provider == 'CUDAExecutionProvider'
    cuda.warmup(3)
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs = {'state': rng.normal(size=card.state_dim)}
        np.testing.assert_allclose(cuda.sample(obs), cpu.sample(obs), atol=1e-4)


@pytest.mark.gpu
@needs_torch_cuda
def test_finetune_smoke_on_cuda(tmp_path, bc_checkpoint):
    from rldt_train.config import load_config
    from rldt_train.finetune import run_finetune
    config = load_config('config/train/smoke_cube_push.yaml',
                         ['device=cuda', 'policy.hidden_dim=256', 'policy.depth=3',
                          'policy.sampler_steps=8', 'finetune.flow_steps=8'])
    summary = run_finetune(config, tmp_path, bc_checkpoint, progress=False)
    assert summary['device'] == 'cuda'
    assert (tmp_path / 'policy_finetuned.pt').is_file()
