import pytest

from rldt_train.config import ConfigError
from rldt_train.config import load_config
from rldt_train.config import save_config


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text('task: Hopper-v5\npretrain:\n  steps: 10\n')
    config = load_config(path, ['pretrain.steps=20', 'seed=3', 'pretrain.lr=1e-3'])
    assert (config.task, config.pretrain.steps, config.seed) == ('Hopper-v5', 20, 3)
    assert config.pretrain.lr == pytest.approx(1e-3)
    save_config(config, tmp_path / 'saved.yaml')
    assert load_config(tmp_path / 'saved.yaml') == config


def test_unknown_key_and_wrong_type_are_errors(tmp_path):
    with pytest.raises(ConfigError, match='pretrain.stepz'):
        load_config(None, ['pretrain.stepz=1'])
    with pytest.raises(ConfigError, match='must be int'):
        load_config(None, ['pretrain.steps=abc'])
    with pytest.raises(ValueError, match='ema_decay'):
        load_config(None, ['pretrain.ema_decay=1.5'])


def test_shipped_configs_load():
    from pathlib import Path
    for path in sorted(Path('config/train').glob('*.yaml')):
        load_config(path)
