"""Time to quality: the plain reference a user would copy against the dlapps recipe, on one split.

    python benchmarks/time_to_quality.py --task mnist                    # reference vs the `fast` profile
    python benchmarks/time_to_quality.py --task mnist --profile fast,full
    python benchmarks/time_to_quality.py --task tabular --seeds 3        # HGB vs `full`, 3 initial seeds
    python benchmarks/time_to_quality.py --task sentiment
    python benchmarks/time_to_quality.py --task mnist --profile full --precision mixed_bfloat16 [--jit]

Both sides train, in one process and one after the other, on the training split that the dlapps
task makes of the shared data (`../shared/data`, or `$DLAPPS_SHARED_DATA`; the task's embedded
data when that folder is absent), and both are scored on that task's validation and test splits.
The references, written here from their public descriptions:

- mnist: keras-io "Simple MNIST convnet" (Conv 32 3x3 - MaxPool - Conv 64 3x3 - MaxPool -
  Flatten - Dropout 0.5 - Dense softmax; Adam, batch 128, 15 epochs), on images scaled to [0, 1].
- sentiment: keras-io "Bidirectional LSTM on IMDB" (Embedding(20000, 128), two Bidirectional
  LSTM(64), sigmoid; Adam, batch 32, 2 epochs) adapted to SST-2: a TextVectorization of the
  20,000 most frequent training words, sequences cut or padded to 64 tokens (SST-2 sentences
  have at most about 55; keras-io pads IMDB reviews to 200). Vectorizing is not timed.
- tabular: scikit-learn `HistGradientBoostingRegressor(max_iter=500)` with native categorical
  support for the string columns (pandas category dtype, `categorical_features="from_dtype"`).

The dlapps side is `dlapps.training.train` with the task's recipe profile, as `dlapps train`
runs it (callbacks, checkpoints and TensorBoard included in its time); each initial seed
(`--seeds`) is one run directory under `--runs-dir`. "Training seconds" are the wall-clock
seconds of `fit` (of `HistGradientBoostingRegressor.fit`); examples/s are training examples x
epochs (boosting iterations) / seconds. "Epochs to reference" is the first epoch at which the
recipe's validation score matched the reference's, and "~s to reference" that epoch's share of its
training time. "cpu s" are the process's CPU seconds (all threads) in the same span: on a machine
shared with other work they vary less than wall-clock seconds. Ratios are dlapps / reference, measured in the same run: on a shared or busy
machine compare ratios, not seconds. A JSON with the machine, versions and every figure is
written to `--out` (default benchmarks/results/).

`--precision` and `--jit` apply to the dlapps side only (as `dlapps train --precision/--jit`; its
row is named with them); the references stay what a user would copy: float32, no XLA.

This is a benchmark, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DLAPPS_SHARED_DATA", REPO.parent / "shared" / "data"))

# task -> (shared file under SHARED_DATA, extra --set values when it is used, metric, "max"|"min")
SHARED = {
    "mnist": ("mnist-sample/mnist_sample.npz", {}, "accuracy", "max"),
    "tabular": ("california-housing/train.csv", {"target": "median_house_value"}, "rmse", "min"),
    "sentiment": ("sst2/train.tsv", {}, "accuracy", "max"),
}
DEFAULT_PROFILE = {"mnist": "fast", "tabular": "full", "sentiment": "full"}


# ----------------------------------------------------------------------------- data
def arrays(dataset):
    """An unbatched tf.data dataset as NumPy: a tuple with one array (or dict of arrays) per element part."""
    import numpy as np

    parts = None
    for batch in dataset.batch(4096).as_numpy_iterator():
        batch = batch if isinstance(batch, tuple) else (batch,)
        if parts is None:
            parts = [[] for _ in batch]
        for i, value in enumerate(batch):
            parts[i].append(value)
    out = []
    for chunks in parts or []:
        if isinstance(chunks[0], dict):
            out.append({key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]})
        else:
            out.append(np.concatenate(chunks))
    return tuple(out)


def recipe_config(task, profile: str, sets: dict, smoke: bool):
    """The dlapps Config of `profile` on the shared data (or the embedded data when it is absent)."""
    from dlapps import config

    path, extra, _, _ = SHARED[task.name]
    values = dict(sets)
    if smoke:
        values.setdefault("source", "embedded")
    elif (SHARED_DATA / path).exists():
        values = {"data": str(SHARED_DATA / path), **extra, **values}
    else:
        print(f"note: {SHARED_DATA / path} not found; using {task.name}'s embedded data", file=sys.stderr)
        values.setdefault("source", "embedded")
    return config.resolve(task, profile, values)


# ----------------------------------------------------------------------------- references
def mnist_reference(data, seed: int, epochs: int) -> dict:
    """keras-io's simple MNIST convnet on the task's splits: {"seconds", "epochs", "val", "test", "n_train"}."""
    import keras
    import numpy as np

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (arrays(d) for d in (data.train, data.val, data.test))
    scale = lambda x: x.astype("float32") / 255.0  # noqa: E731 (keras-io scales before fit)
    classes = int(data.info["num_classes"])
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=x_train.shape[1:]),
        keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(classes, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    x, y = scale(x_train), keras.utils.to_categorical(y_train, classes)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=128, epochs=epochs, verbose=0)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu

    def accuracy(x_part, y_part):
        return float(np.mean(model.predict(scale(x_part), batch_size=512, verbose=0).argmax(axis=1) == y_part))

    return {"seconds": seconds, "cpu_seconds": cpu, "epochs": epochs, "n_train": len(x_train),
            "val": accuracy(x_val, y_val), "test": accuracy(x_test, y_test)}


def sentiment_reference(data, seed: int, epochs: int, sequence_length: int = 64) -> dict:
    """keras-io's bidirectional LSTM (IMDB) adapted to the task's texts: as `mnist_reference`."""
    import keras
    import numpy as np

    (texts, labels, *_), (val_texts, val_labels, *_), (test_texts, test_labels, *_) = (
        arrays(d) for d in (data.train, data.val, data.test))
    keras.utils.set_random_seed(seed)
    vectorize = keras.layers.TextVectorization(max_tokens=20000, output_sequence_length=sequence_length)
    vectorize.adapt(texts, batch_size=1024)
    ids = lambda t: np.asarray(vectorize(t))  # noqa: E731
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(20000, 128)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64))(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x_train = ids(texts)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(x_train, labels.astype("float32"), batch_size=32, epochs=epochs, verbose=0)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu

    def accuracy(part_texts, part_labels):
        scores = model.predict(ids(part_texts), batch_size=512, verbose=0)[:, 0]
        return float(np.mean((scores >= 0.5) == (part_labels >= 0.5)))

    return {"seconds": seconds, "cpu_seconds": cpu, "epochs": epochs, "n_train": len(x_train),
            "val": accuracy(val_texts, val_labels), "test": accuracy(test_texts, test_labels)}


def frame(columns: dict, kinds: dict):
    """The task's {column: (n, 1) array} as a DataFrame: numbers as float, strings as category."""
    import pandas as pd

    out = {}
    for column, kind in kinds.items():
        values = columns[column].reshape(-1)
        if kind == "numeric":
            out[column] = values.astype("float64")
        else:
            out[column] = pd.Series([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values],
                                    dtype="category")
    return pd.DataFrame(out)


