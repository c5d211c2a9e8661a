"""The `dlapps` command: list, train, evaluate, predict, tune. Thin: parses, then calls the API.

Start-up is quiet: TensorFlow's C++ and absl logs and Keras' retracing warnings are hidden unless
`--verbose` is given (or the user set TF_CPP_MIN_LOG_LEVEL=0). Progress bars stay.
"""

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

evaluate and predict use the configuration saved with the model (config.json); --set may change
only inference-time settings (e.g. beam_size, threshold, top_k) and the data.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with user errors on one line (`dlapps: error: ...`, exit 2), like every other error."""

    def error(self, message: str):
        self.exit(2, f"dlapps: error: {message} (see `{self.prog} --help`)\n")


def _common(parser: argparse.ArgumentParser, profile: bool = True) -> None:
    parser.add_argument("task", help="task name (see `dlapps list`)")
    if profile:
        parser.add_argument("--profile", default="demo", help="recipe profile: smoke, demo, fast or full (default: demo)")
        parser.add_argument("--config", dest="config_file",
                            help="a TOML file with a [config] table (e.g. best_config.toml)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value (typed; repeatable); keys: `dlapps list --keys TASK`")
    parser.add_argument("--data", help="a local file or folder with the task's data (sets source=file)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up and Keras' warnings")


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
    parser = _Parser(prog="dlapps", description="Deep-learning applications with Keras 3.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    listing = commands.add_parser("list", help="list the tasks (or a task's config keys)")
    listing.add_argument("--keys", metavar="TASK", help="print the config keys of TASK with their defaults")
    listing.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)

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

    model_help = ("a .keras file or a folder with model.keras (default: saved_models/TASK here, "
                  "else $DLAPPS_MODELS/TASK, else this checkout's saved_models/TASK)")
    evaluate = commands.add_parser("evaluate", help="metrics of a saved model (on --data: the whole file)")
    _common(evaluate, profile=False)
    evaluate.add_argument("--model", help=model_help)

    predict = commands.add_parser("predict", help="predictions of a saved model on raw inputs")
    _common(predict, profile=False)
    predict.add_argument("inputs", nargs="*", help="raw inputs: CSV rows, texts, image files... (see the task)")
    predict.add_argument("--model", help=model_help)
    predict.add_argument("--overwrite", action="store_true", help="replace output files that already exist")

    explain = commands.add_parser("explain", help="why a saved model decided: Grad-CAM, saliency, integrated "
                                  "gradients, occlusion, permutation importance (dlapps/explain.py)")
    _common(explain, profile=False)
    explain.add_argument("inputs", nargs="*", help="what predict takes: image files, texts, CSV rows")
    explain.add_argument("--model", help=model_help)
    explain.add_argument("--method", help="mnist/imagenet: gradcam|saliency (default both); spam/sentiment: "
                         "ig|occlusion; tabular: occlusion (rows)|permutation (--data FILE.csv)")
    explain.add_argument("--output", help="texts: .html or .png (default TASK.explain.html); tabular: the .png")
    explain.add_argument("--overwrite", action="store_true", help="replace output files that already exist")

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
    tune.add_argument("--worker-timeout", type=float, default=900.0, metavar="SECONDS",
                      help="the chief stops (exit 3, state kept) when a worker holding a trial is silent "
                           "this long (default 900)")
    tune.add_argument("--quiet", action="store_true")

    lr_find = commands.add_parser("lr-find", help="learning-rate range test: suggests a learning_rate as a "
                                  "--config file (dlapps/optim.py)")
    _common(lr_find)
    _runtime(lr_find)
    lr_find.add_argument("--steps", type=int, default=300, help="batches of the exponential sweep (default 300)")
    lr_find.add_argument("--min-lr", type=float, default=1e-6, help="first learning rate (default 1e-6)")
    lr_find.add_argument("--max-lr", type=float, default=10.0, help="last learning rate (default 10)")
    lr_find.add_argument("--runs-dir", default="runs", help="writes RUNS_DIR/<task>/lr-find-<UTC time>/ (default runs/)")
    lr_find.add_argument("--quiet", action="store_true", help="no progress bar")

    export = commands.add_parser("export", help="a saved model as a SavedModel, LiteRT or ONNX file, checked "
                                 "against the .keras model (dlapps/export.py)")
    export.add_argument("task", help="task name (see `dlapps list`)")
    export.add_argument("--model", help="a .keras file or a folder with model.keras (default saved_models/TASK)")
    export.add_argument("--format", dest="fmt", required=True, choices=["saved_model", "litert", "onnx"])
    export.add_argument("--output", help="folder to write (default exports/TASK/FORMAT/)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    export.add_argument("--check-data", metavar="FILE", help="also check parity on this file (the task's --data format)")
    export.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up and converter logs")

    serve = commands.add_parser("serve", help="REST API + web app over saved models (dlapps/serve.py)")
    serve.add_argument("tasks", nargs="*", help="tasks to serve (default: every task with a saved model)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    serve.add_argument("--models", help="a folder of TASK/model.keras (default saved_models/)")
    serve.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up lines")
    return parser


def _resolve(args):
    """(task, Config) of train/tune/lr-find: defaults < profile < --config < --data/--set."""
    from dlapps import config, get_task

    task = get_task(args.task)
    sets = config.parse_sets(args.sets)
    if args.data:
        sets.setdefault("data", args.data)
    return task, config.resolve(task, args.profile, sets, args.config_file)


def _model_and_config(args):
    """(task, model path or None, Config, predict options, whether data were given) of evaluate and
    predict: the model's own config, with the inference-time --set values and --data."""
    from dlapps import config, get_task, runs

    task = get_task(args.task)
    sets = config.parse_sets(args.sets)
    if args.data:
        sets["data"] = args.data
    path = runs.find_model(task.name, args.model)
    cfg, options = runs.model_config(task, path, sets)
    return task, path, cfg, options, "data" in sets


