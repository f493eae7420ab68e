"""Fixtures of the training-side tests (torch): a small trained-and-exported cube_push model,
made once per session. Loaded by tests/conftest.py only where torch is installed."""
import pytest


@pytest.fixture(autouse=True, scope='session')
def one_torch_thread():
    """Tiny tensors everywhere: a second intra-op thread only adds synchronisation, and on a busy
    2-core machine OpenMP spin-waiting (measured: BC 2.3 vs 137 steps/s). As in TrainConfig."""
    import torch
    torch.set_num_threads(1)


@pytest.fixture(scope='session')
def bc_checkpoint(tmp_path_factory):
    """A small BC policy on 150 scripted demos (seconds on CPU)."""
    from rldt_train.config import load_config
    from rldt_train.data.collect import run_collect
    from rldt_train.pretrain import run_pretrain
    root = tmp_path_factory.mktemp('bc')
    config = load_config('config/train/cube_push.yaml',
                         ['collect.episodes=150', 'collect.noise_std=0.1', 'pretrain.steps=2000',
                          'pretrain.eval_episodes=0',
                          'pretrain.checkpoint_every=1000'])
    run_collect(config, root / 'demos.hdf5', progress=False)
    summary = run_pretrain(config, root / 'demos.hdf5', root / 'run', progress=False)
    return summary['policy']


@pytest.fixture(scope='session')
def exported_model(tmp_path_factory, bc_checkpoint):
    from rldt_train.export import export_policy
    return export_policy(bc_checkpoint, tmp_path_factory.mktemp('models') / 'tiny',
                         task='cube_push')
