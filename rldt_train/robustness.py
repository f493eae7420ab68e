"""`rldt-train robustness`: how a model fares when the world is not the simulator it learned in.

Each exported model is evaluated under one perturbation at a time, at a few levels (action and
observation delay, masses, friction, damping, servo gains, sensor noise, control-period jitter,
and for camera models camera pose, light and colours), on top of the deployment's command
filter (config/policy.yaml's max_delta_per_tick, as the policy node applies it; `--filter 0`
for the bare simulator). Every row runs the same episode seeds, so rows and models compare
paired. Models under one label (e.g. the training seeds of one recipe) are reported as the
mean +- sd over models and the 95% Wilson interval of all their episodes pooled.

Files in --out: robustness.md (the table), robustness.png (the plot), robustness.json.
"""
import json
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path

import numpy as np

from rldt_ros.model_card import load_model_card
from rldt_train.config import EnvSection
from rldt_train.reporting import wilson_interval


@dataclass(frozen=True)
class Perturbation:
    """One kind of perturbation: how a level (a number) changes the env section."""

    name: str
    unit: str
    levels: tuple[float, ...]
    """Default levels (the nominal level is the table's first row, shared by all kinds)."""
    cameras_only: bool = False

    def apply(self, env: EnvSection, level: float) -> EnvSection:
        r = env.randomization
        scale = (float(level), float(level))
        if self.name == 'action_delay':
            return replace(env, action_delay_ticks=[int(level)] * 2)
        if self.name == 'observation_delay':
            return replace(env, observation_delay_ticks=[int(level)] * 2)
        changes = {
            'link_mass': {'link_mass_scale': scale},
            'object_mass': {'object_mass_scale': scale},
            'friction': {'friction_scale': scale},
            'damping': {'damping_scale': scale},
            'actuator_gain': {'actuator_gain_scale': scale},
            # Velocity readings are noisier than positions (differentiated encoders): 10x.
            'joint_noise': {'joint_position_noise_std': float(level),
                            'joint_velocity_noise_std': 10.0 * float(level)},
            'control_jitter': {'control_period_jitter': float(level)},
            'camera_pose': {'camera_position_jitter_m': float(level),
                            'camera_rotation_jitter_rad': 3.0 * float(level)},
            'light': {'light_scale': scale},
            'colors': {'color_jitter': float(level)},
            'image_noise': {'image_noise_std': float(level)},
        }[self.name]
        return replace(env, randomization=replace(r, **changes))

    def label(self, level: float) -> str:
        if self.unit == 'x':
            return f'{self.name} x{level:g}'
        return f'{self.name} {level:g} {self.unit}'


PERTURBATIONS = {p.name: p for p in (
    Perturbation('action_delay', 'ticks', (1, 2)),
    Perturbation('observation_delay', 'ticks', (1,)),
    Perturbation('link_mass', 'x', (0.8, 1.2)),
    Perturbation('object_mass', 'x', (0.5, 2.0)),
    Perturbation('friction', 'x', (0.5, 1.5)),
    Perturbation('damping', 'x', (0.5, 2.0)),
    Perturbation('actuator_gain', 'x', (0.7, 1.3)),
    Perturbation('joint_noise', 'rad (vel 10x)', (0.01, 0.03)),
    Perturbation('control_jitter', 'of a period', (0.2,)),
    Perturbation('camera_pose', 'm (rad 3x)', (0.01, 0.02), cameras_only=True),
    Perturbation('light', 'x', (0.5, 1.5), cameras_only=True),
    Perturbation('colors', 'RGB', (0.1,), cameras_only=True),
    Perturbation('image_noise', '/255', (8.0,), cameras_only=True),
)}


def parse_perturb(items: list[str] | None, cameras: bool) -> list[tuple[Perturbation, float]]:
    """['action_delay=1,2', 'friction'] -> (perturbation, level) pairs; a name alone takes its
    default levels; none given: every perturbation that applies (camera ones for camera
    models)."""
    if not items:
        return [(p, level) for p in PERTURBATIONS.values() if cameras or not p.cameras_only
                for level in p.levels]
    out = []
    for item in items:
        name, _, text = item.partition('=')
        if name not in PERTURBATIONS:
            raise ValueError(f'unknown perturbation {name!r}; known: {", ".join(PERTURBATIONS)}')
        p = PERTURBATIONS[name]
        try:
            levels = [float(v) for v in text.split(',')] if text else list(p.levels)
        except ValueError:
            raise ValueError(f'perturbation {item!r}: levels must be numbers, e.g. '
                             f'{name}={",".join(str(v) for v in p.levels)}') from None
        out += [(p, level) for level in levels]
    return out


POLICY_PARAMS = Path(__file__).resolve().parents[1] / 'config' / 'policy.yaml'


def robot_filter(params_file: str | Path = POLICY_PARAMS) -> float:
    """max_delta_per_tick of a policy node parameter file (default: config/policy.yaml, the
    robot's)."""
    from rldt_ros.safe_yaml import load_yaml
    values = (load_yaml(params_file) or {}).get('policy_node', {}).get('ros__parameters', {})
    if 'max_delta_per_tick' not in values:
        raise ValueError(f'{params_file}: policy_node.ros__parameters.max_delta_per_tick is not '
                         'set')
    return float(values['max_delta_per_tick'])


