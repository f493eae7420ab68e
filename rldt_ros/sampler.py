"""ONNX Runtime chunk sampler: one graph run = one action chunk in robot units.

The exported graph already contains normalization, N unrolled Euler steps and
un-normalization (docs/architecture.md section 3), so sampling is: make noise, bind inputs, run.
On CUDA the session uses IO binding with fixed device buffers and CUDA graphs (a replayed graph
removes per-kernel launch cost, the dominant cost for small policies); on CPU a plain run is
fastest.
"""
import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rldt_ros.model_card import ModelCard

LOG = logging.getLogger(__name__)

PROVIDER_ALIASES = {
    'tensorrt': 'TensorrtExecutionProvider',
    'cuda': 'CUDAExecutionProvider',
    'cpu': 'CPUExecutionProvider',
}
AUTO_ORDER = ('TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider')


def resolve_providers(requested: str | list[str] | tuple[str, ...]) -> list[str]:
    """Requested providers (aliases, names, or 'auto') -> the available ones, in order.

    A requested provider that this onnxruntime build lacks is dropped with a warning; CPU is
    always appended last so a session can always be made.
    """
    available = ort.get_available_providers()
    if isinstance(requested, str):
        requested = AUTO_ORDER if requested == 'auto' else [
            p.strip() for p in requested.split(',') if p.strip()]
    names = []
    for item in requested:
        name = PROVIDER_ALIASES.get(item.lower(), item)
        if name not in available:
            if requested is not AUTO_ORDER:
                LOG.warning('execution provider %s is not available (have: %s); falling back',
                            name, ', '.join(available))
            continue
        if name not in names:
            names.append(name)
    if 'CPUExecutionProvider' not in names:
        names.append('CPUExecutionProvider')
    return names


def _provider_options(name: str, cache_dir: Path) -> dict:
    if name == 'CUDAExecutionProvider':
        return {'enable_cuda_graph': '1'}
    if name == 'TensorrtExecutionProvider':
        return {'trt_engine_cache_enable': 'True', 'trt_engine_cache_path': str(cache_dir),
                'trt_cuda_graph_enable': 'True'}
    return {}


