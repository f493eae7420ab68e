"""The model folder contract (docs/architecture.md 3): load, validate and write policy.yaml.

A model folder holds `policy.onnx` (one graph per action chunk) and `policy.yaml` (this card).
Readers refuse unknown major format versions, missing files, bad checksums and inconsistent
shapes with a `ModelCardError` that says which field is wrong: a robot must never run a model it
cannot vouch for. The card's own content is checksummed too (`card_sha256`), so widened joint
limits or a different control rate are caught like a changed graph.
"""
import hashlib
import json
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rldt_ros.safe_yaml import load_yaml
from rldt_ros.safe_yaml import YamlError

FORMAT_VERSION = 1
CARD_FILE = 'policy.yaml'
POLICY_FILE = 'policy.onnx'
CARD_CHECKSUM = 'card_sha256'
ENCODINGS = ('rgb8', 'bgr8', 'mono8', '16UC1')


class ModelCardError(ValueError):
    """A model folder that must not be run, with the reason."""


@dataclass(frozen=True)
class CameraSpec:
    """One camera input: ONNX input `obs_<name>` is uint8 (B, height, width, 3) RGB."""

    name: str
    topic: str
    height: int
    width: int
    encoding: str = 'rgb8'

    @property
    def input_name(self) -> str:
        return f'obs_{self.name}'


@dataclass(frozen=True)
class ModelCard:
    """Validated contents of policy.yaml (arrays are float64, robot units)."""

    folder: Path
    name: str
    version: str
    task: str
    state_joints: tuple[str, ...]
    state_fields: tuple[str, ...]
    state_dim: int
    cameras: tuple[CameraSpec, ...]
    action_dim: int
    action_names: tuple[str, ...]
    action_units: tuple[str, ...]
    action_low: np.ndarray
    action_high: np.ndarray
    chunk_length: int
    steps_per_chunk: int
    control_rate_hz: float
    sampler_steps: int
    deterministic: bool
    raw: dict
    training_conditions: dict = field(default_factory=dict)
    """What the model was trained under (optional card section; {} when absent):
    command_filter ({max_delta_per_tick} or None: trained without one), action_delay_ticks
    ([min, max]), observation_noise and randomization (free-form mappings)."""

    @property
    def policy_path(self) -> Path:
        return self.folder / POLICY_FILE


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def card_sha256(data: dict) -> str:
    """sha256 of the card's content without its own checksum field.

    Canonical JSON (sorted keys, no spaces) of what YAML parsed, so the checksum survives
    re-formatting, key order and comments but not a changed value.
    """
    content = {k: v for k, v in data.items() if k != CARD_CHECKSUM}
    text = json.dumps(content, sort_keys=True, separators=(',', ':'), ensure_ascii=True,
                      default=str)
    return hashlib.sha256(text.encode('ascii')).hexdigest()


def _get(data: dict, dotted: str) -> Any:
    node: Any = data
    for part in dotted.split('.'):
        if not isinstance(node, dict) or part not in node:
            raise ModelCardError(f'{CARD_FILE}: missing field {dotted!r}')
        node = node[part]
    return node


def _positive_int(data: dict, dotted: str) -> int:
    value = _get(data, dotted)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ModelCardError(f'{CARD_FILE}: {dotted} must be a positive integer, got {value!r}')
    return value


def _parse_cameras(items: Any) -> tuple[CameraSpec, ...]:
    if not isinstance(items, list):
        raise ModelCardError(f'{CARD_FILE}: observation.cameras must be a list, got {items!r}')
    cameras = []
    for i, item in enumerate(items):
        try:
            camera = CameraSpec(name=str(item['name']), topic=str(item['topic']),
                                height=int(item['height']), width=int(item['width']),
                                encoding=str(item.get('encoding', 'rgb8')))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelCardError(f'{CARD_FILE}: observation.cameras[{i}] needs name, topic, '
                                 f'height, width ({exc})') from exc
        if camera.encoding not in ENCODINGS:
            raise ModelCardError(f'{CARD_FILE}: camera {camera.name!r} has unknown encoding '
                                 f'{camera.encoding!r}; known: {", ".join(ENCODINGS)}')
        if camera.height < 1 or camera.width < 1:
            raise ModelCardError(f'{CARD_FILE}: camera {camera.name!r} has size '
                                 f'{camera.height}x{camera.width}')
        cameras.append(camera)
    return tuple(cameras)