def _no_model(task_name: str):
    from dlapps import UserError, runs

    looked = ", ".join(str(folder) for folder in runs.model_search_path(task_name))
    return UserError(f"no trained {task_name} model found (looked in {looked}); "
                     f"train one with `dlapps train {task_name} --save` or pass --model PATH")


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
    if args.command == "explain":
        from dlapps import explain, runs

        task, path, cfg = _model_and_config(args)[:3]
        pretrained = task.pretrained(cfg) if path is None else None
        if path is None and pretrained is None:
            raise _no_model(task.name)
        model, info = pretrained or runs.load_model(path)
        for line in explain.explain(task.name, args.inputs, model, info, cfg, method=args.method, data=args.data,
                                    output=args.output, overwrite=args.overwrite):
            print(line)
        return 0
    if args.command in ("evaluate", "predict"):
        from dlapps import runs, training

        task, path, cfg, options, data_given = _model_and_config(args)
        if args.command == "evaluate":
            if path is None:
                raise _no_model(task.name)
            print(json.dumps(training.evaluate(task, path, cfg, whole_file=data_given), indent=2))
            return 0
        pretrained = task.pretrained(cfg) if path is None else None
        if path is None and pretrained is None:
            raise _no_model(task.name)
        model, info = pretrained or runs.load_model(path)
        options["overwrite"] = args.overwrite
        for line in task.predict(model, args.inputs, info, cfg, options):
            print(line)
        return 0
    if args.command == "export":
        from dlapps import export

        print(export.summary(export.export_model(args.task, args.model, args.fmt, args.output, args.overwrite,
                                                 args.check_data)))
        return 0
    if args.command == "serve":
        from dlapps import serve

        serve.serve(args.tasks or None, args.host, args.port, args.models)
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
    if args.command == "tune":
        from dlapps import tuning
        from dlapps.runtime import Runtime

        runtime = Runtime(args.strategy, args.devices, args.precision, args.jit, args.seed, args.deterministic)
        tuning.tune(task, cfg, runtime=runtime, tuner=args.tuner, max_trials=args.max_trials,
                    executions_per_trial=args.executions_per_trial, objective=args.objective,
                    runs_root=args.runs_dir, run_dir=args.run_dir, overwrite=args.overwrite,
                    train_best=args.train_best, chief=args.chief, worker=args.worker,
                    chief_timeout=args.chief_timeout, worker_timeout=args.worker_timeout,
                    quiet=args.quiet)
        return 0
    if args.command == "lr-find":
        from dlapps import optim
        from dlapps.runtime import Runtime
        from dlapps.training import verbosity

        runtime = Runtime(args.strategy, args.devices, args.precision, args.jit, args.seed, args.deterministic)
        found = optim.find_learning_rate(task, cfg, runtime, runs_root=args.runs_dir, steps=args.steps,
                                         min_lr=args.min_lr, max_lr=args.max_lr, config_file=args.config_file,
                                         command=" ".join(["dlapps lr-find", task.name, "--profile", args.profile]
                                                          + [f"--set {pair}" for pair in args.sets]),
                                         profile=args.profile, verbose=verbosity(args.quiet))
        print(f"suggested learning_rate = {found['suggested']:.3g} (lowest smoothed loss at {found['minimum']:.3g}, "
              f"/ 10; steepest fall at {found['steepest']:.3g}; {found['steps']} batches"
              f"{', stopped at divergence' if found['diverged'] else ''})")
        print(f"plot: {found['plot']}")
        print(f"use: dlapps train {task.name} --profile {args.profile} --config {found['toml']}")
        return 0
    raise AssertionError(args.command)


