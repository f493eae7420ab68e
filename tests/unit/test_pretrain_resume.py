"""A BC run killed mid-way resumes from its last checkpoint and finishes."""
import os
import signal
import subprocess
import sys
import time

import torch


def test_killed_pretrain_resumes(tmp_path):
    from rldt_train.config import load_config
    from rldt_train.data.collect import run_collect
    overrides = ['collect.episodes=5', 'pretrain.steps=100000', 'pretrain.checkpoint_every=50',
                 'pretrain.eval_episodes=0', 'policy.hidden_dim=32']
    run_collect(load_config('config/train/cube_push.yaml', overrides), tmp_path / 'd.hdf5',
                progress=False)
    cmd = [sys.executable, '-m', 'rldt_train.cli', 'pretrain', '--config',
           'config/train/cube_push.yaml', '--dataset', str(tmp_path / 'd.hdf5'), '--run-dir',
           str(tmp_path / 'run'), *overrides]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_path = tmp_path / 'run' / 'checkpoints' / 'pretrain_last.pt'
    deadline = time.monotonic() + 120
    while not state_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up, like a power cut
    proc.wait()
    saved = torch.load(state_path, weights_only=True)['step']
    assert saved >= 50 and saved % 50 == 0
    short = [o if not o.startswith('pretrain.steps') else f'pretrain.steps={saved + 50}'
             for o in overrides]
    result = subprocess.run(cmd[:-len(overrides)] + short + ['--resume'], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f'resuming from step {saved}' in result.stdout
    assert f'"resumed_from": {saved}' in result.stdout
    assert torch.load(state_path, weights_only=True)['step'] == saved + 50
    assert (tmp_path / 'run' / 'policy_bc.pt').is_file()