def evaluate_robustness(models: dict[str, list[Path]], rows: list[tuple[Perturbation, float]],
                        base: EnvSection, episodes: int, seed: int, mode: str = 'card',
                        progress: bool = True) -> dict:
    """{label: {row: {per_model: [...], mean, sd, pooled, ci95}}} plus the row conditions.

    mode: 'card' (each model's deploy mode, sampler.deterministic), 'deterministic' or
    'stochastic'.
    """
    from rldt_train.evaluate import evaluate
    from rldt_train.evaluate import onnx_policy
    table: dict = {'rows': ['nominal'] + [p.label(level) for p, level in rows],
                   'conditions': {}, 'models': {}}
    conditions = [('nominal', base)] + [(p.label(level), p.apply(base, level))
                                        for p, level in rows]
    for label, env in conditions:
        table['conditions'][label] = _describe(env)
    for name, dirs in models.items():
        results: dict = {}
        for folder in dirs:
            card = load_model_card(folder)
            deterministic = card.deterministic if mode == 'card' else mode == 'deterministic'
            for label, env in conditions:
                result = evaluate(onnx_policy(str(folder), deterministic=deterministic,
                                              seed=seed),
                                  card.task, episodes, card.chunk_length, seed=seed,
                                  num_envs=16, conditions=env)
                results.setdefault(label, []).append(result.successes)
                if progress:
                    print(f'  {name} {Path(folder).name} [{label}]: '
                          f'{result.success_rate:.0%}', flush=True)
        table['models'][name] = {'folders': [str(d) for d in dirs],
                                 'rows': {label: _cell(runs) for label, runs in
                                          results.items()}}
    return table


def _cell(runs: list[np.ndarray]) -> dict:
    rates = np.array([r.mean() for r in runs])
    pooled = np.concatenate(runs)
    return {'per_model': rates.tolist(), 'mean': float(rates.mean()),
            'sd': float(rates.std(ddof=1)) if len(rates) > 1 else 0.0,
            'episodes_per_model': int(len(runs[0])), 'pooled': float(pooled.mean()),
            'ci95': list(wilson_interval(pooled))}


def _describe(env: EnvSection) -> dict:
    out = {'max_delta_per_tick': env.max_delta_per_tick,
           'action_delay_ticks': list(env.action_delay_ticks),
           'observation_delay_ticks': list(env.observation_delay_ticks)}
    nominal = EnvSection().randomization.to_dict()
    out.update({k: v for k, v in env.randomization.to_dict().items() if v != nominal[k]})
    return out


def format_cell(cell: dict) -> str:
    low, high = cell['ci95']
    if len(cell['per_model']) > 1:
        return (f"{cell['mean']:.0%} +- {cell['sd']:.0%} [{low:.0%}, {high:.0%}]")
    return f"{cell['mean']:.0%} [{low:.0%}, {high:.0%}]"


def write_report(table: dict, out: Path, title: str, base: EnvSection, episodes: int,
                 seed: int, mode: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    names = list(table['models'])
    counts = {n: len(table['models'][n]['folders']) for n in names}
    lines = [f'# Robustness: {title}', '',
             f"Success rate per perturbation, {episodes} episodes per model and row (episode "
             f"seed {seed}, the same episodes in every row), sampling mode: {mode}. Every row "
             f"runs on top of: {_base_text(base)}. A label with several models (e.g. training "
             f"seeds) shows mean +- sd over its models and the 95% Wilson interval of all its "
             f"episodes pooled; one model: its rate and 95% Wilson interval.", '',
             '| perturbation | ' + ' | '.join(f'{n} ({counts[n]} model'
                                              f'{"s" if counts[n] > 1 else ""})'
                                              for n in names) + ' |',
             '|---|' + '---|' * len(names)]
    for row in table['rows']:
        lines.append(f'| {row} | ' + ' | '.join(format_cell(table['models'][n]['rows'][row])
                                                 for n in names) + ' |')
    lines += ['', '![robustness](robustness.png)', '']
    (out / 'robustness.md').write_text('\n'.join(lines))
    (out / 'robustness.json').write_text(json.dumps(
        {'title': title, 'episodes': episodes, 'seed': seed, 'mode': mode,
         'base': _describe(base), **table}, indent=2))
    plot(table, out / 'robustness.png', title)


def _base_text(env: EnvSection) -> str:
    if env.is_nominal:
        return 'the bare simulator (no command filter)'
    return ('the command filter at ' f'{env.max_delta_per_tick:g} per tick'
            if env.max_delta_per_tick else 'no command filter') + \
        ('' if env.randomization.is_nominal and list(env.action_delay_ticks) == [0, 0]
         else ' and ' + json.dumps(_describe(env)))


def plot(table: dict, path: Path, title: str) -> None:
    """Grouped bars: one group per row, one bar per label, 95% interval whiskers."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names, rows = list(table['models']), table['rows']
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.7 * len(rows) * max(1, len(names)) / 1.5), 4.2))
    x = np.arange(len(rows))
    for i, name in enumerate(names):
        cells = [table['models'][name]['rows'][r] for r in rows]
        centre = np.array([c['mean'] for c in cells])
        low = np.array([c['ci95'][0] for c in cells])
        high = np.array([c['ci95'][1] for c in cells])
        pooled = np.array([c['pooled'] for c in cells])
        ax.bar(x + (i - (len(names) - 1) / 2) * width, centre, width, label=name, alpha=0.85,
               yerr=[np.maximum(pooled - low, 0), np.maximum(high - pooled, 0)], capsize=2)
    ax.set_xticks(x)
    ax.set_xticklabels(rows, rotation=40, ha='right', fontsize=8)
    ax.set_ylabel('success rate')
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=10)
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