def _parse_units(units: Any, action_dim: int) -> tuple[str, ...]:
    """One unit for all joints ('rad') or one per joint (['rad', 'rad', 'm'])."""
    if isinstance(units, str):
        return (units,) * action_dim
    if not isinstance(units, list) or len(units) != action_dim:
        raise ModelCardError(f'{CARD_FILE}: action.units must be a string or a list of '
                             f'{action_dim} strings, got {units!r}')
    return tuple(str(u) for u in units)


def _parse_training_conditions(conditions: Any) -> dict:
    """The optional `training_conditions` section; the node compares its command filter with
    its own, so that part is checked strictly, the rest only for being mappings."""
    where = f'{CARD_FILE}: training_conditions'
    if conditions is None:
        return {}
    if not isinstance(conditions, dict):
        raise ModelCardError(f'{where} must be a mapping, got {conditions!r}')
    command_filter = conditions.get('command_filter')
    if command_filter is not None:
        delta = command_filter.get('max_delta_per_tick') if isinstance(command_filter, dict) \
            else None
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or \
                not np.isfinite(delta) or delta <= 0:
            raise ModelCardError(f'{where}.command_filter must be null or a mapping with a '
                                 f'positive max_delta_per_tick, got {command_filter!r}')
    delay = conditions.get('action_delay_ticks')
    if delay is not None and not (
            isinstance(delay, list) and len(delay) == 2
            and all(isinstance(d, int) and not isinstance(d, bool) for d in delay)
            and 0 <= delay[0] <= delay[1]):
        raise ModelCardError(f'{where}.action_delay_ticks must be [min, max] with '
                             f'0 <= min <= max, got {delay!r}')
    for key in ('observation_noise', 'randomization'):
        if conditions.get(key) is not None and not isinstance(conditions[key], dict):
            raise ModelCardError(f'{where}.{key} must be a mapping, got {conditions[key]!r}')
    return conditions


def parse_model_card(data: dict, folder: str | Path) -> ModelCard:
    """Validate a card's fields (not the files) and build a ModelCard."""
    folder = Path(folder)
    if not isinstance(data, dict):
        raise ModelCardError(f'{CARD_FILE}: expected a mapping at the top level')
    version = _get(data, 'format_version')
    if not isinstance(version, int) or version != FORMAT_VERSION:
        raise ModelCardError(f'{CARD_FILE}: format_version {version!r} is not supported by this '
                             f'rldt_ros (supports {FORMAT_VERSION}); upgrade rldt_ros or '
                             're-export')
    joints = tuple(str(j) for j in _get(data, 'observation.state.joints'))
    fields = tuple(str(f) for f in _get(data, 'observation.state.fields'))
    state_dim = _positive_int(data, 'observation.state.dim')
    for f in fields:
        if f not in ('position', 'velocity'):
            raise ModelCardError(f'{CARD_FILE}: observation.state.fields has unknown {f!r}')
    if joints and len(joints) * len(fields) != state_dim:
        raise ModelCardError(f'{CARD_FILE}: observation.state.dim is {state_dim} but '
                             f'{len(joints)} joints x {len(fields)} fields = '
                             f'{len(joints) * len(fields)}')
    action_dim = _positive_int(data, 'action.dim')
    names = tuple(str(n) for n in _get(data, 'action.names'))
    low = np.asarray(_get(data, 'action.low'), dtype=np.float64)
    high = np.asarray(_get(data, 'action.high'), dtype=np.float64)
    for label, arr in (('names', names), ('low', low), ('high', high)):
        if len(arr) != action_dim:
            raise ModelCardError(f'{CARD_FILE}: action.{label} has {len(arr)} entries, '
                                 f'action.dim is {action_dim}')
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low <= high)):
        raise ModelCardError(f'{CARD_FILE}: action.low/high must be finite with low <= high')
    chunk_length = _positive_int(data, 'action.chunk_length')
    steps_per_chunk = _positive_int(data, 'action.steps_per_chunk')
    if steps_per_chunk > chunk_length:
        raise ModelCardError(f'{CARD_FILE}: action.steps_per_chunk ({steps_per_chunk}) exceeds '
                             f'action.chunk_length ({chunk_length})')
    rate = float(_get(data, 'action.control_rate_hz'))
    if not rate > 0:
        raise ModelCardError(f'{CARD_FILE}: action.control_rate_hz must be > 0, got {rate}')
    sampler_steps = _positive_int(data, 'sampler.steps')
    # The sampling mode the model was selected in (x0 = 0 vs Gaussian noise); older cards
    # have no such field and were selected with noise.
    deterministic = _get(data, 'sampler').get('deterministic', False)
    if not isinstance(deterministic, bool):
        raise ModelCardError(f'{CARD_FILE}: sampler.deterministic must be true or false, '
                             f'got {deterministic!r}')
    return ModelCard(
        folder=folder, name=str(_get(data, 'name')), version=str(_get(data, 'version')),
        task=str(_get(data, 'task')), state_joints=joints, state_fields=fields,
        state_dim=state_dim, cameras=_parse_cameras(data['observation'].get('cameras', [])),
        action_dim=action_dim, action_names=names,
        action_units=_parse_units(data['action'].get('units', ''), action_dim),
        action_low=low, action_high=high,
        chunk_length=chunk_length, steps_per_chunk=steps_per_chunk, control_rate_hz=rate,
        sampler_steps=sampler_steps, deterministic=deterministic,
        raw=data,
        training_conditions=_parse_training_conditions(data.get('training_conditions')))


