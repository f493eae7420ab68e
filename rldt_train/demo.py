"""`make demo`: demonstrations -> BC -> RLDT -> ONNX -> ROS 2 loop -> report, on cube_push.

Every stage prints a progress bar; the end prints a table and writes `reports/demo/summary.md`
with the learning curve, the latency histogram and a frame strip of both policies.
"""
import json
import os
import shutil
import time
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path

import numpy as np

from rldt_train.config import load_config
from rldt_train.demo_stages import StageTimer
from rldt_train.demo_stages import evaluate_both
from rldt_train.demo_stages import export_both
from rldt_train.demo_stages import fresh_run
from rldt_train.demo_stages import sampler_latency
from rldt_train.demo_stages import stage
from rldt_train.demo_stages import train
from rldt_train.reporting import format_eval
from rldt_train.reporting import wilson_interval

CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'train' / 'cube_push.yaml'
# The same recipe trained for the robot: command filter, latency, domain randomization.
ROBUST_CONFIG = CONFIG.with_name('cube_push_robust.yaml')
# The demo's robustness rows (rldt-train robustness has more), on top of the robot's filter.
ROBUSTNESS_ROWS = ['action_delay=1,2', 'link_mass=0.8,1.2', 'friction=0.5,1.5', 'damping=2',
                   'actuator_gain=0.7', 'joint_noise=0.01', 'control_jitter=0.2']


@dataclass
class DemoSettings:
    """Sizes of each stage; `full` scales them up."""

    overrides: list[str] = field(default_factory=list)
    eval_episodes: int = 50
    ros_episodes: int = 12
    ros_real_time_factor: float = 3.0
    latency_runs: int = 500
    robustness_episodes: int = 30
    """Episodes per model and perturbation in the robustness table (0: no table)."""
    robust: bool = False
    """Also train the recipe of config/train/cube_push_robust.yaml (filter, latency,
    randomization) and compare it with the nominal one under every perturbation."""


DEFAULT = DemoSettings()
FULL = DemoSettings(overrides=['collect.episodes=400', 'pretrain.steps=10000',
                               'finetune.iterations=60'],
                    eval_episodes=200, ros_episodes=50, latency_runs=2000,
                    robustness_episodes=100, robust=True)


