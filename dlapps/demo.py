"""`make demo`: train the demo profile of several tasks on embedded data and print what they reached.

    python -m dlapps.demo                 # the default tour (a few minutes on a laptop CPU)
    python -m dlapps.demo tabular mnist   # chosen tasks
    python -m dlapps.demo --all           # every registered task
"""

from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULT_TOUR = ("tabular", "spam", "mnist", "imagenet", "sentiment", "autoencoder")


def main(argv: list[str] | None = None) -> int:
    """Run the tour; one line per task with its headline test metrics and run directory."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="python -m dlapps.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="*", help="tasks to train (default: %(default)s)")
    parser.add_argument("--all", action="store_true", help="every registered task")
    parser.add_argument("--runs-dir", default="runs")
    args = parser.parse_args(argv)

    import dlapps
    from dlapps import config, training
    from dlapps.errors import UserError

    names = dlapps.list_tasks() if args.all else (args.tasks or [t for t in DEFAULT_TOUR if t in dlapps.list_tasks()])
    rows = []
    try:  # errors a user can fix: one line and exit code 2, as in the `dlapps` command
        tasks = [dlapps.get_task(name) for name in names]  # every name checked before any training
        for name, task in zip(names, tasks):
            print(f"\n=== {name}: {task.summary} (demo profile) ===", flush=True)
            start = time.perf_counter()
            result = training.train(task, config.resolve(task, "demo"), runs_root=args.runs_dir,
                                    quiet=not sys.stdout.isatty())
            seconds = time.perf_counter() - start
            figures = [(k, v) for k, v in result.metrics["test"].items() if isinstance(v, float)]
            headline = ", ".join(f"{k}={v:.3g}" for k, v in figures[:4])
            rows.append((name, headline, f"{seconds:.0f}s", str(result.run_dir)))
    except UserError as err:
        print(f"dlapps: error: {err}", file=sys.stderr)
        return 2
    print("\n| task | test metrics (embedded data) | time | run directory |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nPlots are in each run directory's plots/ folder; `dlapps predict TASK --model RUN_DIR ...` uses a model.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
