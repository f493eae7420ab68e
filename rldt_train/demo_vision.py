"""`make demo DEMO_ARGS=--vision`: the camera story on cube_push_vision.

Demonstrations with camera images -> vision BC -> vision RLDT (critic on the simulator's
privileged state) -> ONNX (uint8 NHWC camera inputs) -> simulation evaluation (both sampling
modes) -> the ROS 2 loop on camera topics -> a report that puts what the cameras saw above what
the policy commanded. It does not fit the default demo's ~10 minutes on 2 cores, hence the flag.
"""
import json
import os
import shutil
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import numpy as np

from rldt_train.demo_stages import StageTimer
from rldt_train.demo_stages import evaluate_both
from rldt_train.demo_stages import export_both
from rldt_train.demo_stages import fresh_run
from rldt_train.demo_stages import sampler_latency
from rldt_train.demo_stages import stage
from rldt_train.demo_stages import train
from rldt_train.reporting import MODES

TASK = 'cube_push_vision'
CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'train' / f'{TASK}.yaml'


@dataclass
class VisionDemoSettings:
    """Sizes of each stage (the training sizes are config/train/cube_push_vision.yaml's)."""

    overrides: list[str] = field(default_factory=list)
    eval_episodes: int = 50
    ros_episodes: int = 12
    ros_real_time_factor: float = 3.0
    ros_timeout_s: float = 120.0
    """The first model's loop must deliver every episode within this plus 10 s per episode;
    a loop that does not is reported as not run, with the reason, and the demo goes on."""
    latency_runs: int = 500
    strip_frames: int = 6


DEFAULT = VisionDemoSettings()


def camera_rollout(model_dir: Path, seed: int, deterministic: bool) -> dict:
    """One episode of an exported model in the simulator, recording what it saw and did.

    Returns the images the policy was given at each chunk start ('images': camera ->
    (K, h, w, 3) uint8, 'chunk_start_step': (K,)), the commanded joint targets and the
    measured joint positions per control step ((T, A) each), and the outcome.
    """
    from rldt_ros.model_card import load_model_card
    from rldt_ros.sampler import ChunkSampler
    from rldt_ros.tasks import make_task
    card = load_model_card(model_dir)
    sampler = ChunkSampler(card, providers='cpu', seed=seed, deterministic=deterministic)
    task = make_task(card.task)
    task.reset(seed=seed)
    cameras = [c.name for c in card.cameras]
    seen = {c: [] for c in cameras}
    starts, commands, measured = [], [], []
    success_step = None
    while len(commands) < task.max_episode_steps and success_step is None:
        images = task.images()
        for camera in cameras:
            seen[camera].append(images[camera])
        starts.append(len(commands))
        chunk = sampler.sample({'state': task.state(), **images})
        for action in chunk[:card.steps_per_chunk]:
            task.step(action)
            commands.append(np.asarray(action, float))
            measured.append(task.joint_positions()[:len(action)].copy())
            if task.success():
                success_step = len(commands)
                break
            if len(commands) >= task.max_episode_steps:
                break
    task.close()
    return {'images': {c: np.stack(v) for c, v in seen.items()},
            'chunk_start_step': np.asarray(starts), 'commands': np.stack(commands),
            'measured': np.stack(measured), 'joint_names': list(card.action_names),
            'success_step': success_step, 'steps': len(commands),
            'control_rate_hz': card.control_rate_hz}