def tabular_reference(data, seed: int, max_iter: int = 500) -> dict:
    """HistGradientBoostingRegressor(max_iter) with native categorical columns: as `mnist_reference`
    (val/test are RMSE in the target's units; "epochs" are the boosting iterations it ran)."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor

    kinds = data.info["kinds"]
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (arrays(d) for d in (data.train, data.val, data.test))
    train = frame(x_train, kinds)
    categories = {c: train[c].cat.categories for c in train.columns if isinstance(train[c].dtype, pd.CategoricalDtype)}

    def same_categories(part):  # unseen categories become missing, as the model would see them
        part = frame(part, kinds)
        for column, values in categories.items():
            part[column] = pd.Categorical(part[column], categories=values)
        return part

    model = HistGradientBoostingRegressor(max_iter=max_iter, categorical_features="from_dtype", random_state=seed)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(train, y_train)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu

    def rmse(part, y):
        return float(np.sqrt(np.mean((model.predict(same_categories(part)) - y) ** 2)))

    return {"seconds": seconds, "cpu_seconds": cpu, "epochs": int(model.n_iter_), "n_train": len(y_train),
            "val": rmse(x_val, y_val), "test": rmse(x_test, y_test)}


# ----------------------------------------------------------------------------- dlapps
class CpuClock:
    """A Keras callback adding up this process's CPU seconds (all threads) spent inside `fit`."""

    def __new__(cls):
        import keras

        class _Clock(keras.callbacks.Callback):
            seconds = 0.0

            def on_train_begin(self, logs=None):
                self._start = time.process_time()

            def on_train_end(self, logs=None):
                self.seconds += time.process_time() - self._start

        return _Clock()


