"""Shared fixtures. Robot-side tests must run where torch is not installed (a robot computer,
`colcon test`): there, test modules that import torch or rldt_train are not collected, and the
training fixtures (tests/training_fixtures.py) are not loaded. Nothing here imports torch."""
import importlib.util
import re

import numpy as np
import pytest

HAVE_TORCH = importlib.util.find_spec('torch') is not None
TRAINING_IMPORT = re.compile(r'^\s*(from|import)\s+(torch|rldt_train)\b', re.MULTILINE)

pytest_plugins = ['training_fixtures'] if HAVE_TORCH else []


def pytest_ignore_collect(collection_path, config):
    """Without torch, leave out the training side's test modules (they import it)."""
    if HAVE_TORCH or collection_path.suffix != '.py' or \
            not collection_path.name.startswith('test_'):
        return None
    return bool(TRAINING_IMPORT.search(collection_path.read_text())) or None


def pytest_report_header(config):
    if not HAVE_TORCH:
        return ('torch is not installed: robot-side tests only (modules importing torch or '
                'rldt_train are not collected)')
    return None


@pytest.fixture
def rng():
    return np.random.default_rng(0)
