"""Train the token-level Transformer on a machine without TensorFlow (any Keras backend), then
assemble the usual string-in model from its weights.

`dlapps train translation` is the normal path. This module exists for accelerators whose Python
has JAX or PyTorch but no TensorFlow: tokenization (TensorFlow's TextVectorization) runs here,
the arrays travel, `transformer` (pure keras.ops) trains there, and its weights come back::

    python -m dlapps.tasks.translation.accelerated export DIR --profile full --data ../shared/data/multi30k
    KERAS_BACKEND=jax python -m dlapps.tasks.translation.accelerated fit DIR OUT      # on the GPU machine
    python -m dlapps.tasks.translation.accelerated assemble DIR OUT RUN_DIR [--save]  # string-in model

The assembled run directory holds model.keras, metrics.json (BLEU/chrF by `evaluate`), info.json,
config.json, history.csv and plots, exactly like a `dlapps train` run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from dlapps import config as config_lib


def export(folder: Path, profile: str, sets: dict) -> None:
    """Tokenize the configured data (TensorFlow) into arrays + info.json + config.json."""
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
    (folder / "info.json").write_text(json.dumps(info))
    (folder / "config.json").write_text(json.dumps({"task": "translation", "profile": profile,
                                                    "config": config_lib.to_dict(cfg)}))
    print(f"exported {len(arrays['train_source_ids'])} train pairs to {folder}; "
          f"vocabularies {info['source_vocab_size']} / {info['target_vocab_size']}")


def _load(folder: Path):
    from dlapps.tasks.translation.data import Config

    saved = json.loads((folder / "config.json").read_text())
    cfg = config_lib.coerce_all(Config, saved["config"])
    info = json.loads((folder / "info.json").read_text())
    return cfg, info, np.load(folder / "arrays.npz")


def corpus_scores(transformer, source_ids, references, info, cfg, beam_size: int) -> dict:
    """BLEU, chrF and exact match of decoded `source_ids` against raw `references`."""
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


def fit(folder: Path, out: Path, epochs: int | None, eval_every: int, sets: dict) -> None:
    """Train `transformer` on the exported arrays with the active Keras backend; keep the best BLEU."""
    import keras

    from dlapps.tasks.translation.model import build_transformer, compile_model

    cfg, info, arrays = _load(folder)
    cfg = dataclasses.replace(cfg, **{k: config_lib.coerce(type(cfg), k, v) for k, v in sets.items()})
    if epochs:
        cfg = dataclasses.replace(cfg, epochs=epochs)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    src, tgt = arrays["train_source_ids"], arrays["train_target_ids"]
    info["steps_per_epoch"] = math.ceil(len(src) / cfg.batch_size)
    transformer = build_transformer(cfg, info["source_vocab_size"], info["target_vocab_size"])
    compile_model(transformer, cfg, info)
    val_src, val_tgt = arrays["val_source_ids"], arrays["val_target_ids"]
    references = json.loads((folder / "val.refs.json").read_text())["target"]
    history, best, start = [], (-1.0, -1.0), time.perf_counter()
    for epoch in range(0, cfg.epochs, eval_every):
        result = transformer.fit([src, tgt[:, :-1]], tgt[:, 1:], batch_size=cfg.batch_size, shuffle=True,
                                 initial_epoch=epoch, epochs=min(cfg.epochs, epoch + eval_every), verbose=2,
                                 validation_data=([val_src, val_tgt[:, :-1]], val_tgt[:, 1:]))
        scores = corpus_scores(transformer, val_src, references, info, cfg, beam_size=1)
        row = {"epoch": min(cfg.epochs, epoch + eval_every), "seconds": round(time.perf_counter() - start, 1),
               **{k: float(v[-1]) for k, v in result.history.items()},
               **{f"val_greedy_{k}": v for k, v in scores.items() if k != "samples"}}
        history.append(row)
        print(json.dumps(row), scores["samples"][:2], flush=True)
        if (scores["bleu"], scores["chrf"]) > best:  # chrF breaks ties (e.g. single-token outputs)
            best = (scores["bleu"], scores["chrf"])
            save_weights(transformer, out)
    final = {"best_val_greedy_bleu": best[0], "train_seconds": round(time.perf_counter() - start, 1),
             "backend": keras.backend.backend(), "hardware": _hardware(), "history": history,
             "config": config_lib.to_dict(cfg)}
    load_weights(transformer, out)
    final["val_beam"] = {k: v for k, v in corpus_scores(transformer, val_src, references, info, cfg,
                                                         cfg.beam_size).items()}
    (out / "fit.json").write_text(json.dumps(final, indent=2))
    print(json.dumps({k: v for k, v in final.items() if k != "history"}, indent=1))


def _hardware() -> str:
    try:
        import subprocess

        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip() or "CPU"
    except (OSError, subprocess.SubprocessError):
        return "CPU"


def assemble(folder: Path, out: Path, run_dir: Path, save: bool, overwrite: bool) -> None:
    """The string-in training model with the trained weights, written as a normal run directory."""
    import csv

    from dlapps import training
    from dlapps.runtime import Runtime
    from dlapps.task import get_task

    task = get_task("translation")
    fitted = json.loads((out / "fit.json").read_text())
    cfg = config_lib.coerce_all(task.Config, fitted["config"])
    data = task.load_data(cfg)
    info = {**data.info, "steps_per_epoch": math.ceil(data.info["train_size"] / cfg.batch_size),
            "global_batch_size": cfg.batch_size}
    data = dataclasses.replace(data, info=info)
    model = task.build_model(cfg, info)
    load_weights(model.get_layer("transformer"), out)
    run_dir.mkdir(parents=True, exist_ok=overwrite)
    metrics = {"test": task.evaluate(model, data, cfg)}
    if "test = validation" in info["source_description"]:
        metrics["val"] = dict(metrics["test"])  # the same sentences: decode them once
    else:
        metrics["val"] = task.evaluate(model, dataclasses.replace(data, test=data.val), cfg)
    metrics.update(epochs=cfg.epochs, train_seconds=fitted["train_seconds"], replicas=1,
                   global_batch_size=cfg.batch_size, trained_on=f"{fitted['hardware']} (Keras {fitted['backend']} backend)")
    training.write_json(run_dir / "metrics.json", metrics)
    training.write_json(run_dir / "info.json", info)
    training.write_json(run_dir / "config.json", {"task": task.name, "config": config_lib.to_dict(cfg),
                                                   "runtime": {"note": "trained by accelerated.fit"}, "replicas": 1})
    model.save(run_dir / "model.keras")
    history = {key: [row[key] for row in fitted["history"]] for key in fitted["history"][0] if key != "epoch"}
    with open(run_dir / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fitted["history"][0]))
        writer.writeheader()
        writer.writerows(fitted["history"])
    from dlapps import plots

    (run_dir / "plots").mkdir(exist_ok=True)
    plots.learning_curves({k: v for k, v in history.items() if k != "seconds"},
                          run_dir / "plots" / "learning_curves.png", title="translation")
    task.make_plots(model, data, cfg, run_dir / "plots")
    if save:
        info = {**info, "model_notes": info["model_notes"] + (
            f" This model was trained on {fitted['hardware']} with the Keras {fitted['backend']} backend in "
            f"{fitted['train_seconds']} s by dlapps.tasks.translation.accelerated (fit on token arrays, "
            "then assembled into the string-in model); `dlapps train` with the same config trains the same "
            "architecture with TensorFlow.")}
        saved = training.save_model_card(task, cfg, run_dir, Path("saved_models") / task.name, metrics, info, Runtime())
        fix_card_hardware(saved / "README.md", fitted)
    print(json.dumps(metrics, indent=1))


def fix_card_hardware(card: Path, fitted: dict) -> None:
    """The card names the machine that ran `assemble`; name the one that trained instead."""
    text = card.read_text(encoding="utf-8")
    from dlapps import training

    text = text.replace(f"({training._hardware()})", f"({fitted['hardware']}, Keras {fitted['backend']} backend)")
    card.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
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
    if args.command == "export":
        sets = config_lib.parse_sets(args.set)
        if args.data:
            sets["data"] = args.data
        export(args.folder, args.profile, sets)
    elif args.command == "fit":
        fit(args.folder, args.out, args.epochs, args.eval_every, config_lib.parse_sets(args.set))
    else:
        assemble(args.folder, args.out, args.run_dir, args.save, args.overwrite)


if __name__ == "__main__":
    sys.exit(main())
