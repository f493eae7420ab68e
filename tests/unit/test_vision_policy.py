"""Camera policies: augmentation only in training, one encoding per state, images that matter,
and an ONNX graph (uint8 NHWC inputs) that agrees with torch on rendered frames."""
import numpy as np
import pytest
import torch
from torch import nn

from rldt_ros.model_card import load_model_card
from rldt_ros.sampler import ChunkSampler
from rldt_train.export import export_policy
from rldt_train.policy.encoders import ImageEncoder
from rldt_train.policy.encoders import RandomShift
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import PolicyConfig
from rldt_train.policy.flow_policy import load_policy
from rldt_train.policy.flow_policy import save_policy


def _images(batch: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, size, size, 3), generator=gen, dtype=torch.uint8)


def _small(cameras=('front',), size=32, **kw) -> PolicyConfig:
    return PolicyConfig(obs_dim=3, action_dim=2, horizon=2, hidden_dim=32, depth=2,
                        cameras=list(cameras), image_size=[size, size], image_features=8,
                        image_channels=8, **kw)


def test_random_shift_is_pad_then_crop_in_training_and_identity_in_eval():
    images = _images(6)
    shift = RandomShift(2).train()
    torch.manual_seed(5)
    out = shift(images)
    torch.manual_seed(5)
    dy, dx = torch.randint(-2, 3, (2, 6, 1))
    padded = nn.functional.pad(images.permute(0, 3, 1, 2).float(), (2,) * 4, mode='replicate')
    for b in range(6):
        y, x = int(dy[b]) + 2, int(dx[b]) + 2
        expected = padded[b, :, y:y + 32, x:x + 32].permute(1, 2, 0).to(torch.uint8)
        assert torch.equal(out[b], expected)
    assert not torch.equal(out, images)  # 6 offsets of 25 all zero: p = 1e-8
    assert torch.equal(shift.eval()(images), images)


def test_encoder_normalises_uint8_inside_and_is_deterministic_in_eval():
    encoder = ImageEncoder((32, 32), features=8, channels=8).eval()
    images = _images(4)
    out = encoder(images)
    assert out.shape == (4, 8) and out.dtype == torch.float32
    assert torch.equal(out, encoder(images))
    expected = encoder.head(encoder.trunk(images.permute(0, 3, 1, 2).float() / 255.0 - 0.5))
    assert torch.allclose(out, expected)
    with pytest.raises(ValueError, match='encoder'):
        ImageEncoder((32, 32), kind='vit')


@pytest.mark.parametrize('kind', ['conv', 'resnet'])
def test_encode_concatenates_state_and_image_features_once_per_state(kind):
    policy = FlowPolicy(_small(('front', 'wrist'), encoder=kind)).eval()
    obs = {'state': torch.randn(5, 3), 'front': _images(5), 'wrist': _images(5, seed=1),
           'privileged': torch.randn(5, 14)}
    cond = policy.encode(obs)
    assert cond.shape == (5, policy.config.cond_dim) == (5, 3 + 2 * 8)
    assert torch.allclose(cond[:, :3], policy.normalize_obs(obs['state']))
    # Features of one state repeated for several chains == encoding repeated states.
    repeated = {k: v.repeat(3, *[1] * (v.dim() - 1)) for k, v in obs.items()}
    assert torch.allclose(policy.encode(repeated), cond.repeat(3, 1), atol=1e-6)
    other = dict(obs, wrist=_images(5, seed=2))
    assert not torch.allclose(policy.encode(other)[:, -8:], cond[:, -8:])
    assert torch.equal(policy.encode(other)[:, :11], cond[:, :11])
    with pytest.raises(ValueError, match='wrist'):
        policy.encode({'state': obs['state'], 'front': obs['front']})
    with pytest.raises(ValueError, match='dict'):
        policy.encode(obs['state'])


def test_sample_never_augments_and_restores_the_mode():
    policy = FlowPolicy(_small(image_shift=4))
    obs = {'state': torch.randn(4, 3), 'front': _images(4)}
    policy.train()
    a = policy.sample(obs, deterministic=True)
    assert policy.training
    b = policy.eval().sample(obs, deterministic=True)
    assert torch.equal(a, b)