def load_model_card(folder: str | Path, verify_files: bool = True) -> ModelCard:
    """Read and validate `folder/policy.yaml`; with verify_files, check every sha256 too
    (the card's content first: nothing in a changed card can be trusted, not even its
    list of files)."""
    folder = Path(folder)
    card_path = folder / CARD_FILE
    if not folder.is_dir():
        raise ModelCardError(f'model folder {folder} does not exist')
    if not card_path.is_file():
        raise ModelCardError(f'{folder}: no {CARD_FILE} (is this a model folder?)')
    try:
        data = load_yaml(card_path)
    except YamlError as exc:
        raise ModelCardError(str(exc)) from exc
    if verify_files and isinstance(data, dict):
        expected = data.get(CARD_CHECKSUM)
        if expected is None:
            raise ModelCardError(f'{card_path}: no {CARD_CHECKSUM}: the card cannot be '
                                 'verified (re-export the model)')
        actual = card_sha256(data)
        if expected != actual:
            raise ModelCardError(f'{card_path}: content sha256 {actual[:12]}... does not match '
                                 f'{CARD_CHECKSUM} ({str(expected)[:12]}...): card changed '
                                 'or corrupt')
    card = parse_model_card(data, folder)
    files = _get(data, 'files')
    if not isinstance(files, dict) or POLICY_FILE not in files:
        raise ModelCardError(f'{CARD_FILE}: files must list {POLICY_FILE} with its sha256')
    if verify_files:
        for name, entry in files.items():
            path = folder / name
            if not path.is_file():
                raise ModelCardError(f'{folder}: {name} is listed in {CARD_FILE} but missing')
            expected = entry.get('sha256') if isinstance(entry, dict) else None
            actual = sha256_file(path)
            if expected != actual:
                raise ModelCardError(f'{path}: sha256 {actual[:12]}... does not match the model '
                                     f'card ({str(expected)[:12]}...): file changed or corrupt')
    return card


def write_model_card(folder: str | Path, data: dict) -> ModelCard:
    """Fill in sha256 for every file under `files` and for the card's content, validate, and
    write policy.yaml."""
    folder = Path(folder)
    data = {k: v for k, v in data.items() if k != CARD_CHECKSUM}
    data['format_version'] = FORMAT_VERSION
    data['files'] = {name: {'sha256': sha256_file(folder / name)}
                     for name in data.get('files', {POLICY_FILE: {}})}
    parse_model_card(data, folder)
    # Checksum what a reader will parse: the YAML round trip of `data` (tuples become lists).
    data[CARD_CHECKSUM] = card_sha256(yaml.safe_load(yaml.safe_dump(data, sort_keys=False)))
    tmp = folder / (CARD_FILE + '.tmp')
    with open(tmp, 'w') as f:
        yaml.safe_dump(data, f, sort_keys=False)
    tmp.replace(folder / CARD_FILE)
    return load_model_card(folder)
