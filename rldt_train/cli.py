"""`rldt-train {collect,pretrain,finetune,eval,export,robustness,benchmark,demo}`: the CLI.

Every command takes `--config config/train/<task>.yaml` plus `key=value` overrides
(e.g. `pretrain.steps=2000 seed=3`), and prints a short summary table at the end.
"""
import argparse
import json
import sys
from pathlib import Path

from rldt_train.config import load_config


def _print_summary(title: str, summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=title, show_header=False)
    for key, value in summary.items():
        table.add_row(str(key), f'{value:.4g}' if isinstance(value, float) else str(value))
    Console().print(table)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', type=Path, help='config/train/<task>.yaml')
    parser.add_argument('overrides', nargs='*', help='key=value overrides, e.g. seed=1')


def cmd_collect(args) -> dict:
    from rldt_train.data.collect import dataset_path
    from rldt_train.data.collect import run_collect
    config = load_config(args.config, args.overrides)
    if args.out:
        return run_collect(config, args.out)
    # Named by a hash of what determines the content: the same config reuses the file.
    return run_collect(config, dataset_path(config), reuse=not args.force)


def cmd_pretrain(args) -> dict:
    from rldt_train.evaluate import evaluate
    from rldt_train.evaluate import torch_policy
    from rldt_train.policy.flow_policy import load_policy
    from rldt_train.pretrain import run_pretrain
    config = load_config(args.config, args.overrides)
    run_dir = args.run_dir or Path('runs') / config.task / 'pretrain'
    summary = run_pretrain(config, args.dataset, run_dir, resume=args.resume)
    if config.pretrain.eval_episodes:
        policy = load_policy(summary['policy'])
        result = evaluate(torch_policy(policy), config.task, config.pretrain.eval_episodes,
                          config.policy.horizon, seed=config.seed + 1000, progress=True,
                          conditions=config.env)
        summary.update({f'eval_{k}': v for k, v in result.as_dict().items()})
    return summary


def cmd_finetune(args) -> dict:
    from rldt_train.envs.registry import use_conditions
    from rldt_train.finetune import run_finetune
    config = load_config(args.config, args.overrides)
    run_dir = args.run_dir or Path('runs') / config.task / 'finetune'
    print(f'finetune: env conditions: {config.env.describe()}', flush=True)
    # Every env of the run (collection, in-run and final evaluation) under the env section.
    with use_conditions(config.env):
        return run_finetune(config, run_dir, args.base, resume=args.resume)


def cmd_eval(args) -> dict:
    """Both sampling modes (or --mode), mean return and success with 95% intervals."""
    from rldt_train import evaluate as ev
    from rldt_train.reporting import MODES
    from rldt_train.reporting import format_eval
    if args.model:
        from rldt_ros.model_card import load_model_card
        card = load_model_card(args.model)
        task, horizon = args.task or card.task, card.chunk_length

        def make_policy(deterministic: bool):
            return ev.onnx_policy(str(args.model), deterministic=deterministic, seed=args.seed)
    elif args.checkpoint:
        from rldt_train.policy.flow_policy import load_policy
        loaded = load_policy(args.checkpoint)
        if not args.task:
            raise SystemExit('eval --checkpoint needs --task')
        task, horizon = args.task, loaded.config.horizon

        def make_policy(deterministic: bool):
            return ev.torch_policy(loaded, deterministic=deterministic)
    else:
        raise SystemExit('eval needs --model DIR or --checkpoint FILE')
    has_success = ev.task_has_success(task)
    modes = [args.mode] if args.mode else list(MODES)
    summary = {'task': task, 'episodes': args.episodes, 'seed': args.seed}
    for mode in modes:
        result = ev.evaluate(make_policy(mode == 'deterministic'), task, args.episodes,
                             horizon, seed=args.seed, progress=True).summary(has_success)
        summary[f'{mode}_return'] = format_eval(result, 'return')
        if has_success:
            summary[f'{mode}_success'] = format_eval(result, 'success')
        summary[f'{mode}_length_mean'] = result['length_mean']
    return summary


