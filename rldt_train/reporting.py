"""How a run reports itself: evaluation summaries with 95% intervals, scalars, learning curves.

Every number a run prints or writes about a policy's quality goes through `summarize`, so
the summary, TensorBoard, the learning curve and the model card agree: mean return with a
Student-t interval, success rate with a Wilson interval, and the episode count.
"""
import math
from pathlib import Path

import numpy as np

MODES = ('deterministic', 'stochastic')
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """0.975 quantile of Student's t with df degrees of freedom.

    Cornish-Fisher expansion around the normal quantile: within 0.15% of the exact value for
    df >= 3 (3.179 vs 3.182) and within 1e-4 for df >= 15 (2.1313 vs 2.1314), exact enough
    for an interval's half-width.
    """
    if df < 1:
        return math.inf
    z, v = _Z975, float(df)
    return (z + (z ** 3 + z) / (4 * v)
            + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * v ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * v ** 3)
            + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z)
            / (92160 * v ** 4))


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    """95% Student-t interval of the mean."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return (float('-inf'), float('inf'))
    half = t_quantile_975(n - 1) * values.std(ddof=1) / math.sqrt(n)
    return (float(values.mean() - half), float(values.mean() + half))


def wilson_interval(successes: np.ndarray) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (sane at 0% and 100%, unlike +-2 sd)."""
    n = len(successes)
    if n == 0:
        return (0.0, 1.0)
    p, z2 = float(np.mean(successes)), _Z975 ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z975 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # At 0% (100%) the lower (upper) end is exactly 0 (1); round-off must not say otherwise.
    low = 0.0 if p == 0.0 else max(0.0, centre - half)
    high = 1.0 if p == 1.0 else min(1.0, centre + half)
    return (low, high)


def summarize(returns: np.ndarray, successes: np.ndarray | None, lengths: np.ndarray) -> dict:
    """One evaluation as plain numbers (JSON / YAML ready)."""
    returns = np.asarray(returns, dtype=float)
    out = {'episodes': int(len(returns)), 'return_mean': float(returns.mean()),
           'return_sd': float(returns.std(ddof=1)) if len(returns) > 1 else 0.0,
           'return_ci95': list(mean_interval(returns)),
           'length_mean': float(np.mean(lengths))}
    if successes is not None:
        out['success_rate'] = float(np.mean(successes))
        out['success_ci95'] = list(wilson_interval(successes))
    return out


def metric(summary: dict, name: str) -> float:
    """'return' -> mean return, 'success' -> success rate of a `summarize` dict."""
    return summary['return_mean'] if name == 'return' else summary['success_rate']


def format_eval(summary: dict, name: str) -> str:
    """'2479 [2310, 2648] (50 ep)' or '58% [44%, 71%] (50 ep)'."""
    if name == 'success':
        low, high = summary['success_ci95']
        return (f"{summary['success_rate']:.0%} [{low:.0%}, {high:.0%}] "
                f"({summary['episodes']} ep)")
    low, high = summary['return_ci95']
    return f"{summary['return_mean']:.4g} [{low:.4g}, {high:.4g}] ({summary['episodes']} ep)"


def log_scalars(writer, scalars: dict, step: int) -> None:
    """Every finite number in scalars (name -> value) to TensorBoard at step."""
    for name, value in scalars.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            writer.add_scalar(name, value, step)


def plot_learning_curve(history: dict, path: Path, title: str, metric_name: str,
                        selected: int | None = None, final: dict | None = None) -> None:
    """Evaluation per mode with its 95% band, exploring training episodes, the selected point.

    history['eval']: list of {'iteration', 'env_steps', 'deterministic': summary,
    'stochastic': summary}; final: {'base': {mode: summary}, 'selected': {mode: summary}}
    drawn as error bars at the right edge (the held-out final evaluation).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    evals = history['eval']
    key = 'return_ci95' if metric_name == 'return' else 'success_ci95'
    colors = {'deterministic': 'tab:blue', 'stochastic': 'tab:orange'}
    for mode in MODES:
        points = [e for e in evals if mode in e]
        if not points:
            continue
        x = [e['env_steps'] for e in points]
        y = [metric(e[mode], metric_name) for e in points]
        ax.plot(x, y, marker='o', ms=3, color=colors[mode], label=f'eval {mode} (x0 = 0)'
                if mode == 'deterministic' else f'eval {mode}')
        ax.fill_between(x, [e[mode][key][0] for e in points], [e[mode][key][1] for e in points],
                        color=colors[mode], alpha=0.15)
    if metric_name == 'return' and history.get('train_return'):
        ax.plot(history['train_env_steps'], history['train_return'], color='gray', alpha=0.5,
                label='training episodes (exploring)')
    if selected is not None:
        chosen = next((e for e in evals if e['iteration'] == selected), None)
        if chosen is not None:
            ax.axvline(chosen['env_steps'], color='k', ls=':', lw=1,
                       label=f'selected: iteration {selected}')
    if final:
        right = max([e['env_steps'] for e in evals] or [0])
        for offset, (label, block) in enumerate(final.items()):
            for mode in MODES:
                if mode not in block:
                    continue
                s = block[mode]
                centre = metric(s, metric_name)
                low, high = s[key]
                ax.errorbar(right * (1.03 + 0.03 * offset), centre,
                            yerr=[[centre - low], [high - centre]], fmt='s' if label == 'base'
                            else 'D', color=colors[mode], capsize=3,
                            label=f'final {label} {mode} ({s["episodes"]} ep)')
    ax.set_xlabel('env steps')
    ax.set_ylabel('success rate' if metric_name == 'success' else 'episode return')
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='best')
    fig.tight_layout()
    tmp = path.with_suffix('.tmp.png')
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