def test_bc_learns_where_the_bright_square_is():
    """The action is +1 when a bright square is on the image's left half, -1 on the right; the
    state carries no information. Only an encoder that learns from pixels can solve it."""
    torch.manual_seed(0)
    policy = FlowPolicy(PolicyConfig(obs_dim=1, action_dim=1, horizon=1, hidden_dim=64,
                                     depth=2, cameras=['front'], image_size=[32, 32],
                                     image_features=16, image_channels=8, image_shift=1))
    n = 512
    left = torch.rand(n) < 0.5
    images = torch.zeros(n, 32, 32, 3, dtype=torch.uint8)
    col = torch.where(left, torch.randint(0, 11, (n,)), torch.randint(17, 28, (n,)))
    row = torch.randint(0, 28, (n,))
    for i in range(n):
        images[i, row[i]:row[i] + 4, col[i]:col[i] + 4] = 255
    state = torch.zeros(n, 1)
    actions = torch.where(left, 1.0, -1.0)[:, None, None]
    policy.fit_normalizers(state, actions)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(300):
        idx = torch.randint(0, n, (128,))
        loss = policy.bc_loss({'state': state[idx], 'front': images[idx]}, actions[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = policy.sample({'state': state[:200], 'front': images[:200]}, deterministic=True)
    correct = (torch.sign(out.flatten()) == actions[:200].flatten()).float().mean().item()
    assert correct > 0.9, correct


def test_checkpoint_roundtrip_keeps_the_encoder(tmp_path):
    policy = FlowPolicy(_small(('front',), encoder='resnet'))
    policy.fit_normalizers(torch.randn(20, 3), torch.randn(20, 2, 2))
    save_policy(tmp_path / 'p.pt', policy)
    loaded = load_policy(tmp_path / 'p.pt')
    assert loaded.config.cameras == ['front'] and loaded.config.encoder == 'resnet'
    obs = {'state': torch.randn(3, 3), 'front': _images(3)}
    assert torch.equal(loaded.sample(obs, deterministic=True),
                       policy.sample(obs, deterministic=True))


def test_camera_config_is_validated():
    with pytest.raises(ValueError, match='image_size'):
        PolicyConfig(obs_dim=3, action_dim=2, cameras=['front'])
    with pytest.raises(ValueError, match='cameras'):
        PolicyConfig(obs_dim=3, action_dim=2, cameras=['front', 'front'], image_size=[32, 32])
    with pytest.raises(ValueError, match='image_size'):
        PolicyConfig(obs_dim=3, action_dim=2, cameras=['front'], image_size=[16, 16])
    with pytest.raises(ValueError, match='encoder'):
        PolicyConfig(obs_dim=3, action_dim=2, encoder='vit')


@pytest.fixture(scope='module')
def vision_model(tmp_path_factory):
    """A randomly initialised camera policy of cube_push_vision's shape, exported."""
    from rldt_train.task_spec import task_spec
    spec = task_spec('cube_push_vision')
    torch.manual_seed(0)
    policy = FlowPolicy(PolicyConfig(
        obs_dim=spec.state_dim, action_dim=4, hidden_dim=32, depth=2, cameras=spec.cameras,
        image_size=list(spec.image_size), image_features=8, image_channels=8,
        action_reference_index=spec.action_state_index))
    policy.fit_normalizers(torch.randn(100, spec.state_dim), 0.1 * torch.randn(100, 4, 4))
    root = tmp_path_factory.mktemp('vision')
    save_policy(root / 'policy.pt', policy)
    return policy.eval(), export_policy(root / 'policy.pt', root / 'model',
                                        task='cube_push_vision')


def test_export_is_one_uint8_nhwc_graph_matching_torch_on_rendered_frames(vision_model):
    from rldt_train.envs.registry import make_vector_env
    policy, folder = vision_model
    card = load_model_card(folder)
    assert [(c.name, c.topic, c.height, c.width, c.encoding) for c in card.cameras] == [
        ('front', 'front/image_raw', 64, 64, 'rgb8'), ('wrist', 'wrist/image_raw', 64, 64,
                                                       'rgb8')]
    assert card.raw['provenance']['parity_max_abs_error'] <= 1e-4
    sampler = ChunkSampler(card, providers='cpu')
    inputs = {i.name: (i.type, i.shape) for i in sampler.session.get_inputs()}
    assert inputs['obs_front'] == ('tensor(uint8)', ['batch', 64, 64, 3])
    assert set(inputs) == {'obs_state', 'noise', 'obs_front', 'obs_wrist'}
    venv = make_vector_env('cube_push_vision', num_envs=3, horizon=4, seed=0)
    obs, _ = venv.reset(seed=0)
    venv.close()
    noise = np.random.default_rng(0).standard_normal((3, 4, 4)).astype(np.float32)
    onnx_out = sampler.session.run(None, {'obs_state': obs['state'], 'noise': noise,
                                          'obs_front': obs['front'],
                                          'obs_wrist': obs['wrist']})[0]
    torch_out = policy.sample({k: torch.as_tensor(v) for k, v in obs.items()},
                              noise=torch.as_tensor(noise)).numpy()
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4)
    single = sampler.sample({'state': obs['state'][0], 'front': obs['front'][0],
                             'wrist': obs['wrist'][0]})
    assert single.shape == (4, 4) and np.all(np.isfinite(single))


def test_onnx_camera_model_runs_in_the_env(vision_model):
    from rldt_train.evaluate import evaluate
    from rldt_train.evaluate import onnx_policy
    _, folder = vision_model
    result = evaluate(onnx_policy(str(folder)), 'cube_push_vision', episodes=2, horizon=4,
                      num_envs=2)
    assert len(result.returns) == 2 and np.all(np.isfinite(result.returns))


def test_node_image_path_feeds_the_graph_the_pixels_the_env_rendered(vision_model):
    """sensor_msgs/Image fields -> decode_image -> to_model_rgb (the policy node's path) give
    the sampler exactly the frame training saw, for rgb8 and bgr8 (with row padding)."""
    from rldt_ros.observation import decode_image
    from rldt_ros.observation import to_model_rgb
    from rldt_ros.tasks import make_task
    _, folder = vision_model
    card = load_model_card(folder)
    task = make_task('cube_push_vision')
    task.reset(seed=4)
    rendered = task.images()
    task.close()
    sampler = ChunkSampler(card, providers='cpu', deterministic=True)
    state = np.zeros(card.state_dim, np.float32)
    expected = sampler.sample({'state': state, **rendered})
    for encoding in ('rgb8', 'bgr8'):
        obs = {'state': state}
        for camera in card.cameras:
            pixels = rendered[camera.name][:, :, ::-1] if encoding == 'bgr8' \
                else rendered[camera.name]
            step = camera.width * 3 + 8  # padded rows, as some drivers send
            rows = np.zeros((camera.height, step), np.uint8)
            rows[:, :camera.width * 3] = pixels.reshape(camera.height, -1)
            image = decode_image(encoding, camera.height, camera.width, step, False,
                                 rows.tobytes())
            obs[camera.name] = to_model_rgb(image, encoding, camera.height, camera.width)
            np.testing.assert_array_equal(obs[camera.name], rendered[camera.name])
        np.testing.assert_array_equal(sampler.sample(obs), expected)


def test_collect_then_pretrain_on_camera_demos(tmp_path):
    """`collect` writes each step's frames as uint8 obs/<camera>_image; `pretrain` trains on
    them (policy.cameras picks a subset) and refuses cameras the task does not observe."""
    import h5py
    from rldt_train.config import load_config
    from rldt_train.data.collect import run_collect
    from rldt_train.pretrain import run_pretrain
    config = load_config('config/train/cube_push_vision.yaml', [
        'collect.episodes=2', 'pretrain.steps=3', 'pretrain.batch_size=8',
        'pretrain.eval_episodes=0', 'policy.hidden_dim=32', 'policy.image_channels=8',
        'policy.image_features=8', 'policy.cameras=[wrist]'])
    run_collect(config, tmp_path / 'd.hdf5', progress=False)
    with h5py.File(tmp_path / 'd.hdf5') as f:
        obs = f['data/demo_0/obs']
        assert set(obs) == {'state', 'front_image', 'wrist_image', 'privileged'}
        assert obs['wrist_image'].dtype == np.uint8 and obs['wrist_image'].shape[1:] == (64, 64, 3)
        assert obs['state'].shape[1] == 8 and obs['privileged'].shape[1] == 14
        first_wrist = obs['wrist_image'][0]
    from rldt_train.envs.registry import make_env
    env = make_env('cube_push_vision')
    reset_obs, _ = env.reset(seed=config.seed)  # collect's first episode starts from this seed
    env.close()
    np.testing.assert_array_equal(first_wrist, reset_obs['wrist'])
    summary = run_pretrain(config, tmp_path / 'd.hdf5', tmp_path / 'run', progress=False)
    policy = load_policy(summary['policy'])
    assert policy.config.cameras == ['wrist'] and policy.config.image_size == [64, 64]
    assert np.isfinite(summary['final_bc_loss'])
    bad = load_config('config/train/cube_push_vision.yaml', ['policy.cameras=[side]'])
    with pytest.raises(ValueError, match='policy.cameras'):
        run_pretrain(bad, tmp_path / 'd.hdf5', tmp_path / 'bad', progress=False)