def cmd_export(args) -> dict:
    from rldt_ros.model_card import load_model_card
    from rldt_train.export import export_policy
    out = export_policy(args.checkpoint, args.out, args.task, name=args.name,
                        steps=args.steps, deploy_mode=args.mode)
    card = load_model_card(out)
    return {'model': str(out), 'onnx_sha256': card.raw['files']['policy.onnx']['sha256'][:16],
            'parity_max_abs_error': card.raw['provenance']['parity_max_abs_error'],
            'chunk': f'{card.chunk_length} x {card.action_dim}', 'steps': card.sampler_steps,
            'deterministic': card.raw['sampler']['deterministic']}


def cmd_robustness(args) -> dict:
    """Each model under each perturbation; table, plot and numbers in --out."""
    from rldt_ros.model_card import load_model_card
    from rldt_train import robustness as rb
    from rldt_train.config import EnvSection
    models: dict[str, list[Path]] = {}
    for item in args.model:
        label, sep, folder = item.rpartition('=')
        models.setdefault(label if sep else Path(folder).name, []).append(Path(folder))
    cards = [load_model_card(d) for dirs in models.values() for d in dirs]
    tasks = sorted({c.task for c in cards})
    if len(tasks) != 1:
        raise ValueError(f'robustness: all models must share one task, got {tasks}')
    if args.filter == 'robot':
        cap = rb.robot_filter(args.params or rb.POLICY_PARAMS)
    else:
        cap = float(args.filter)
    base = EnvSection(max_delta_per_tick=cap)
    rows = rb.parse_perturb(args.perturb, cameras=any(c.cameras for c in cards))
    out = args.out or Path('reports') / 'robustness' / '_'.join(models)
    table = rb.evaluate_robustness(models, rows, base, args.episodes, args.seed, args.mode)
    title = args.title or f'{tasks[0]}: ' + ', '.join(models)
    rb.write_report(table, out, title, base, args.episodes, args.seed, args.mode)
    summary = {'report': str(out / 'robustness.md'), 'filter': cap,
               'episodes': args.episodes}
    for name, block in table['models'].items():
        for row in table['rows']:
            summary[f'{name}: {row}'] = rb.format_cell(block['rows'][row])
    return summary


def cmd_benchmark(args) -> dict:
    from rldt_train.benchmark import run_benchmark
    if args.config is None:
        raise SystemExit('benchmark needs --config config/train/<task>.yaml')
    config = load_config(args.config, args.overrides)
    out = args.out or Path('reports') / 'benchmark' / args.config.stem
    return run_benchmark(config, args.config, args.overrides, args.seeds, out, args.jobs)


def cmd_demo(args) -> dict:
    if args.vision:
        if args.full:
            raise SystemExit('demo: --full sizes the state demo; --vision runs the camera '
                             'story at config/train/cube_push_vision.yaml sizes')
        from rldt_train.demo_vision import run_vision_demo
        return run_vision_demo(out_dir=args.out or Path('reports/demo_vision'),
                               skip_ros=args.skip_ros)
    from rldt_train.demo import run_demo
    return run_demo(full=args.full, out_dir=args.out or Path('reports/demo'),
                    skip_ros=args.skip_ros, robust=args.robust)


