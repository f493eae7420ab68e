"""Model folders that must not run are refused with a reason (hand-made ONNX graphs: no
torch, so this runs on a robot computer too)."""
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import make_model
from rldt_ros.model_card import card_sha256
from rldt_ros.model_card import load_model_card
from rldt_ros.model_card import ModelCardError
from rldt_ros.model_card import write_model_card
from rldt_ros.sampler import ChunkSampler
from rldt_ros.sampler import resolve_providers

SHIPPED = Path(__file__).resolve().parents[2] / 'models' / 'cube_push'


def _edit_card(folder, edit):
    path = folder / 'policy.yaml'
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))


@pytest.fixture
def model(tmp_path):
    # A 14-d state, 4 actions, H=4 model, like the exported cube_push policy.
    return make_model(tmp_path / 'model', steps_per_chunk=4)


def test_valid_model_loads(model):
    card = load_model_card(model)
    assert card.state_dim == 14 and card.action_dim == 4 and card.chunk_length == 4
    assert card.state_joints[:4] == card.action_names
    assert np.all(card.action_low < card.action_high)
    assert len(card.raw['card_sha256']) == 64


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
        load_model_card(model, verify_files=False)


@pytest.mark.parametrize('edit', [
    lambda d: d['action']['high'].__setitem__(0, 50.0),           # widened joint limit
    lambda d: d['action'].update(control_rate_hz=40.0),           # a different rate
    lambda d: d.pop('card_sha256'),                               # checksum removed
])
def test_changed_card_content_is_refused(model, edit):
    _edit_card(model, edit)
    with pytest.raises(ModelCardError, match='card_sha256'):
        load_model_card(model)


def test_card_checksum_survives_reformatting_but_not_a_changed_value(model):
    path = model / 'policy.yaml'
    data = yaml.safe_load(path.read_text())
    path.write_text('# a comment\n' + yaml.safe_dump(data, sort_keys=True, indent=4))
    load_model_card(model)  # same content, other layout: accepted
    assert card_sha256(data) != card_sha256({**data, 'version': '9'})


def test_the_shipped_model_card_verifies():
    card = load_model_card(SHIPPED)
    assert card.raw['card_sha256'] == card_sha256(card.raw)


def test_sampler_deterministic_comes_from_the_card(tmp_path):
    folder = make_model(tmp_path / 'm')
    assert load_model_card(folder).deterministic is False  # absent: selected with noise
    data = yaml.safe_load((folder / 'policy.yaml').read_text())
    data['sampler']['deterministic'] = True
    assert write_model_card(folder, data).deterministic is True
    data['sampler']['deterministic'] = 'yes please'
    with pytest.raises(ModelCardError, match='sampler.deterministic'):
        write_model_card(folder, data)


@pytest.mark.parametrize('text, reason', [
    ('a: &x [1, 2]\nb: *x\n', 'aliases'),
    ('a: ' + '[' * 100_000 + ']' * 100_000 + '\n', 'nested deeper'),
    ('a: "' + 'x' * (2 << 20) + '"\n', 'larger than'),
    ('a: [1, 2\n', 'not valid YAML'),
])
def test_hostile_or_broken_card_yaml_is_refused_quickly_in_one_line(model, text, reason):
    path = model / 'policy.yaml'
    path.write_text(text)
    start = time.monotonic()
    with pytest.raises(ModelCardError, match=reason) as info:
        load_model_card(model)
    assert time.monotonic() - start < 2.0
    message = str(info.value)
    assert message.startswith(str(path)) and '\n' not in message


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


def test_sampler_shapes_seed_and_determinism(tmp_path):
    # A graph that uses its noise input, so seeds and determinism are visible.
    card = load_model_card(make_model(tmp_path / 'm', steps_per_chunk=4, noise_gain=1.0))
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


TRAINED = {'command_filter': {'max_delta_per_tick': 0.1}, 'action_delay_ticks': [0, 2],
           'observation_noise': {'joint_position_std': 0.01},
           'randomization': {'friction_scale': [0.8, 1.2]}}


def test_training_conditions_are_optional_and_read_when_present(tmp_path, model):
    assert load_model_card(model).training_conditions == {}  # older cards have none
    folder = make_model(tmp_path / 'trained', training_conditions=TRAINED)
    assert load_model_card(folder).training_conditions == TRAINED
    unfiltered = make_model(tmp_path / 'unfiltered',
                            training_conditions={'command_filter': None})
    assert load_model_card(unfiltered).training_conditions == {'command_filter': None}


@pytest.mark.parametrize('conditions, message', [
    ([1, 2], 'training_conditions must be a mapping'),
    ({'command_filter': {'max_delta_per_tick': -0.1}}, 'positive max_delta_per_tick'),
    ({'command_filter': {'max_delta': 0.1}}, 'positive max_delta_per_tick'),
    ({'command_filter': 0.1}, 'positive max_delta_per_tick'),
    ({'action_delay_ticks': [2, 1]}, 'action_delay_ticks'),
    ({'action_delay_ticks': 1}, 'action_delay_ticks'),
    ({'randomization': 'on'}, 'randomization must be a mapping'),
])
def test_malformed_training_conditions_are_refused_naming_the_field(model, conditions,
                                                                     message):
    _edit_card(model, lambda d: d.update(training_conditions=conditions))
    with pytest.raises(ModelCardError, match=message):
        load_model_card(model, verify_files=False)