def plot_camera_strip(rollouts: dict[str, dict], path: Path, frames: int = 6) -> None:
    """Per policy: the cameras' images at `frames` chunk starts (what the policy saw), and
    under them the joint targets it commanded (solid) and the measured joints (dotted), with
    the shown chunk starts marked."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    blocks = list(rollouts.items())
    cameras = list(blocks[0][1]['images'])
    rows_per_block = len(cameras) + 2                       # cameras, then a 2-row plot
    fig = plt.figure(figsize=(2.0 * frames, 1.9 * rows_per_block * len(blocks)))
    grid = fig.add_gridspec(rows_per_block * len(blocks), frames, hspace=0.5)
    for b, (label, roll) in enumerate(blocks):
        top = b * rows_per_block
        count = len(roll['chunk_start_step'])
        picks = np.unique(np.linspace(0, count - 1, frames).round().astype(int))
        for r, camera in enumerate(cameras):
            for col, k in enumerate(picks):
                ax = fig.add_subplot(grid[top + r, col])
                ax.imshow(roll['images'][camera][k])
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"t={roll['chunk_start_step'][k]}", fontsize=8)
                if col == 0:
                    ax.set_ylabel(camera, fontsize=8)
        outcome = (f"success at step {roll['success_step']}" if roll['success_step']
                   else f"no success in {roll['steps']} steps")
        ax = fig.add_subplot(grid[top + len(cameras):top + rows_per_block, :])
        steps = np.arange(1, roll['steps'] + 1)
        for j, name in enumerate(roll['joint_names']):
            line, = ax.plot(steps, roll['commands'][:, j], lw=1.2, label=f'{name} target')
            ax.plot(steps, roll['measured'][:, j], ls=':', lw=1.0, color=line.get_color())
        for k in picks:
            ax.axvline(roll['chunk_start_step'][k], color='grey', lw=0.6, ls='--')
        ax.set_xlim(0, max(roll['steps'], 1))
        ax.set_xlabel(f"control step ({roll['control_rate_hz']:g} Hz)", fontsize=8)
        ax.set_ylabel('rad / m', fontsize=8)
        ax.set_title(f'{label}: commanded joint targets (solid), measured joints (dotted); '
                     f'{outcome}', fontsize=9)
        ax.legend(fontsize=7, ncol=4, loc='upper right')
        ax.tick_params(labelsize=7)
    fig.savefig(path, dpi=90, bbox_inches='tight')
    plt.close(fig)


def ros_stage(models: dict[str, Path], settings: VisionDemoSettings, work: Path) -> dict:
    """The exported camera models in the ROS 2 loop (rldt_train/ros_loop.py).

    Returns {label: summary} or {'not_run': reason} when the loop delivered no result: the
    nodes must publish and read the camera topics for a camera model to run there.
    """
    from rldt_train.ros_loop import run_ros_loop
    out: dict = {}
    base_domain = 40 + os.getpid() % 100
    sim_time = ['-p', 'publish_clock:=true', '-p', 'use_sim_time:=true', '-p',
                f'real_time_factor:={settings.ros_real_time_factor}']
    for i, (label, folder) in enumerate(models.items()):
        log_path = work / f'ros_loop_{label.lower()}.log'
        try:
            result = run_ros_loop(folder, settings.ros_episodes, domain_id=base_domain + i,
                                  timeout_s=settings.ros_timeout_s + 10 * settings.ros_episodes,
                                  ros_args=sim_time, log_path=log_path)
        except (RuntimeError, TimeoutError) as exc:
            reason = (f'the ROS loop did not run the camera model {folder.name}: {exc}. The '
                      'sim node must publish the cameras the card names and the policy node '
                      f'read them; node output in {log_path}')
            print(f'  skipped: {reason}', flush=True)
            return {'not_run': reason}
        episodes = result['episodes']
        stats = result.get('stats', {})
        out[label] = {'episodes': len(episodes),
                      'success_rate': float(np.mean([e['success'] for e in episodes])),
                      'return_mean': float(np.mean([e['return'] for e in episodes])),
                      'obs_to_cmd_ms': stats.get('obs_to_cmd_ms', {}),
                      'sampler_ms': stats.get('sampler_ms', {}), 'wall_s': result['wall_s']}
        print(f"  {label}: {out[label]['success_rate']:.0%} success over "
              f'{len(episodes)} episodes', flush=True)
    return out


def _cell(summary: dict) -> str:
    low, high = summary['success_ci95']
    return f"{summary['success_rate']:.0%} [{low:.0%}, {high:.0%}]"


def write_summary(out: Path, sim: dict, ros: dict, deploy: dict, extra: dict) -> None:
    lines = [f'# rldt_ros vision demo: {TASK}', '',
             'The policy sees the arm joints and the `front` and `wrist` cameras (64x64 RGB), '
             'never the cube\'s pose. Demonstrations with images -> flow-matching BC -> RLDT '
             '(critic on the simulator state) -> ONNX (uint8 camera inputs) -> simulation and '
             'the ROS 2 loop.', '',
             f"| policy | sim success, deterministic ({extra['eval_episodes']} ep) | "
             'sim success, stochastic | deploy mode (card) | ROS loop success |',
             '|---|---|---|---|---|']
    for label, modes in sim.items():
        if 'not_run' in ros:
            loop = 'not run'
        else:
            loop = f"{ros[label]['success_rate']:.0%} ({ros[label]['episodes']} ep)"
        lines.append(f"| {label} | {_cell(modes['deterministic'])} | "
                     f"{_cell(modes['stochastic'])} | {deploy[label]} | {loop} |")
    lines += ['', 'Success with 95% (Wilson) intervals, the same episode seeds for every row. '
              'deterministic = x0 = 0.', '']
    if 'not_run' in ros:
        lines += [f"ROS loop: not run. {ros['not_run']}.", '']
    lines += [f"Demonstrations: {extra['demo_episodes']} episodes, success "
              f"{extra['demo_success']:.0%}.", '',
              f"Vision chunk sampler on this CPU (1 thread, two 64x64 images): p50 "
              f"{extra['latency']['sampler_p50_ms']:.2f} ms, p99 "
              f"{extra['latency']['sampler_p99_ms']:.2f} ms.", '',
              f"Rendering while fine-tuning: {extra['frames_per_s']:.0f} camera frames/s "
              '(collection, policy included).', '',
              f"Wall time: {extra['wall_s'] / 60:.1f} min. Stage times: " +
              ', '.join(f'{k} {v:.0f} s' for k, v in extra['stage_s'].items()) + '.', '',
              '## What the cameras saw and what the policy did', '',
              'Each block: the images the policy was given at six chunk starts, then the joint '
              'targets it commanded and the joints the simulator measured, same start for '
              'both policies, each in its deploy mode.', '', '![cameras](cameras.png)', '',
              '## Learning curve', '', '![learning curve](learning_curve.png)', '',
              '## Latency', '', '![latency](latency_hist.png)', '',
              f'Models: `models/{TASK}_bc/`, `models/{TASK}_rldt/`. Numbers: `results.json`.']
    (out / 'summary.md').write_text('\n'.join(lines) + '\n')


def _frames_per_s(run_dir: Path, cameras: int, horizon: int) -> float:
    """Camera frames rendered per second of collection in the fine-tuning run (one frame per
    camera per chunk, from the run's env-steps-per-second scalar)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run_dir / 'tb'))
    events.Reload()
    rates = [e.value for e in events.Scalars('charts/env_steps_per_s')]
    return float(np.mean(rates)) / horizon * cameras


def run_vision_demo(out_dir: str | Path = 'reports/demo_vision', skip_ros: bool = False,
                    settings: VisionDemoSettings | None = None) -> dict:
    """Run every stage; `settings` overrides the sizes (tests use tiny ones)."""
    from rldt_train.task_spec import task_spec

    settings = settings or DEFAULT
    out, work, config = fresh_run(out_dir, CONFIG, settings.overrides)
    timer = StageTimer()
    demos, bc, ft = train(config, work, timer, (
        'collect demonstrations with camera images (scripted expert + noise)',
        'pretrain the camera policy (behaviour cloning on uint8 frames)',
        'fine-tune with RLDT (the critic reads the simulator state)'))
    shutil.copy2(work / 'finetune' / 'learning_curve.png', out / 'learning_curve.png')

    stage(4, 'export both policies to ONNX (uint8 NHWC camera inputs, parity-checked), each '
             'in its deployed mode')
    models, deploy = timer.run('export', export_both, TASK, bc['policy'], work / 'finetune', out)
    stage(5, f'evaluate the exported models in simulation ({settings.eval_episodes} episodes '
             'per mode, same seeds)')
    sim = timer.run('evaluate', evaluate_both, models, TASK, settings.eval_episodes,
                    config.policy.horizon, config.seed)

    if skip_ros:
        stage(6, 'ROS 2 loop: skipped (--skip-ros)')
        ros = {'not_run': 'skipped with --skip-ros'}
    else:
        stage(6, f'ROS 2 loop on camera topics: sim node + policy node, '
                 f'{settings.ros_episodes} episodes per model')
        ros = timer.run('ros_loop', ros_stage, models, settings, work)

    stage(7, 'report')
    latency = sampler_latency(models['RLDT'], settings.latency_runs, out / 'latency_hist.png')
    rollouts = {f'{label} ({deploy[label]})': camera_rollout(folder, seed=7,
                                                             deterministic=deploy[label] ==
                                                             'deterministic')
                for label, folder in models.items()}
    plot_camera_strip(rollouts, out / 'cameras.png', settings.strip_frames)
    extra = {'demo_success': demos['success_rate'], 'demo_episodes': demos['episodes'],
             'eval_episodes': settings.eval_episodes, 'latency': latency,
             'frames_per_s': _frames_per_s(work / 'finetune', len(task_spec(TASK).cameras),
                                           config.policy.horizon),
             'wall_s': timer.elapsed(), 'stage_s': timer.seconds}
    write_summary(out, sim, ros, deploy, extra)
    results = {'sim': sim, 'ros': ros, 'deploy': deploy, 'finetune': ft, 'pretrain': bc,
               'collect': demos, **extra}
    (out / 'results.json').write_text(json.dumps(results, indent=2, default=str))
    summary = {'report': str(out / 'summary.md'), 'demo_success': demos['success_rate']}
    for label in models:
        for mode in MODES:
            summary[f'{label.lower()}_sim_{mode}'] = sim[label][mode]['success_rate']
    summary['ros_loop'] = 'not run' if 'not_run' in ros else 'run'
    summary['wall_s'] = extra['wall_s']
    return summary