def _print_keys(task_name: str) -> int:
    import dataclasses

    from dlapps import get_task

    from dlapps import config

    task = get_task(task_name)
    types = config.field_types(task.Config)
    for field in dataclasses.fields(task.Config):
        allowed = config.choices(types[field.name])
        note = f"  (one of: {', '.join(map(str, allowed))})" if allowed else ""
        print(f"{field.name:<24} {field.default!r}{note}")
    if task.predict_options:
        print("\npredict options (dlapps predict --set KEY=VALUE):")
        for name, default in task.predict_options.items():
            print(f"{name:<24} {default!r}")
    if task.inference_keys:
        print(f"\nsettable on a trained model (evaluate/predict --set): {', '.join(task.inference_keys)}")
    return 0


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _protect_dash_inputs(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Inputs of `predict` that begin with '-' and a digit or '.' (a CSV row like "-121.5,38.6,...")
    are not options: hide them from argparse behind placeholders, wherever they stand."""
    if not argv or argv[0] not in ("predict", "explain"):
        return argv, {}
    hidden, out = {}, []
    for item in argv:
        if len(item) > 1 and item[0] == "-" and (item[1].isdigit() or item[1] == "."):
            key = f"\x00input{len(hidden)}"
            hidden[key] = item
            item = key
        out.append(item)
    return out, hidden


def quiet_start(verbose: bool) -> None:
    """Hide TensorFlow/absl start-up lines and Keras warnings unless `verbose` (or the user set
    TF_CPP_MIN_LOG_LEVEL=0); must run before TensorFlow is imported."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0":  # a user's level 0 asks for TensorFlow's lines
        _import_tensorflow_silently()
    import logging
    import warnings

    warnings.filterwarnings("ignore", module=r"(keras|tensorflow|absl|keras_tuner)(\.|$)")
    warnings.filterwarnings("ignore", category=UserWarning, message=r".*(retracing|shuffle|input_shape).*")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


def _import_tensorflow_silently() -> None:
    """Import TensorFlow with the process's stderr (file descriptor 2) sent to /dev/null.

    TensorFlow 2.21 prints its oneDNN and CUDA start-up lines through absl before any log level
    applies (TF_CPP_MIN_LOG_LEVEL does not hide them), so only an OS-level redirect does. An
    import error is raised again, visibly, by the next `import tensorflow`.
    """
    import sys

    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    except Exception:  # noqa: BLE001  (shown by the next import, with stderr back)
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line and exit 2; Ctrl-C exits 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, hidden = _protect_dash_inputs(argv)
    parser = build_parser()
    if argv and argv[0] in ("predict", "explain"):  # inputs and options in any order
        args = _subparser(parser, argv[0]).parse_intermixed_args(argv[1:])
        args.command = argv[0]
    else:
        args = parser.parse_args(argv)
    if hidden:
        args.inputs = [hidden.get(item, item) for item in args.inputs]
    quiet_start(getattr(args, "verbose", False))
    try:
        return run(args)
    except UserError as err:
        print(f"dlapps: error: {err}", file=sys.stderr)
        code = getattr(err, "exit_code", 2)
        if code != 2:  # a lost peer: TensorFlow's collective threads may hang at exit; leave now
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except KeyboardInterrupt:
        print("dlapps: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
