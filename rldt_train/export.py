"""ONNX export: one graph per action chunk, a model card, and a parity check that must pass.

The graph is encode(obs) (normalize the state; camera models: each uint8 NHWC image through its
encoder, once) -> N unrolled Euler steps of the velocity net -> un-normalize
(docs/architecture.md 3). Parity: ONNX Runtime and torch get the same observations, images and
noise; the largest absolute difference must be <= tolerance, or nothing is written.
"""
import datetime
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import yaml
from torch import nn

from rldt_ros.model_card import POLICY_FILE
from rldt_ros.model_card import write_model_card
from rldt_ros.randomization import Randomization
from rldt_train.finetune import EVALUATION_FILE
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import load_policy
from rldt_train.task_spec import task_spec


class ExportError(RuntimeError):
    """Export refused (parity failed or bad arguments); nothing was written."""


def _training_record(checkpoint: Path) -> dict:
    """What the run left beside the checkpoint: its resolved config, the checkpoint's notes
    and, for a fine-tuning run, its final evaluation (both sampling modes, 95% intervals)."""
    record = {}
    config_path = checkpoint.parent / 'config.yaml'
    if config_path.is_file():
        with open(config_path) as f:
            record['training_config'] = yaml.safe_load(f)
    extra = torch.load(checkpoint, map_location='cpu', weights_only=True).get('extra') or {}
    if extra:
        record['training'] = extra
    evaluation_path = checkpoint.parent / EVALUATION_FILE
    if evaluation_path.is_file() and extra.get('kind') == 'selected':
        with open(evaluation_path) as f:
            record['evaluation'] = json.load(f)
    return record


def training_conditions(record: dict) -> dict | None:
    """The model card's `training_conditions`: the command filter, action delay, observation
    noise and randomization the policy was trained under, so the policy node can warn when it
    runs under others. From the run's config (its env section); for a BC policy from the
    conditions its demonstrations were collected under (the dataset's env_args). None when the
    run left no config beside the checkpoint (unknown, not nominal)."""
    config = record.get('training_config')
    if not isinstance(config, dict):
        return None
    env = config.get('env') or {}
    env_args = (record.get('training') or {}).get('env_args')
    if env_args is not None:  # behaviour cloning: the dataset's conditions, nominal if none
        env = (json.loads(env_args).get('env_kwargs') or {}).get('conditions') or {}
    randomization = Randomization.from_dict(env.get('randomization'))
    cap = float(env.get('max_delta_per_tick') or 0.0)
    return {'command_filter': {'max_delta_per_tick': cap} if cap else None,
            'action_delay_ticks': [int(v) for v in env.get('action_delay_ticks', [0, 0])],
            'observation_noise': {
                'joint_position_std': randomization.joint_position_noise_std,
                'joint_velocity_std': randomization.joint_velocity_noise_std,
                'image_std': randomization.image_noise_std},
            'randomization': randomization.to_dict()}


class ChunkGraph(nn.Module):
    """(obs_state (B, D) robot units, noise (B, H, A), one uint8 (B, h, w, 3) RGB image per
    camera in `input_names` order) -> actions (B, H, A) robot units."""

    def __init__(self, policy: FlowPolicy, steps: int):
        super().__init__()
        self.policy = policy
        self.steps = steps
        self.cameras = list(policy.config.cameras)
        self.input_names = ['obs_state', 'noise'] + [f'obs_{c}' for c in self.cameras]

    def forward(self, obs_state: torch.Tensor, noise: torch.Tensor, *images: torch.Tensor
                ) -> torch.Tensor:
        obs = {'state': obs_state, **dict(zip(self.cameras, images))} if self.cameras \
            else obs_state
        cond = self.policy.encode(obs)  # once per chunk: the encoder is not in the Euler loop
        x = noise
        ones = torch.ones_like(noise[:, 0, 0])  # (B,), keeps the batch dimension dynamic
        for k in range(self.steps):
            x = x + self.policy.velocity(x, ones * (k / self.steps), cond) / self.steps
        return self.policy.unnormalize_actions(x, obs_state)

    def example_inputs(self, batch: int, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, ...]:
        """Random inputs: states around the data statistics, N(0, I) noise, random pixels."""
        cfg = self.policy.config
        norm = self.policy.obs_normalizer
        state = norm.shift + norm.scale * torch.randn(batch, cfg.obs_dim, generator=generator)
        noise = torch.randn(batch, cfg.horizon, cfg.action_dim, generator=generator)
        images = [torch.randint(0, 256, (batch, *cfg.image_size, 3), generator=generator,
                                dtype=torch.uint8) for _ in self.cameras]
        return (state, noise, *images)


