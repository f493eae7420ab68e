"""The stages both demos share (`make demo` on cube_push, `--vision` on cube_push_vision):
a fresh report folder, demonstrations -> BC -> RLDT with stage timings, export of both policies
in the sampling mode each is deployed in, and their evaluation in both modes."""
import json
import shutil
import time
from pathlib import Path

from rldt_train.config import TrainConfig
from rldt_train.config import load_config
from rldt_train.config import save_config
from rldt_train.reporting import MODES

STAGES = 7


def stage(number: int, title: str) -> None:
    print(f'\n[{number}/{STAGES}] {title}', flush=True)


class StageTimer:
    """Wall seconds per named stage, in the order they ran."""

    def __init__(self):
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        self.seconds[name] = time.perf_counter() - t0
        return value

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def fresh_run(out_dir: str | Path, config_path: Path, overrides: list[str]
              ) -> tuple[Path, Path, TrainConfig]:
    """An empty report folder with work/ and the resolved config.yaml: (out, work, config)."""
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    work = out / 'work'
    work.mkdir(parents=True)
    config = load_config(config_path, overrides)
    save_config(config, out / 'config.yaml')
    return out, work, config


def train(config: TrainConfig, work: Path, timer: StageTimer, titles: tuple[str, str, str]
          ) -> tuple[dict, dict, dict]:
    """Stages 1-3: demonstrations, BC, RLDT in work/; their summaries (demos, bc, finetune)."""
    from rldt_train.data.collect import run_collect
    from rldt_train.finetune import run_finetune
    from rldt_train.pretrain import run_pretrain
    stage(1, titles[0])
    demos = timer.run('collect', run_collect, config, work / 'demos.hdf5')
    stage(2, titles[1])
    bc = timer.run('pretrain', run_pretrain, config, work / 'demos.hdf5', work / 'pretrain')
    stage(3, titles[2])
    ft = timer.run('finetune', run_finetune, config, work / 'finetune', Path(bc['policy']))
    return demos, bc, ft


def export_both(task: str, bc_policy: str | Path, finetune_dir: Path, out: Path,
                suffix: str = '') -> tuple[dict[str, Path], dict[str, str]]:
    """BC and RLDT to models/<task>_{bc,rldt}<suffix>: ({label: folder}, {label: mode}).

    Each is deployed in the mode its run's held-out evaluation rated higher: BC's from the
    fine-tuning run's base evaluation, RLDT's as that run chose it (export reads it).
    """
    from rldt_ros.model_card import load_model_card
    from rldt_train.export import export_policy
    names = {'BC': f'{task}_bc{suffix}', 'RLDT': f'{task}_rldt{suffix}'}
    models = {label: out / 'models' / name for label, name in names.items()}
    stages = {'BC': 'bc', 'RLDT': 'rldt'}
    if suffix:
        stages = {label: f'{value} {suffix.strip("_")}' for label, value in stages.items()}
    base = json.loads((finetune_dir / 'evaluation.json').read_text())['base']
    export_policy(bc_policy, models['BC'], task=task, name=names['BC'],
                  provenance={'stage': stages['BC']},
                  deploy_mode=max(MODES, key=lambda m: base[m]['success_rate']))
    export_policy(finetune_dir / 'policy_finetuned.pt', models['RLDT'], task=task,
                  name=names['RLDT'], provenance={'stage': stages['RLDT']})
    deploy = {label: 'deterministic' if load_model_card(folder).deterministic else 'stochastic'
              for label, folder in models.items()}
    return models, deploy


def evaluate_both(models: dict[str, Path], task: str, episodes: int, horizon: int, seed: int,
                  progress: bool = False) -> dict[str, dict]:
    """Every model in both sampling modes on the same episode seeds: {label: {mode: ...}}."""
    from rldt_train.evaluate import evaluate_modes
    from rldt_train.evaluate import onnx_policy
    def policy(folder: Path):
        return lambda det: onnx_policy(str(folder), deterministic=det, seed=seed)
    return {label: evaluate_modes(policy(folder), task, episodes, horizon, seed=seed + 10_000,
                                  has_success=True, num_envs=min(episodes, 16),
                                  progress=progress)
            for label, folder in models.items()}


def sampler_latency(model_dir: Path, runs: int, path: Path, in_node: dict | None = None
                    ) -> dict:
    """Chunk sampler latency of an exported model on this CPU (1 thread, as the node runs it;
    camera models get uint8 images of the card's size) + histogram PNG. in_node: the sampler
    percentiles the policy node reported during the ROS loop, shown in the title."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    from rldt_ros.model_card import load_model_card
    from rldt_ros.sampler import ChunkSampler
    card = load_model_card(model_dir)
    sampler = ChunkSampler(card, providers='cpu', intra_op_threads=1)
    sampler.warmup(20)
    rng = np.random.default_rng(0)
    obs = {'state': np.zeros(card.state_dim, np.float32),
           **{c.name: rng.integers(0, 256, (c.height, c.width, 3), np.uint8)
              for c in card.cameras}}
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        sampler.sample(obs)
        times[i] = (time.perf_counter() - t0) * 1e3
    out = {'sampler_p50_ms': float(np.percentile(times, 50)),
           'sampler_p99_ms': float(np.percentile(times, 99)), 'runs': runs}
    fig, ax = plt.subplots(figsize=(6, 3.2))
    cut = 2.0 * out['sampler_p99_ms']  # a few scheduler hiccups must not squash the histogram
    ax.hist(np.minimum(times, cut), bins=60, color='tab:blue', alpha=0.8)
    for q, color in (('p50', 'k'), ('p99', 'r')):
        value = out[f'sampler_{q}_ms']
        ax.axvline(value, color=color, ls='--', label=f'{q} {value:.2f} ms')
    cameras = ', '.join(f'{c.name} {c.width}x{c.height}' for c in card.cameras)
    title = (f"chunk sampler{f' ({cameras})' if cameras else ''}, {sampler.provider}, 1 thread: "
             f'{runs} runs ({int(np.sum(times > cut))} beyond {cut:.2f} ms drawn at the edge)')
    if in_node and in_node.get('p50') is not None:
        title += (f"\ninside the policy node during the ROS loop: p50 {in_node['p50']:.2f} ms, "
                  f"p99 {in_node['p99']:.2f} ms")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel('ms per chunk' + (' (encoders once + Euler steps)' if cameras else ''))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return out
