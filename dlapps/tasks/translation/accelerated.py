"""Train the token-level Transformer on a machine without TensorFlow (any Keras backend), then
assemble the usual string-in model from its weights.

`dlapps train translation` is the normal path. This module exists for accelerators whose Python
has JAX or PyTorch but no TensorFlow: tokenization (TensorFlow's TextVectorization) runs here,
the arrays travel, `transformer` (pure keras.ops) trains there, and its weights come back::

    python -m dlapps.tasks.translation.accelerated export DIR --profile full --data ../shared/data/multi30k
    KERAS_BACKEND=jax python -m dlapps.tasks.translation.accelerated fit DIR OUT      # on the GPU machine
    python -m dlapps.tasks.translation.accelerated assemble DIR OUT RUN_DIR [--save]  # string-in model

`fit` trains with `dlapps.training.fit_phases`, the one fit loop of `dlapps train` and tuning, on
the token arrays; a callback (`GreedyBleu`) scores greedy BLEU on the validation sentences every
`--eval-every` epochs and keeps the best weights. Nothing `fit` imports loads TensorFlow.
`assemble` writes the run directory with `dlapps.runs.write_run` (model.keras, metrics.json with
BLEU/chrF by `evaluate`, info.json, config.json, history.csv, plots), exactly like a `dlapps train`
run, and with `--save` the model card with `runs.save_model_card`, naming the machine that trained.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np

from dlapps import config as config_lib
from dlapps import runs
from dlapps.errors import UserError

GREEDY_SCORES = ("bleu", "chrf", "exact_match")


def export(folder: Path, profile: str, sets: dict) -> None:
    """Tokenize the configured data (TensorFlow) into arrays + info.json + config.json in `folder`.

    `arrays.npz` holds int32 `<split>_source_ids` (n, max_length) and `<split>_target_ids`
    (n, max_length + 1, '[start] ... [end]') for train/val/test; `<split>.refs.json` the raw
    sentences. Raises UserError as `load_data` does (unknown source, missing files, ...).
    """
    import tensorflow as tf

    from dlapps.task import get_task
    from dlapps.tasks.translation.data import target_ids
    from dlapps.tasks.translation.inference import texts
    from dlapps.tasks.translation.subword import vectorizer

    task = get_task("translation")
    cfg = config_lib.resolve(task, profile, sets)
    data = task.load_data(cfg)
    info = data.info
    # The same tokenizer layers as the model's (word-level TextVectorization or WordPiece).
    source_vectorizer = vectorizer(cfg.tokenizer, info["source_vocabulary"], cfg.max_length)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, dataset in (("train", data.train), ("val", data.val), ("test", data.test)):
        sources, targets = texts(dataset)
        arrays[f"{split}_source_ids"] = np.concatenate(
            [np.asarray(source_vectorizer(tf.constant(sources[i:i + 4096]))) for i in range(0, len(sources), 4096)])
        arrays[f"{split}_target_ids"] = target_ids(targets, info["target_vocabulary"], cfg.max_length, cfg.tokenizer)
        (folder / f"{split}.refs.json").write_text(json.dumps({"source": sources, "target": targets}))
    np.savez_compressed(folder / "arrays.npz", **{k: v.astype("int32") for k, v in arrays.items()})
    runs.write_json(folder / "info.json", info)
    runs.write_json(folder / "config.json", {"task": "translation", "profile": profile,
                                             "config": config_lib.to_dict(cfg)})
    print(f"exported {len(arrays['train_source_ids'])} train pairs to {folder}; "
          f"vocabularies {info['source_vocab_size']} / {info['target_vocab_size']}")


def load_export(folder: Path):
    """(Config, info, arrays) of a folder written by `export`; UserError when it is not one."""
    from dlapps.tasks.translation.config import Config

    saved = runs.read_json(folder / "config.json", None)
    if saved is None or not (folder / "arrays.npz").exists():
        raise UserError(f"{folder} holds no export (config.json, arrays.npz); run `export {folder}` first")
    cfg = config_lib.coerce_all(Config, saved["config"])
    return cfg, runs.read_json(folder / "info.json", {}), np.load(folder / "arrays.npz")


def corpus_scores(transformer, source_ids, references, info, cfg, beam_size: int) -> dict:
    """BLEU, chrF (sacrebleu, 0-100) and exact match (0-1) of decoded `source_ids` (int, (n, length))
    against the raw `references` (n strings), plus the first five hypotheses as "samples"."""
    import sacrebleu

    from dlapps.tasks.translation.decoding import decode, ids_to_tokens
    from dlapps.tasks.translation.subword import tokens_to_text

    vocabulary = ["", "[UNK]"] + info["target_vocabulary"]
    start_id, end_id = vocabulary.index("[start]"), vocabulary.index("[end]")
    ids = decode(transformer, source_ids, start_id, end_id, cfg.max_length, beam_size, cfg.length_penalty,
                 batch_size=512)
    tokenizer = info.get("tokenizer", "word")
    hypotheses = [tokens_to_text(tokens, tokenizer) for tokens in ids_to_tokens(ids, vocabulary, end_id)]
    return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "exact_match": float(np.mean([h == r for h, r in zip(hypotheses, references)])),
            "samples": hypotheses[:5]}


def save_weights(transformer, out: Path, chunk_bytes: int = 15_000_000) -> None:
    """The weights as numbered .npz files of at most ~15 MB each (small files travel easily)."""
    weights = transformer.get_weights()
    chunk, size, index = {}, 0, 0
    for i, w in enumerate(weights):
        if chunk and size + w.nbytes > chunk_bytes:
            np.savez(out / f"weights_{index}.npz", **chunk)
            chunk, size, index = {}, 0, index + 1
        chunk[f"w{i:04d}"] = w
        size += w.nbytes
    np.savez(out / f"weights_{index}.npz", **chunk)


def load_weights(transformer, out: Path) -> None:
    """Inverse of `save_weights`."""
    values = {}
    for path in sorted(out.glob("weights_*.npz")):
        values.update(dict(np.load(path)))
    transformer.set_weights([values[k] for k in sorted(values)])


class GreedyBleu(keras.callbacks.Callback):
    """Greedy BLEU of the validation sentences every `every` epochs (and after the last one); keeps
    the best weights.

    The best weights by (BLEU, chrF) (chrF breaks ties, e.g. single-token outputs) are written to
    `out` with `save_weights` whenever they improve, and put back into the model when training ends.
    `scores` maps each evaluated epoch (1-based) to {"val_greedy_bleu", "val_greedy_chrf",
    "val_greedy_exact_match"}; `best` is the best (BLEU, chrF).
    """

    def __init__(self, source_ids: np.ndarray, references: list[str], info: dict, cfg, every: int, out: Path):
        super().__init__()
        self.source_ids, self.references, self.info, self.cfg = source_ids, references, info, cfg
        self.every, self.out = max(1, every), Path(out)
        self.scores: dict[int, dict[str, float]] = {}
        self.best, self._best_weights = (-1.0, -1.0), None

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.every and done != self.params.get("epochs"):
            return
        scores = corpus_scores(self.model, self.source_ids, self.references, self.info, self.cfg, beam_size=1)
        self.scores[done] = {f"val_greedy_{name}": scores[name] for name in GREEDY_SCORES}
        print(json.dumps({"epoch": done, **self.scores[done]}), scores["samples"][:2], flush=True)
        if (scores["bleu"], scores["chrf"]) > self.best:
            self.best = (scores["bleu"], scores["chrf"])
            self._best_weights = self.model.get_weights()
            save_weights(self.model, self.out)

    def on_train_end(self, logs=None):
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)


def fit(folder: Path, out: Path, epochs: int | None, eval_every: int, sets: dict) -> dict:
    """Train `transformer` on the arrays `export` wrote, with the active Keras backend.

    One `training.fit_phases` run (batch `cfg.batch_size`, arrays shuffled every epoch) with the
    usual fit callbacks and `GreedyBleu`; the best weights (greedy validation BLEU) end in
    `out/weights_*.npz`, and `out/fit.json` holds the history, the config, the backend, the
    hardware and the beam-search scores of the best weights. `sets` overrides config keys
    (`--set`), `epochs` the number of epochs. Returns what fit.json holds.
    """
    from dlapps.task import Phase
    from dlapps.tasks.translation.model import build_transformer, compile_model
    from dlapps.training import fit_callbacks, fit_phases

    cfg, info, arrays = load_export(folder)
    cfg = dataclasses.replace(cfg, **{k: config_lib.coerce(type(cfg), k, v) for k, v in sets.items()})
    if epochs:
        cfg = dataclasses.replace(cfg, epochs=epochs)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    source, target = arrays["train_source_ids"], arrays["train_target_ids"]
    val_source, val_target = arrays["val_source_ids"], arrays["val_target_ids"]
    info["steps_per_epoch"] = -(-len(source) // cfg.batch_size)
    transformer = compile_model(build_transformer(cfg, info["source_vocab_size"], info["target_vocab_size"]),
                                cfg, info)
    references = json.loads((folder / "val.refs.json").read_text())["target"]
    greedy_bleu = GreedyBleu(val_source, references, info, cfg, eval_every, out)
    callbacks = fit_callbacks(cfg, "val_loss", "min", restore_best_weights=False) + [greedy_bleu]
    start = time.perf_counter()
    # Teacher forcing: the decoder reads [start] t1 .. tn and learns to write t1 .. tn [end].
    history = fit_phases(transformer, ([source, target[:, :-1]], target[:, 1:]),
                         ([val_source, val_target[:, :-1]], val_target[:, 1:]), [Phase("train", cfg.epochs)],
                         cfg, callbacks, verbose=2, batch_size=cfg.batch_size)
    seconds = round(time.perf_counter() - start, 1)
    for name in GREEDY_SCORES:  # per epoch, None where the epoch was not scored
        key = f"val_greedy_{name}"
        history[key] = [greedy_bleu.scores.get(epoch, {}).get(key) for epoch in range(1, len(history["phase"]) + 1)]
    final = {"best_val_greedy_bleu": greedy_bleu.best[0], "train_seconds": seconds,
             "backend": keras.backend.backend(), "hardware": accelerator(), "history": history,
             "config": config_lib.to_dict(cfg),
             "val_beam": corpus_scores(transformer, val_source, references, info, cfg, cfg.beam_size)}
    runs.write_json(out / "fit.json", final)
    print(json.dumps({k: v for k, v in final.items() if k != "history"}, indent=1))
    return final


def accelerator() -> str:
    """The GPU(s) this process can train on, as nvidia-smi names them; else `runs.hardware()`.

    (`runs.hardware` asks TensorFlow, which the machines this module serves do not have.)
    """
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=20).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        names = []
    return ", ".join(name.strip() for name in names if name.strip()) or runs.hardware()


def assemble(folder: Path, out: Path, run_dir: Path, save: bool, overwrite: bool,
             saved_models_root: str | Path = "saved_models") -> dict:
    """The string-in training model with the weights `fit` left in `out`, written as a run directory.

    The data and vocabularies come from the config in `out/fit.json` (the export's, with `fit`'s
    overrides); metrics are the task's `evaluate` (BLEU/chrF with `beam_size`) on val and test.
    `save` also writes `saved_models/translation/` with a card naming the machine and backend
    that trained. Raises UserError for a missing fit.json, or an existing run directory or
    saved model without `overwrite`. Returns the metrics.
    """
    from dlapps.data.pipeline import with_batch_facts
    from dlapps.task import get_task
    from dlapps.training import evaluate_splits

    task = get_task("translation")
    fitted = runs.read_json(out / "fit.json", None)
    if fitted is None:
        raise UserError(f"{out / 'fit.json'} not found; run `fit {folder} {out}` first")
    cfg = config_lib.coerce_all(task.Config, fitted["config"])
    saved_dir = Path(saved_models_root) / task.name
    if save and (saved_dir / "model.keras").exists() and not overwrite:
        raise UserError(f"{saved_dir} already holds a model; pass --overwrite to replace it")
    run_dir = runs.writable_dir(Path(run_dir), overwrite)
    data = with_batch_facts(task.load_data(cfg), cfg.batch_size)
    model = task.build_model(cfg, data.info)
    load_weights(model.get_layer("transformer"), out)
    model.save(run_dir / "model.keras")
    if "test = validation" in data.info["source_description"]:  # the same sentences: decode them once
        test = task.evaluate(model, data, cfg)
        metrics = {"test": test, "val": dict(test)}
    else:
        metrics = evaluate_splits(task, model, data, cfg)
    history = fitted["history"]
    if isinstance(history, list):  # a fit.json of an earlier version: one row per evaluation
        history = {key: [row[key] for row in history] for key in history[0] if key != "epoch"}
    trained_on = f"{fitted['hardware']}, Keras {fitted['backend']} backend, by dlapps.tasks.translation.accelerated"
    metrics.update(epochs=len(history.get("phase", [])) or cfg.epochs, train_seconds=fitted["train_seconds"],
                   replicas=1, global_batch_size=cfg.batch_size, trained_on=trained_on)
    runs.write_run(run_dir, task, cfg, data.info, metrics, history,
                   {"note": "trained by accelerated.fit", "backend": fitted["backend"]}, replicas=1)
    task.make_plots(model, data, cfg, run_dir / "plots")
    if save:
        runs.save_model_card(task, cfg, run_dir, saved_dir, metrics, data.info, trained_on=trained_on)
    print(json.dumps(metrics, indent=1))
    return metrics


def main(argv: list[str] | None = None) -> int:
    """`export`, `fit` and `assemble` subcommands (see the module docstring); user errors print one
    line and return 2."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("export")
    p.add_argument("folder", type=Path)
    p.add_argument("--profile", default="full")
    p.add_argument("--data")
    p.add_argument("--set", action="append", default=[])
    p = commands.add_parser("fit")
    p.add_argument("folder", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--epochs", type=int)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--set", action="append", default=[])
    p = commands.add_parser("assemble")
    p.add_argument("folder", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--save", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            sets = config_lib.parse_sets(args.set)
            if args.data:
                sets["data"] = args.data
            export(args.folder, args.profile, sets)
        elif args.command == "fit":
            fit(args.folder, args.out, args.epochs, args.eval_every, config_lib.parse_sets(args.set))
        else:
            assemble(args.folder, args.out, args.run_dir, args.save, args.overwrite)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
