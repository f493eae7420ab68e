"""Behaviour-cloning pretraining of a flow-matching policy, resumable.

Reads a dataset (robomimic or D4RL layout), trains the velocity net on (observation, action
chunk) pairs with the flow-matching loss, keeps an EMA of the weights (fine-tuning and export
start from it), logs to TensorBoard, checkpoints the full training state atomically every
`checkpoint_every` steps, and resumes from the last checkpoint with `resume=True`.
"""
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from torch.optim.swa_utils import get_ema_multi_avg_fn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from rldt_train.checkpoint_io import atomic_save
from rldt_train.checkpoint_io import rng_state
from rldt_train.checkpoint_io import set_rng_state
from rldt_train.config import TrainConfig
from rldt_train.config import config_to_dict
from rldt_train.config import save_config
from rldt_train.data.episodes import action_chunks
from rldt_train.data.episodes import image_key
from rldt_train.data.episodes import stacked_obs
from rldt_train.data.hdf5_io import read_dataset
from rldt_train.policy.flow_policy import FlowPolicy
from rldt_train.policy.flow_policy import PolicyConfig
from rldt_train.policy.flow_policy import save_policy
from rldt_train.task_spec import task_spec

STATE_FILE = 'checkpoints/pretrain_last.pt'
POLICY_FILE = 'policy_bc.pt'


def configure_torch(config: TrainConfig) -> torch.device:
    """Apply the config's thread count and seed; return the run's device."""
    if config.torch_threads > 0:
        torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    return resolve_device(config.device)


def resolve_device(name: str) -> torch.device:
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA GPU")
    return torch.device(name)


def policy_config(config: TrainConfig, obs_dim: int, action_dim: int) -> PolicyConfig:
    p = config.policy
    spec = task_spec(config.task)
    index = None
    if p.relative_actions:
        index = spec.action_state_index
        if index is None:
            raise ValueError(f'policy.relative_actions is true but task {config.task} has no '
                             'joint-position actions to be relative to')
    cameras = list(p.cameras) or list(spec.cameras)
    unknown = sorted(set(cameras) - set(spec.cameras))
    if unknown:
        raise ValueError(f'policy.cameras {unknown} are not observed by task {config.task} '
                         f'(it observes {spec.cameras})')
    return PolicyConfig(obs_dim=obs_dim, action_dim=action_dim, horizon=p.horizon,
                        hidden_dim=p.hidden_dim, depth=p.depth, residual=p.residual,
                        time_embed_dim=p.time_embed_dim, sampler_steps=p.sampler_steps,
                        action_reference_index=index, cameras=cameras,
                        image_size=list(spec.image_size) if cameras else None,
                        encoder=p.encoder, image_features=p.image_features,
                        image_channels=p.image_channels, image_shift=p.image_shift)


def load_images(episodes, policy_cfg: PolicyConfig, device: torch.device
                ) -> dict[str, torch.Tensor]:
    """Each camera's frames, uint8 (N, H, W, 3), in the order of `action_chunks`."""
    images = {}
    for camera in policy_cfg.cameras:
        frames = stacked_obs(episodes, image_key(camera))
        if frames.dtype != np.uint8 or frames.shape[1:] != (*policy_cfg.image_size, 3):
            raise ValueError(f'dataset obs/{image_key(camera)} is {frames.dtype} '
                             f'{frames.shape[1:]}; the policy needs uint8 '
                             f'{(*policy_cfg.image_size, 3)}')
        images[camera] = torch.as_tensor(frames, device=device)
    return images


def _save_state(path: Path, step: int, policy, ema, optimizer, scheduler) -> None:
    atomic_save({'step': step, 'policy': policy.state_dict(), 'ema': ema.state_dict(),
                 'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(),
                 'rng': rng_state()}, path)


def run_pretrain(config: TrainConfig, dataset: str | Path, run_dir: str | Path,
                 resume: bool = False, progress: bool = True) -> dict:
    """Train; returns a summary dict and writes run_dir/policy_bc.pt (EMA weights)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / 'config.yaml')
    cfg = config.pretrain
    device = configure_torch(config)

    episodes, env_args = read_dataset(dataset)
    num_episodes = len(episodes)
    obs_np, chunks_np = action_chunks(episodes, config.policy.horizon)
    obs = torch.as_tensor(obs_np, device=device)
    chunks = torch.as_tensor(chunks_np, device=device)
    policy = FlowPolicy(policy_config(config, obs.shape[1], chunks.shape[2])).to(device)
    images = load_images(episodes, policy.config, device)
    del episodes  # the frames now live in `images`; do not hold them twice

    def observations(index) -> torch.Tensor | dict[str, torch.Tensor]:
        """The policy's observation of the samples at index: the state, or a dict + images."""
        if not images:
            return obs[index]
        return {'state': obs[index], **{c: frames[index] for c, frames in images.items()}}

    policy.fit_normalizers(obs, chunks)
    ema = AveragedModel(policy, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),
                        use_buffers=True)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.steps,
                                                           eta_min=0.1 * cfg.lr)
    state_path = run_dir / STATE_FILE
    start = 0
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=True)
        policy.load_state_dict(state['policy'])
        ema.load_state_dict(state['ema'])
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        set_rng_state(state['rng'])
        start = state['step']
        print(f'pretrain: resuming from step {start} ({state_path})', flush=True)
    writer = SummaryWriter(str(run_dir / 'tb'))
    if start == 0:
        writer.add_text('config', '```\n' + json.dumps(config_to_dict(config), indent=2) + '\n```')

    generator = torch.Generator(device=device).manual_seed(config.seed + start)
    loss_sum, loss_count, t0 = 0.0, 0, time.perf_counter()
    bar = tqdm(range(start, cfg.steps), desc='pretrain', unit='step', disable=not progress,
               initial=start, total=cfg.steps)
    for step in bar:
        index = torch.randint(len(obs), (cfg.batch_size,), device=device, generator=generator)
        loss = policy.bc_loss(observations(index), chunks[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        ema.update_parameters(policy)
        loss_sum += loss.item()
        loss_count += 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            mean_loss = loss_sum / loss_count
            writer.add_scalar('losses/bc', mean_loss, step + 1)
            writer.add_scalar('charts/lr', scheduler.get_last_lr()[0], step + 1)
            writer.add_scalar('charts/steps_per_s', loss_count / (time.perf_counter() - t0),
                              step + 1)
            bar.set_postfix(loss=f'{mean_loss:.4f}')
            loss_sum, loss_count, t0 = 0.0, 0, time.perf_counter()
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            _save_state(state_path, step + 1, policy, ema, optimizer, scheduler)
    bar.close()
    writer.close()

    bc_policy = ema.module
    save_policy(run_dir / POLICY_FILE, policy, ema_state=bc_policy.state_dict(),
                extra={'task': config.task, 'dataset': str(dataset),
                       'env_args': json.dumps(env_args)})
    bc_policy.eval()  # the loss of the policy as it will sample: no image augmentation
    first = slice(0, 4096)
    with torch.no_grad():
        final_loss = float(np.mean([bc_policy.bc_loss(observations(first), chunks[first]).item()
                                    for _ in range(4)]))
    return {'policy': str(run_dir / POLICY_FILE), 'steps': cfg.steps, 'resumed_from': start,
            'samples': int(len(obs)), 'episodes': num_episodes, 'final_bc_loss': final_loss}
