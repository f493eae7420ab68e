"""The robot side must never import torch: it runs on robot computers without it."""
import pkgutil
import subprocess
import sys

import rldt_ros


def test_rldt_ros_never_imports_torch():
    modules = [m.name for m in pkgutil.walk_packages(rldt_ros.__path__, 'rldt_ros.')]
    assert 'rldt_ros.model_card' in modules and 'rldt_ros.sampler' in modules
    code = ('import importlib, sys\n'
            f'for name in {modules!r}:\n'
            '    importlib.import_module(name)\n'
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')"
            " or m.startswith('rldt_train'))\n"
            'print(bad)\n'
            'sys.exit(1 if bad else 0)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