def build_parser() -> argparse.ArgumentParser:
    from rldt_train.robustness import PERTURBATIONS
    parser = argparse.ArgumentParser(prog='rldt-train', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('collect', help='make a demonstration dataset')
    _add_config_args(p)
    p.add_argument('--out', type=Path, help='dataset file (default: data/<task>_<hash>.hdf5, '
                   'reused when it exists)')
    p.add_argument('--force', action='store_true', help='collect again even if cached')
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser('pretrain', help='behaviour-cloning pretraining')
    _add_config_args(p)
    p.add_argument('--dataset', type=Path, required=True)
    p.add_argument('--run-dir', type=Path)
    p.add_argument('--resume', action='store_true', help='continue from the last checkpoint')
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser('finetune', help='RLDT online fine-tuning')
    _add_config_args(p)
    p.add_argument('--base', type=Path, required=True, help='pretrained policy checkpoint')
    p.add_argument('--run-dir', type=Path)
    p.add_argument('--resume', action='store_true', help='continue from the last checkpoint')
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser('eval', help='evaluate a checkpoint or an exported model')
    p.add_argument('--model', type=Path, help='exported model folder (ONNX Runtime)')
    p.add_argument('--checkpoint', type=Path, help='policy checkpoint (torch)')
    p.add_argument('--task')
    p.add_argument('--episodes', type=int, default=50)
    p.add_argument('--seed', type=int, default=1000)
    p.add_argument('--mode', choices=('deterministic', 'stochastic'),
                   help='evaluate one sampling mode (default: both; deterministic is x0 = 0)')
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser('export', help='ONNX + model card, parity-checked')
    p.add_argument('--checkpoint', type=Path, required=True)
    p.add_argument('--task', required=True)
    p.add_argument('--out', type=Path, required=True, help='model folder, e.g. models/NAME')
    p.add_argument('--name')
    p.add_argument('--steps', type=int, help='Euler steps (default: the policy config)')
    p.add_argument('--mode', choices=('deterministic', 'stochastic'),
                   help='sampling mode to deploy (written into the card; default: the mode '
                   'the fine-tuning run chose, else stochastic)')
    p.set_defaults(func=cmd_export)

    p = sub.add_parser('robustness', help='evaluate models under perturbations (delay, masses, '
                       'friction, gains, noise, cameras): table + plot')
    p.add_argument('--model', action='append', required=True, metavar='[LABEL=]DIR',
                   help='exported model folder; repeat it (e.g. one per training seed, the '
                   'same LABEL groups them)')
    p.add_argument('--perturb', nargs='+', metavar='NAME[=L1,L2]',
                   help='perturbations and levels (default: all that apply), e.g. '
                   'action_delay=1,2 friction=0.5,1.5; names: ' + ', '.join(PERTURBATIONS))
    p.add_argument('--episodes', type=int, default=100, help='episodes per model and row')
    p.add_argument('--seed', type=int, default=1000, help='episode seed (same in every row)')
    p.add_argument('--mode', choices=('card', 'deterministic', 'stochastic'), default='card',
                   help="sampling mode (default: each model's deploy mode from its card)")
    p.add_argument('--filter', default='robot', help="command filter every row runs with: "
                   "'robot' (max_delta_per_tick of --params), or a number (0: none)")
    p.add_argument('--params', type=Path, help='the policy node parameter file --filter '
                   "robot reads (default: this package's config/policy.yaml)")
    p.add_argument('--title')
    p.add_argument('--out', type=Path, help='report folder (default reports/robustness/...)')
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser('benchmark', help='collect -> BC -> RLDT for several seeds, one table')
    _add_config_args(p)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--jobs', type=int, default=2, help='seeds run at once (one core each)')
    p.add_argument('--out', type=Path, help='report folder (default reports/benchmark/<config>)')
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser('demo', help='the whole pipeline on the built-in task')
    p.add_argument('--full', action='store_true', help='larger settings (longer, better)')
    p.add_argument('--vision', action='store_true',
                   help='the camera story on cube_push_vision (~30 min on 2 cores)')
    p.add_argument('--out', type=Path,
                   help='report folder (default reports/demo, reports/demo_vision)')
    p.add_argument('--skip-ros', action='store_true', help='no ROS 2 loop stage')
    p.add_argument('--robust', action='store_true', help='also train the recipe of '
                   'config/train/cube_push_robust.yaml (command filter, latency, domain '
                   'randomization) and compare both under perturbations (--full does too)')
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = args.func(args)
    except (ValueError, FileNotFoundError) as exc:  # config, model card, dataset errors
        print(f'rldt-train {args.command}: error: {exc}', file=sys.stderr)
        return 2
    _print_summary(f'rldt-train {args.command}', summary)
    print(json.dumps({'command': args.command, **summary}, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