def parity_error(onnx_path: Path, graph: ChunkGraph, batch: int = 4, seed: int = 0) -> float:
    """Max |ORT - torch| over random observations (and images) with the same noise."""
    inputs = graph.example_inputs(batch, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = graph(*inputs).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    got = session.run(None, {name: value.numpy()
                             for name, value in zip(graph.input_names, inputs)})[0]
    return float(np.max(np.abs(got - expected)))


def camera_entries(policy: FlowPolicy) -> list[dict]:
    """The model card's cameras: what the graph's obs_<camera> inputs expect, and from where."""
    cfg = policy.config
    return [{'name': c, 'topic': f'{c}/image_raw', 'height': int(cfg.image_size[0]),
             'width': int(cfg.image_size[1]), 'encoding': 'rgb8'} for c in cfg.cameras]


def export_policy(checkpoint: str | Path, out_dir: str | Path, task: str, name: str | None = None,
                  steps: int | None = None, steps_per_chunk: int | None = None,
                  tolerance: float = 1e-4, provenance: dict | None = None,
                  deploy_mode: str | None = None) -> Path:
    """Write out_dir/policy.onnx + policy.yaml from a policy checkpoint (EMA weights).

    deploy_mode: 'deterministic' or 'stochastic', written into the card as
    sampler.deterministic (the policy node's default follows it); None: the mode the
    fine-tuning run chose (evaluation.json beside the checkpoint), else stochastic.
    """
    if deploy_mode not in (None, 'deterministic', 'stochastic'):
        raise ExportError(f"deploy_mode must be 'deterministic' or 'stochastic', "
                          f'got {deploy_mode!r}')
    out_dir = Path(out_dir)
    record = _training_record(Path(checkpoint))
    if deploy_mode is None:
        deploy_mode = record.get('evaluation', {}).get('deploy_mode', 'stochastic')
    policy = load_policy(checkpoint).eval()
    cfg = policy.config
    steps = steps or cfg.sampler_steps
    steps_per_chunk = steps_per_chunk or cfg.horizon
    spec = task_spec(task)
    if spec.state_dim != cfg.obs_dim or len(spec.action_names) != cfg.action_dim:
        raise ExportError(f'checkpoint has obs_dim {cfg.obs_dim}, action_dim {cfg.action_dim}; '
                          f'task {task} has {spec.state_dim}, {len(spec.action_names)}')
    unknown = sorted(set(cfg.cameras) - set(spec.cameras))
    if unknown or (cfg.cameras and list(spec.image_size) != list(cfg.image_size)):
        raise ExportError(f'checkpoint sees cameras {cfg.cameras} at {cfg.image_size}; task '
                          f'{task} observes {spec.cameras} at {spec.image_size}')
    conditions = training_conditions(record)
    graph = ChunkGraph(policy, steps).eval()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        onnx_path = tmp_dir / POLICY_FILE
        example = graph.example_inputs(1, torch.Generator().manual_seed(0))
        torch.onnx.export(graph, example, str(onnx_path),
                          input_names=graph.input_names, output_names=['actions'],
                          opset_version=17, dynamo=False,
                          dynamic_axes={name: {0: 'batch'}
                                        for name in graph.input_names + ['actions']})
        error = parity_error(onnx_path, graph)
        if not error <= tolerance:
            raise ExportError(f'ONNX parity check failed: max |ORT - torch| = {error:.3g} > '
                              f'{tolerance:g}; nothing written')
        card = {
            'name': name or out_dir.name,
            'version': '0.1.0',
            'task': task,
            'observation': {'state': {'joints': spec.state_joints, 'fields': spec.state_fields,
                                      'dim': spec.state_dim},
                            'cameras': camera_entries(policy)},
            'action': {'dim': cfg.action_dim, 'names': spec.action_names,
                       'units': spec.action_units,
                       'low': [float(v) for v in spec.action_low],
                       'high': [float(v) for v in spec.action_high],
                       'chunk_length': cfg.horizon, 'steps_per_chunk': steps_per_chunk,
                       'control_rate_hz': spec.control_rate_hz},
            'sampler': {'steps': steps, 'method': 'euler', 'noise': 'gaussian',
                        'deterministic': deploy_mode == 'deterministic'},
            'files': {POLICY_FILE: {}},
            **({'training_conditions': conditions} if conditions is not None else {}),
            'provenance': {'checkpoint': str(checkpoint), 'policy': dict(vars(cfg)),
                           **record,
                           'parity_max_abs_error': error,
                           'exported_at': datetime.datetime.now(datetime.timezone.utc)
                           .isoformat(timespec='seconds'),
                           **(provenance or {})},
        }
        write_model_card(tmp_dir, card)
        out_dir.mkdir(parents=True, exist_ok=True)
        for file in (POLICY_FILE, 'policy.yaml'):
            shutil.copy2(tmp_dir / file, out_dir / file)
    return out_dir