class ChunkSampler:
    """Samples action chunks (H, A) from a model folder's policy.onnx.

    Args:
        card: the validated model card.
        providers: 'auto' (TensorRT, CUDA, CPU as available), an alias ('cuda', 'cpu'),
            a comma-separated string or a list of provider names.
        seed: seed of the noise generator (runs are reproducible).
        deterministic: x0 = 0 instead of Gaussian noise (the policy's mode-like output).
        intra_op_threads: ORT CPU threads; 0 lets ORT decide. On a robot computer 1-2 keeps
            the control loop's core free.
    """

    def __init__(self, card: ModelCard, providers: str | list[str] = 'auto', seed: int = 0,
                 deterministic: bool = False, intra_op_threads: int = 0):
        self.card = card
        self.deterministic = deterministic
        self._rng = np.random.default_rng(seed)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        cache_dir = Path(os.environ.get('RLDT_CACHE', Path.home() / '.cache' / 'rldt_ros'))
        names = resolve_providers(providers)
        if 'TensorrtExecutionProvider' in names:
            cache_dir.mkdir(parents=True, exist_ok=True)
        provider_list = [(n, _provider_options(n, cache_dir)) for n in names]
        self.session = ort.InferenceSession(str(card.policy_path), options,
                                            providers=provider_list)
        self.provider = self.session.get_providers()[0]
        self._check_io()
        self._binding = None
        if self.provider in ('CUDAExecutionProvider', 'TensorrtExecutionProvider'):
            self._binding = _DeviceBinding(self.session, card, self._input_shapes(1))

    def _input_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        shapes = {'obs_state': (batch, self.card.state_dim),
                  'noise': (batch, self.card.chunk_length, self.card.action_dim)}
        for camera in self.card.cameras:
            shapes[camera.input_name] = (batch, camera.height, camera.width, 3)
        return shapes

    def _check_io(self) -> None:
        """The graph must match the card: a mismatch here is a wrong or tampered model."""
        from rldt_ros.model_card import ModelCardError
        inputs = {i.name: i for i in self.session.get_inputs()}
        expected = self._input_shapes(1)
        if set(inputs) != set(expected):
            raise ModelCardError(f'{self.card.policy_path}: graph inputs {sorted(inputs)} do '
                                 f'not match the model card {sorted(expected)}')
        for name, shape in expected.items():
            declared = inputs[name].shape
            if len(declared) != len(shape) or any(
                    isinstance(d, int) and d != s for d, s in zip(declared[1:], shape[1:])):
                raise ModelCardError(f'{self.card.policy_path}: input {name} has shape '
                                     f'{declared}, model card says (B, {shape[1:]})')
        outputs = [o.name for o in self.session.get_outputs()]
        if outputs != ['actions']:
            raise ModelCardError(f'{self.card.policy_path}: outputs {outputs}, expected '
                                 "['actions']")

    def noise(self, batch: int) -> np.ndarray:
        shape = (batch, self.card.chunk_length, self.card.action_dim)
        if self.deterministic:
            return np.zeros(shape, np.float32)
        return self._rng.standard_normal(shape, dtype=np.float32)

    def _feed(self, obs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        feed = {'obs_state': np.ascontiguousarray(obs['state'], dtype=np.float32).reshape(
            batch, self.card.state_dim), 'noise': self.noise(batch)}
        for camera in self.card.cameras:
            image = np.ascontiguousarray(obs[camera.name], dtype=np.uint8)
            feed[camera.input_name] = image.reshape(batch, camera.height, camera.width, 3)
        return feed

    def sample(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One chunk (H, A) float64 in robot units. obs: 'state' (D,), '<camera>' (h, w, 3)."""
        feed = self._feed(obs, 1)
        if self._binding is not None:
            return self._binding.run(feed)[0].astype(np.float64)
        return self.session.run(None, feed)[0][0].astype(np.float64)

    def sample_batch(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Chunks (B, H, A) for batched observations (evaluation; not the real-time path)."""
        batch = len(obs['state'])
        feed = self._feed(obs, batch)
        if self._binding is not None:  # the CUDA graph is captured for batch 1
            return np.stack([self._binding.run({k: v[i:i + 1] for k, v in feed.items()})[0]
                             for i in range(batch)]).astype(np.float64)
        return self.session.run(None, feed)[0].astype(np.float64)

    def warmup(self, runs: int = 5) -> None:
        """First runs build kernels / capture the CUDA graph; keep them off the control loop."""
        obs = {'state': np.zeros(self.card.state_dim, np.float32)}
        for camera in self.card.cameras:
            obs[camera.name] = np.zeros((camera.height, camera.width, 3), np.uint8)
        for _ in range(runs):
            self.sample(obs)


class _DeviceBinding:
    """Fixed device buffers bound once, so CUDA graphs can replay (needs stable addresses)."""

    def __init__(self, session: ort.InferenceSession, card: ModelCard,
                 shapes: dict[str, tuple[int, ...]]):
        self.session = session
        self.binding = session.io_binding()
        self.inputs = {}
        for name, shape in shapes.items():
            dtype = np.uint8 if name.startswith('obs_') and name != 'obs_state' else np.float32
            value = ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, dtype), 'cuda', 0)
            self.binding.bind_ortvalue_input(name, value)
            self.inputs[name] = value
        out_shape = (1, card.chunk_length, card.action_dim)
        self.output = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, np.float32, 'cuda', 0)
        self.binding.bind_ortvalue_output('actions', self.output)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        for name, array in feed.items():
            self.inputs[name].update_inplace(array)
        self.session.run_with_iobinding(self.binding)
        return self.output.numpy()