def dlapps_recipe(task, cfg, seed: int, runs_dir: str, metric: str, reference_val: float | None, goal: str,
                  precision: str = "float32", jit: bool = False) -> dict:
    """One `dlapps.training.train` run of `cfg` from initial seed `seed` (with `dlapps train --precision
    PRECISION [--jit]`): figures as the references'."""
    from dlapps import config, training
    from dlapps.runtime import Runtime

    clock = CpuClock()
    timed = dataclasses.replace(task, callbacks=lambda c, run_dir, data: [*task.callbacks(c, run_dir, data), clock])
    result = training.train(timed, cfg, Runtime(seed=seed, precision=precision, jit=jit), runs_root=runs_dir,
                            quiet=True)
    used = json.loads((Path(result.run_dir) / "config.json").read_text())["config"]
    if used != json.loads(json.dumps(config.to_dict(cfg), default=str)):  # the run is what the table says
        raise SystemExit(f"{result.run_dir}: trained with another config than requested")
    history = result.history.get(f"val_{metric}", [])
    epochs = int(result.metrics["epochs"])
    seconds = float(result.metrics["train_seconds"])
    reached = None
    if reference_val is not None:
        better = (lambda v: v >= reference_val) if goal == "max" else (lambda v: v <= reference_val)
        reached = next((i + 1 for i, value in enumerate(history) if better(value)), None)
    return {"seconds": seconds, "cpu_seconds": clock.seconds, "epochs": epochs,
            "n_train": int(result.data.info["train_size"]),
            "val": float(result.metrics["val"][metric]), "test": float(result.metrics["test"][metric]),
            "epochs_to_reference": reached,
            "seconds_to_reference": seconds * reached / epochs if reached else None,
            "run_dir": str(result.run_dir), "seed": seed,
            "xla": bool(result.model.jit_compile)}  # Keras turns --jit off for a model with layers XLA cannot compile


# ----------------------------------------------------------------------------- report
def machine() -> dict:
    """Where the figures come from: CPU, cores, load, and the versions that matter."""
    import keras
    import numpy as np
    import sklearn
    import tensorflow as tf

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"cpu": cpu, "cores": os.cpu_count(), "gpus": len(tf.config.list_physical_devices("GPU")),
            "load_average_at_start": list(os.getloadavg()), "platform": platform.platform(),
            "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "scikit-learn": sklearn.__version__, "numpy": np.__version__, "dlapps_commit": commit}