def _frame_strip(model_dirs: dict[str, Path], path: Path, seed: int = 7,
                 frames: int = 6) -> None:
    """One rollout per model from the same start, `frames` snapshots of the front camera."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from rldt_ros.model_card import load_model_card
    from rldt_ros.sampler import ChunkSampler
    from rldt_ros.tasks import make_task
    fig, axes = plt.subplots(len(model_dirs), frames, figsize=(2.2 * frames, 2.0 *
                                                               len(model_dirs)), squeeze=False)
    for row, (label, folder) in enumerate(model_dirs.items()):
        card = load_model_card(folder)
        # In the mode it is deployed in, as the policy node runs it.
        sampler = ChunkSampler(card, providers='cpu', seed=seed, deterministic=card.deterministic)
        task = make_task('cube_push')
        task.reset(seed=seed)
        images, outcome = [task.render('front', 120, 160)], 'timeout'
        while len(images) <= task.max_episode_steps and not task.success():
            chunk = sampler.sample({'state': task.state()})
            for action in chunk[:card.steps_per_chunk]:
                task.step(action)
                images.append(task.render('front', 120, 160))
                if task.success():
                    outcome = f'success at step {len(images) - 1}'
                    break
        picks = np.linspace(0, len(images) - 1, frames).round().astype(int)
        shots = [(int(i), images[i]) for i in picks]
        for col in range(frames):
            ax = axes[row][col]
            ax.axis('off')
            if col < len(shots):
                ax.imshow(shots[col][1])
                ax.set_title(f't={shots[col][0]}', fontsize=8)
        axes[row][0].text(-0.1, 0.5, f'{label}\n{outcome}', transform=axes[row][0].transAxes,
                          ha='right', va='center', fontsize=9)
        task.close()
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches='tight')
    plt.close(fig)


def _ros_summary(result: dict) -> dict:
    episodes = result['episodes']
    stats = result.get('stats', {})
    successes = np.array([e['success'] for e in episodes], dtype=float)
    return {'episodes': len(episodes),
            'success_rate': float(np.mean(successes)),
            'success_ci95': list(wilson_interval(successes)),
            'return_mean': float(np.mean([e['return'] for e in episodes])),
            'obs_to_cmd_ms': stats.get('obs_to_cmd_ms', {}),
            'sampler_ms': stats.get('sampler_ms', {}), 'provider': stats.get('provider'),
            'wall_s': result['wall_s']}


def _write_summary(out: Path, rows: dict, extra: dict) -> None:
    lines = ['# rldt_ros demo: cube_push', '',
             'Scripted (noisy) demonstrations -> flow-matching BC -> RLDT fine-tuning -> ONNX '
             '-> ROS 2 loop (MuJoCo sim node + policy node).', '',
             '| policy | deployed mode | sim success, deployed mode | other mode | sim return '
             '| ROS loop success | ROS loop return |',
             '|---|---|---|---|---|---|---|']
    for label, row in rows.items():
        ros = row.get('ros') or {}
        ros_cells = (format_eval(ros, 'success'), f"{ros['return_mean']:.2f}") if ros \
            else ('not run', 'not run')
        other = next(m for m in row['sim_modes'] if m != row['deploy_mode'])
        lines.append(f"| {label} | {row['deploy_mode']} | {format_eval(row['sim'], 'success')} "
                     f"| {other}: {format_eval(row['sim_modes'][other], 'success')} "
                     f"| {row['sim']['return_mean']:.2f} | {ros_cells[0]} | {ros_cells[1]} |")
    lines += ['', 'The ROS loop is the exported model in the policy node against the sim node '
              'over DDS, both on the sim clock, in the mode the model card deploys. The policy '
              'node samples a chunk when its observation arrives (event-driven), so a chunk '
              'starts on the tick of its observation as in training; DDS delivery can still '
              'add a tick now and then, and the policies are sensitive to it (see the '
              'action_delay rows of the robustness table). Intervals: 95% (Wilson).',
              '', f"Expert demonstrations: success {extra['demo_success']:.0%} "
              f"(noise on joint targets), {extra['demo_episodes']} episodes.", '',
              f"Sampler on this CPU (1 thread): p50 {extra['latency']['sampler_p50_ms']:.2f} ms, "
              f"p99 {extra['latency']['sampler_p99_ms']:.2f} ms per chunk.", '',
              f"Wall time: {extra['wall_s']:.0f} s. Stage times: " +
              ', '.join(f'{k} {v:.0f} s' for k, v in extra['stage_s'].items()) + '.', '',
              '## Learning curve', '', '![learning curve](learning_curve.png)', '',
              '## Latency', '', '![latency](latency_hist.png)', '',
              '## Rollouts (same start, BC above, RLDT below, each in its deployed mode)', '',
              '![frames](frames.png)', '',
              'Models: `models/cube_push_bc/`, `models/cube_push_rldt/` (ONNX + model card). '
              'Full numbers: `results.json`.']
    (out / 'summary.md').write_text('\n'.join(lines) + '\n')


def _train_robust(config, work: Path, out: Path) -> dict[str, Path]:
    """collect -> BC -> RLDT under the robust recipe's env section; the exported models."""
    from rldt_train.data.collect import run_collect
    from rldt_train.envs.registry import use_conditions
    from rldt_train.finetune import run_finetune
    from rldt_train.pretrain import run_pretrain
    run_collect(config, work / 'demos_robust.hdf5')
    bc = run_pretrain(config, work / 'demos_robust.hdf5', work / 'pretrain_robust')
    with use_conditions(config.env):
        run_finetune(config, work / 'finetune_robust', Path(bc['policy']))
    models, _ = export_both('cube_push', bc['policy'], work / 'finetune_robust', out,
                            suffix='_randomized')
    return {f'{label} randomized': folder for label, folder in models.items()}


def _robustness(models: dict[str, Path], settings: DemoSettings, seed: int, out: Path) -> dict:
    """rldt-train robustness on the demo's models: robustness.{md,png,json} in out."""
    from rldt_train import robustness as rb
    from rldt_train.config import EnvSection
    base = EnvSection(max_delta_per_tick=rb.robot_filter())
    rows = rb.parse_perturb(ROBUSTNESS_ROWS, cameras=False)
    table = rb.evaluate_robustness({k: [v] for k, v in models.items()}, rows, base,
                                   settings.robustness_episodes, seed)
    rb.write_report(table, out, 'cube_push: the demo models under perturbations', base,
                    settings.robustness_episodes, seed, 'card')
    return table


def _append_robustness(out: Path, table: dict) -> None:
    """The robustness table (and plot) at the end of summary.md."""
    lines = (out / 'robustness.md').read_text().splitlines()[2:]   # below its title
    if 'RLDT randomized' in table['models']:
        lines += ['"randomized": the same recipe trained for the robot '
                  '(config/train/cube_push_robust.yaml: the command filter in every env, 0-2 '
                  'ticks of action delay in fine-tuning, domain randomization); models in '
                  '`models/cube_push_bc_randomized/`, `models/cube_push_rldt_randomized/`.', '']
    text = (out / 'summary.md').read_text()
    (out / 'summary.md').write_text(text + '\n## Robustness\n\n' + '\n'.join(lines) + '\n')


