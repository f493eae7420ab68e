"""Model folders that must not run are refused with a reason."""
import shutil

import numpy as np
import pytest
import yaml

from rldt_ros.model_card import ModelCardError
from rldt_ros.model_card import load_model_card
from rldt_ros.sampler import ChunkSampler
from rldt_ros.sampler import resolve_providers


def _edit_card(folder, edit):
    path = folder / 'policy.yaml'
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))


@pytest.fixture
def model(tmp_path, exported_model):
    folder = tmp_path / 'model'
    shutil.copytree(exported_model, folder)
    return folder


def test_valid_model_loads(model):
    card = load_model_card(model)
    assert card.state_dim == 14 and card.action_dim == 4 and card.chunk_length == 4
    assert card.state_joints[:4] == card.action_names
    assert np.all(card.action_low < card.action_high)


def test_missing_folder_and_files(tmp_path, model):
    with pytest.raises(ModelCardError, match='does not exist'):
        load_model_card(tmp_path / 'nope')
    (model / 'policy.onnx').unlink()
    with pytest.raises(ModelCardError, match='missing'):
        load_model_card(model)


def test_tampered_onnx_is_refused(model):
    with open(model / 'policy.onnx', 'ab') as f:
        f.write(b'\0')
    with pytest.raises(ModelCardError, match='sha256'):
        load_model_card(model)


def test_unknown_major_version(model):
    _edit_card(model, lambda d: d.update(format_version=2))
    with pytest.raises(ModelCardError, match='format_version 2'):
        load_model_card(model)


@pytest.mark.parametrize('edit, message', [
    (lambda d: d['action'].update(dim=5), 'action.names has 4 entries'),
    (lambda d: d['observation']['state'].update(dim=13), 'observation.state.dim'),
    (lambda d: d['action'].update(steps_per_chunk=9), 'steps_per_chunk'),
    (lambda d: d['action'].pop('low'), "missing field 'action.low'"),
    (lambda d: d['observation'].update(cameras=[{'name': 'c', 'topic': 't', 'height': 8,
                                                 'width': 8, 'encoding': 'yuv422'}]),
     'unknown encoding'),
])
def test_inconsistent_cards(model, edit, message):
    _edit_card(model, edit)
    with pytest.raises(ModelCardError, match=message):
        load_model_card(model, verify_files=False)


def test_graph_card_mismatch_is_refused(model):
    # A camera in the card that the graph does not have: a wrong model for this card.
    _edit_card(model, lambda d: d['observation'].update(
        cameras=[{'name': 'front', 'topic': 'front/image_raw', 'height': 8, 'width': 8}]))
    card = load_model_card(model, verify_files=False)
    with pytest.raises(ModelCardError, match='graph inputs'):
        ChunkSampler(card, providers='cpu')


def test_sampler_shapes_seed_and_determinism(exported_model):
    card = load_model_card(exported_model)
    obs = {'state': np.zeros(card.state_dim)}
    a = ChunkSampler(card, providers='cpu', seed=1)
    b = ChunkSampler(card, providers='cpu', seed=1)
    chunk = a.sample(obs)
    assert chunk.shape == (4, 4) and chunk.dtype == np.float64
    np.testing.assert_array_equal(chunk, b.sample(obs))
    det = ChunkSampler(card, providers='cpu', deterministic=True)
    np.testing.assert_array_equal(det.sample(obs), det.sample(obs))
    batch = a.sample_batch({'state': np.zeros((3, card.state_dim))})
    assert batch.shape == (3, 4, 4)


def test_unavailable_provider_falls_back_to_cpu(caplog):
    import onnxruntime as ort
    if 'TensorrtExecutionProvider' in ort.get_available_providers():
        pytest.skip('TensorRT is available here: nothing to fall back from')
    with caplog.at_level('WARNING'):
        assert resolve_providers('tensorrt') == ['CPUExecutionProvider']
    assert 'TensorrtExecutionProvider is not available' in caplog.text
    assert resolve_providers('cpu') == ['CPUExecutionProvider']
    assert resolve_providers('auto')[-1] == 'CPUExecutionProvider'
