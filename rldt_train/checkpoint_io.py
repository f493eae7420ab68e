"""Checkpoint plumbing shared by every training loop: atomic writes and RNG state.

Payloads are plain dicts of tensors and builtins, so they load with
`torch.load(weights_only=True)`; a write goes to a temporary file renamed into place, so a run
killed mid-write leaves the previous checkpoint intact.
"""
from pathlib import Path

import torch


def atomic_save(payload: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + '.tmp')
    torch.save(payload, tmp)
    tmp.replace(path)


def rng_state() -> dict:
    """torch (and CUDA) generator states, as tensors."""
    return {'torch': torch.get_rng_state(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    if torch.cuda.is_available() and state['cuda']:
        torch.cuda.set_rng_state_all(state['cuda'])
