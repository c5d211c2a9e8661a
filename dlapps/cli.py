"""The `dlapps` command: list, train, evaluate, predict, tune. Thin: parses, then calls the API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dlapps.errors import UserError

EPILOG = """examples:
  dlapps list
  dlapps train tabular --profile demo
  dlapps train tabular --profile full --data housing.csv --set target=median_house_value --save
  dlapps evaluate tabular --model runs/tabular/<time>/model.keras --data other.csv
  dlapps predict tabular "-122.23,37.88,41,880,129,322,126,8.3252,NEAR BAY"
"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help="task name (see `dlapps list`)")
    parser.add_argument("--profile", default="demo", help="recipe profile: smoke, demo or full (default: demo)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value (typed; repeatable); keys: `dlapps list --keys TASK`")
    parser.add_argument("--data", help="a local file or folder with the task's data (sets source=file)")
    parser.add_argument("--config", dest="config_file", help="a TOML file with a [config] table (e.g. best_config.toml)")


def _runtime(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("runtime")
    group.add_argument("--strategy", default="auto",
                       choices=["auto", "default", "mirrored", "multiworker", "tpu"],
                       help="tf.distribute strategy (default auto: TPU, else Mirrored on >1 GPU, else default)")
    group.add_argument("--devices", help="cpu:N splits the CPU into N logical devices (e.g. cpu:2)")
    group.add_argument("--precision", default="float32", choices=["float32", "mixed_float16", "mixed_bfloat16"],
                       help="Keras dtype policy (default float32)")
    group.add_argument("--jit", action="store_true", help="compile train/predict steps with XLA")
    group.add_argument("--seed", type=int, help="random seed (default: the config's seed)")
    group.add_argument("--deterministic", action="store_true", help="also enable TF op determinism")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `dlapps` command."""
    parser = argparse.ArgumentParser(prog="dlapps", description="Deep-learning applications with Keras 3.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list the tasks (or a task's config keys)")
    listing.add_argument("--keys", metavar="TASK", help="print the config keys of TASK with their defaults")

    train = commands.add_parser("train", help="train a task; writes runs/<task>/<UTC time>/")
    _common(train)
    _runtime(train)
    train.add_argument("--runs-dir", default="runs", help="parent folder of run directories (default runs/)")
    train.add_argument("--run-dir", help="exact run directory (default runs/<task>/<UTC time>)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its backup/")
    train.add_argument("--save", action="store_true", help="also write saved_models/<task>/ with a model card")
    train.add_argument("--saved-models-dir", default="saved_models", help="where --save writes (default saved_models/)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run dir or saved model")
    train.add_argument("--quiet", action="store_true", help="no progress bars")

    evaluate = commands.add_parser("evaluate", help="metrics of a saved model (on --data: the whole file)")
    _common(evaluate)
    evaluate.add_argument("--model", help="a .keras file or a folder with model.keras (default saved_models/TASK)")

    predict = commands.add_parser("predict", help="predictions of a saved model on raw inputs")
    _common(predict)
    predict.add_argument("inputs", nargs="*", help="raw inputs: CSV rows, texts, image files... (see the task)")
    predict.add_argument("--model", help="a .keras file or a folder with model.keras (default saved_models/TASK)")

    tune = commands.add_parser("tune", help="KerasTuner search over the task's search space")
    _common(tune)
    _runtime(tune)
    tune.add_argument("--tuner", default="random", choices=["random", "bayesian", "hyperband"])
    tune.add_argument("--max-trials", type=int, default=10)
    tune.add_argument("--executions-per-trial", type=int, default=1)
    tune.add_argument("--objective", help="metric to optimise, e.g. val_rmse (default: the task's)")
    tune.add_argument("--runs-dir", default="runs")
    tune.add_argument("--run-dir", help="tuning directory (default runs/<task>/tune-<time>); reuse to resume")
    tune.add_argument("--overwrite", action="store_true", help="restart the search from scratch")
    tune.add_argument("--train-best", action="store_true", help="retrain the best configuration afterwards")
    tune.add_argument("--chief", metavar="HOST:PORT", help="distributed tuning: the oracle's address")
    tune.add_argument("--worker", metavar="ID", help="distributed tuning: run as this worker (needs --chief)")
    tune.add_argument("--chief-timeout", type=float, default=60.0, metavar="SECONDS",
                      help="how long a worker waits for the chief to answer (default 60)")
    tune.add_argument("--quiet", action="store_true")
    return parser


def _resolve(args):
    from dlapps import config, get_task

    task = get_task(args.task)
    sets = config.parse_sets(args.sets)
    if args.data:
        sets.setdefault("data", args.data)
    return task, config.resolve(task, args.profile, sets, args.config_file)


def _model_path(task, args) -> Path:
    return Path(args.model) if args.model else Path("saved_models") / task.name / "model.keras"


def run(args) -> int:
    """Execute parsed arguments; returns the exit code."""
    from dlapps import list_tasks

    if args.command == "list":
        if args.keys:
            return _print_keys(args.keys)
        from dlapps.task import get_task

        for name in list_tasks():
            print(f"{name:<12} {get_task(name).summary}")
        return 0
    task, cfg = _resolve(args)
    if args.command == "train":
        from dlapps import training
        from dlapps.runtime import Runtime

        runtime = Runtime(args.strategy, args.devices, args.precision, args.jit, args.seed, args.deterministic)
        result = training.train(task, cfg, runtime, runs_root=args.runs_dir, run_dir=args.run_dir,
                                resume=args.resume, save=args.save, saved_models_root=args.saved_models_dir,
                                overwrite=args.overwrite, quiet=args.quiet)
        print(json.dumps({"run_dir": str(result.run_dir), **result.metrics}, indent=2))
        return 0
    if args.command == "evaluate":
        from dlapps import training

        metrics = training.evaluate(task, _model_path(task, args), cfg)
        print(json.dumps(metrics, indent=2))
        return 0
    if args.command == "predict":
        from dlapps import training

        path = _model_path(task, args)
        if not path.exists() and args.model is None and task.pretrained is not None:
            model, info = task.pretrained(cfg)
        else:
            model, info = training.load_model(path)
        for line in task.predict(model, args.inputs, info, cfg):
            print(line)
        return 0
    if args.command == "tune":
        from dlapps import tuning
        from dlapps.runtime import Runtime

        runtime = Runtime(args.strategy, args.devices, args.precision, args.jit, args.seed, args.deterministic)
        tuning.run_cli(task, cfg, runtime, args)
        return 0
    raise AssertionError(args.command)


def _print_keys(task_name: str) -> int:
    import dataclasses

    from dlapps import get_task

    task = get_task(task_name)
    for field in dataclasses.fields(task.Config):
        print(f"{field.name:<24} {field.default!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line and exit 2; Ctrl-C exits 130."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        print(f"dlapps: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dlapps: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
