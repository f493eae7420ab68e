"""ruff (pyflakes + pycodestyle at ament_flake8's 99 columns) over the whole project."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_ruff_clean():
    ruff = shutil.which('ruff') or str(Path(sys.executable).with_name('ruff'))
    if not Path(ruff).exists():
        pytest.skip('ruff is not installed (dev extra)')
    result = subprocess.run([ruff, 'check', 'rldt_ros', 'rldt_train', 'tests', 'bench',
                             'launch', 'setup.py'], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