def run_demo(full: bool = False, out_dir: str | Path = 'reports/demo',
             skip_ros: bool = False, settings: DemoSettings | None = None,
             robust: bool = False) -> dict:
    """Run every stage; `settings` overrides the default/full sizes (tests use tiny ones);
    robust: also train and compare the robust recipe (as settings.robust)."""
    settings = settings or (FULL if full else DEFAULT)
    if robust:
        settings = replace(settings, robust=True)
    out, work, config = fresh_run(out_dir, CONFIG, settings.overrides)
    timer = StageTimer()
    demos, bc, ft = train(config, work, timer, (
        'collect demonstrations (scripted expert + noise)',
        'pretrain the flow-matching policy (behaviour cloning)',
        'fine-tune with RLDT in vectorized MuJoCo'))
    if (work / 'finetune' / 'learning_curve.png').is_file():
        shutil.copy2(work / 'finetune' / 'learning_curve.png', out / 'learning_curve.png')

    robust_models = {}
    if settings.robust:
        robust_config = load_config(ROBUST_CONFIG, settings.overrides)
        print(f'\n[3/7] and the same recipe trained for the robot: '
              f'{robust_config.env.describe()}', flush=True)
        robust_models = timer.run('robust_recipe', _train_robust, robust_config, work, out)

    stage(4, 'export both policies to ONNX (parity-checked), each in its deployed mode')
    models, deploy = timer.run('export', export_both, 'cube_push', bc['policy'],
                               work / 'finetune', out)
    stage(5, f'evaluate the exported models in simulation ({settings.eval_episodes} episodes '
             'per sampling mode, same seeds)')
    sim = timer.run('evaluate', evaluate_both, models, 'cube_push', settings.eval_episodes,
                    config.policy.horizon, config.seed, progress=True)
    # 'sim' is the deployed mode: what the policy node runs by default.
    rows = {label: {'sim': sim[label][deploy[label]], 'deploy_mode': deploy[label],
                    'sim_modes': sim[label]} for label in models}
    robustness = None
    if settings.robustness_episodes:
        print(f'\n[5/7] robustness: {settings.robustness_episodes} episodes per model and '
              "perturbation, on top of the robot's command filter", flush=True)
        robustness = timer.run('robustness', _robustness, {**models, **robust_models}, settings,
                           config.seed + 20_000, out)

    ros_stats: dict = {}
    if skip_ros:
        stage(6, 'ROS 2 loop: skipped (--skip-ros)')
    else:
        from rldt_train.ros_loop import run_ros_loop
        stage(6, f'ROS 2 loop: sim node + policy node, {settings.ros_episodes} episodes per '
                 f'model (sim time, {settings.ros_real_time_factor:g}x real time)')
        t0 = time.perf_counter()
        base_domain = 40 + os.getpid() % 100
        for i, (label, folder) in enumerate(models.items()):
            # Both nodes on the sim's /clock, so the loop runs faster than real time with the
            # same control timing (the policy node ticks on sim time).
            sim_time = ['-p', 'publish_clock:=true', '-p', 'use_sim_time:=true', '-p',
                        f'real_time_factor:={settings.ros_real_time_factor}']
            result = run_ros_loop(folder, settings.ros_episodes, domain_id=base_domain + i,
                                  ros_args=sim_time,
                                  log_path=work / f'ros_loop_{label.lower()}.log')
            rows[label]['ros'] = _ros_summary(result)
            print(f"  {label} ({rows[label]['deploy_mode']}): "
                  f"{format_eval(rows[label]['ros'], 'success')} success in the loop", flush=True)
            ros_stats = result.get('stats', {})
        timer.seconds['ros_loop'] = time.perf_counter() - t0

    stage(7, 'report')
    latency = sampler_latency(models['RLDT'], settings.latency_runs, out / 'latency_hist.png',
                              ros_stats.get('sampler_ms'))
    _frame_strip(models, out / 'frames.png')
    extra = {'demo_success': demos['success_rate'], 'demo_episodes': demos['episodes'],
             'latency': latency, 'wall_s': timer.elapsed(), 'stage_s': timer.seconds}
    _write_summary(out, rows, extra)
    if robustness is not None:
        _append_robustness(out, robustness)
    results = {'rows': rows, 'finetune': ft, 'pretrain': bc, 'collect': demos, **extra,
               'robustness': robustness}
    (out / 'results.json').write_text(json.dumps(results, indent=2, default=str))
    summary = {'report': str(out / 'summary.md'),
               'demo_success': demos['success_rate'],
               'bc_deploy_mode': rows['BC']['deploy_mode'],
               'rldt_deploy_mode': rows['RLDT']['deploy_mode'],
               'bc_sim_success': rows['BC']['sim']['success_rate'],
               'rldt_sim_success': rows['RLDT']['sim']['success_rate'],
               'bc_sim_return': rows['BC']['sim']['return_mean'],
               'rldt_sim_return': rows['RLDT']['sim']['return_mean']}
    if not skip_ros:
        summary['bc_ros_success'] = rows['BC']['ros']['success_rate']
        summary['rldt_ros_success'] = rows['RLDT']['ros']['success_rate']
    summary['wall_s'] = extra['wall_s']
    return summary