def mean(rows: list[dict], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return sum(values) / len(values) if values else None


def summary(name: str, rows: list[dict]) -> dict:
    """Seeds of one side averaged: quality, seconds, examples/s (and per-seed values)."""
    seconds = mean(rows, "seconds")
    return {"name": name, "val": mean(rows, "val"), "test": mean(rows, "test"), "seconds": seconds,
            "cpu_seconds": mean(rows, "cpu_seconds"),
            "epochs": mean(rows, "epochs"),
            "examples_per_second": mean(rows, "n_train") * mean(rows, "epochs") / seconds,
            "seconds_to_reference": mean(rows, "seconds_to_reference")
            if all(r.get("seconds_to_reference") for r in rows) else None,
            "seeds": rows}


def table(task_name: str, metric: str, goal: str, reference: dict, recipes: list[dict]) -> str:
    """The printed comparison: one row per side, then dlapps / reference ratios."""
    fmt = (lambda v: f"{v:,.0f}") if metric == "rmse" else (lambda v: f"{v:.4f}")
    lines = [f"{task_name}: {metric} ({'higher' if goal == 'max' else 'lower'} is better), "
             f"mean of {len(reference['seeds'])} seed(s)",
             f"{'':<32}{'val ' + metric:>15}{'test ' + metric:>15}{'train s':>10}{'cpu s':>9}{'examples/s':>12}"
             f"{'epochs':>8}{'~s to ref':>11}"]
    for side in [reference, *recipes]:
        to_ref = side.get("seconds_to_reference")
        lines.append(f"{side['name']:<32}{fmt(side['val']):>15}{fmt(side['test']):>15}{side['seconds']:>10.1f}"
                     f"{side['cpu_seconds']:>9.1f}"
                     f"{side['examples_per_second']:>12.0f}{side['epochs']:>8.0f}"
                     f"{(f'{to_ref:.1f}' if to_ref else '-'):>11}")
    for recipe in recipes:
        relative = (recipe["val"] / reference["val"] - 1) * 100
        to_ref = recipe.get("seconds_to_reference")
        lines.append(f"  {recipe['name']} / reference: time x{recipe['seconds'] / reference['seconds']:.2f}, "
                     f"cpu time x{recipe['cpu_seconds'] / reference['cpu_seconds']:.2f}, "
                     f"examples/s x{recipe['examples_per_second'] / reference['examples_per_second']:.2f}, "
                     f"val {metric} {relative:+.2f}%"
                     + (f", time to the reference's val {metric} x{to_ref / reference['seconds']:.2f}" if to_ref else
                        f", never reached the reference's val {metric}"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the table; write the JSON; return what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=sorted(SHARED))
    parser.add_argument("--profile", help="dlapps recipe profile(s), comma-separated (default: mnist fast, "
                        "tabular full, sentiment full)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value (repeatable), as `dlapps train --set`")
    parser.add_argument("--seeds", type=int, default=1, help="initial seeds per side (default 1); the split stays")
    parser.add_argument("--reference-epochs", type=int, help="override the reference's epochs (mnist 15, sentiment 2)")
    parser.add_argument("--reference-iterations", type=int, default=500, help="tabular: HGB max_iter (default 500)")
    parser.add_argument("--runs-dir", default="runs", help="parent of the dlapps run directories (default runs/)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder of the JSON")
    parser.add_argument("--smoke", action="store_true", help="tiny settings: embedded data, smoke profile")
    parser.add_argument("--precision", default="float32",
                        help="dlapps side only, as `dlapps train --precision`: float32 (default), mixed_float16 "
                        "(GPU), mixed_bfloat16 (GPU/TPU, or a CPU with bf16 instructions); the references stay float32")
    parser.add_argument("--jit", action="store_true", help="dlapps side only: XLA-compile training, as `dlapps train --jit`")
    args = parser.parse_args(argv)

    from dlapps import config, get_task

    task = get_task(args.task)
    _, _, metric, goal = SHARED[task.name]
    profiles = (args.profile or ("smoke" if args.smoke else DEFAULT_PROFILE[task.name])).split(",")
    sets = config.parse_sets(args.sets)
    facts = machine()
    started = datetime.now(timezone.utc)

    cfg = recipe_config(task, profiles[0], sets, args.smoke)
    data = task.load_data(cfg)  # the split every side uses (same source, fractions and split seed)
    from dlapps.data.pipeline import count

    split = {"source_description": data.info.get("source_description"),
             **{f"{name}_size": count(getattr(data, name)) for name in ("train", "val", "test")}}
    seeds = list(range(args.seeds))
    rows = []
    for seed in seeds:
        if task.name == "mnist":
            rows.append(mnist_reference(data, seed, args.reference_epochs or (1 if args.smoke else 15)))
        elif task.name == "sentiment":
            rows.append(sentiment_reference(data, seed, args.reference_epochs or (1 if args.smoke else 2)))
        else:
            rows.append(tabular_reference(data, seed, 20 if args.smoke else args.reference_iterations))
    names = {"mnist": "keras-io simple convnet", "sentiment": "keras-io BiLSTM",
             "tabular": f"HistGradientBoosting({rows[0]['epochs'] if args.smoke else args.reference_iterations})"}
    reference = summary(names[task.name], rows)

    recipes = []
    for profile in profiles:
        profile_cfg = recipe_config(task, profile, sets, args.smoke)
        if (profile_cfg.val_fraction, profile_cfg.test_fraction, profile_cfg.seed) != (
                cfg.val_fraction, cfg.test_fraction, cfg.seed):
            raise SystemExit(f"profile {profile} splits the data differently from {profiles[0]}: "
                             "compare profiles with the same val/test fractions and seed")
        runs = [dlapps_recipe(task, profile_cfg, seed, args.runs_dir, metric, reference["val"], goal,
                              args.precision, args.jit) for seed in seeds]
        xla = "" if not args.jit else " xla" if all(run["xla"] for run in runs) else " (xla refused)"
        flags = (f" {args.precision}" if args.precision != "float32" else "") + xla
        recipes.append({**summary(f"dlapps {profile}{flags}", runs), "config": config.to_dict(profile_cfg),
                        "precision": args.precision, "jit": args.jit})

    text = table(task.name, metric, goal, reference, recipes)
    print(f"{facts['cpu']}, {facts['cores']} cores, load {facts['load_average_at_start'][0]:.1f} at start; "
          f"TensorFlow {facts['tensorflow']}, Keras {facts['keras']}; data: {split['source_description']} "
          f"(train {split['train_size']}, val {split['val_size']}, test {split['test_size']})")
    print(text)
    result = {"task": task.name, "metric": metric, "goal": goal, "started_utc": started.isoformat(timespec="seconds"),
              "machine": {**facts, "load_average_at_end": list(os.getloadavg())}, "split": split,
              "reference": reference, "dlapps": recipes,
              "ratios": {r["name"]: {"time": r["seconds"] / reference["seconds"],
                                     "cpu_time": r["cpu_seconds"] / reference["cpu_seconds"],
                                     "examples_per_second": r["examples_per_second"] / reference["examples_per_second"],
                                     "val_relative": r["val"] / reference["val"] - 1,
                                     "time_to_reference_quality": (r["seconds_to_reference"] / reference["seconds"]
                                                                   if r["seconds_to_reference"] else None)}
                         for r in recipes},
              "table": text, "command": " ".join(["python benchmarks/time_to_quality.py", *(argv or sys.argv[1:])])}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"time_to_quality-{task.name}-{started.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return {**result, "path": path}


if __name__ == "__main__":
    main()
