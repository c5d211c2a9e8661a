"""Training throughput of a raw-text model: the tf.data pipeline vs in-memory NumPy arrays.

The same compiled model (built by the task, tokenization inside) is trained for the same number
of epochs twice, from fresh weights each time:

1. tf.data: `pipeline.batched(dataset, cache=True, shuffle=True)` -- the project's one pipeline
   (cache, shuffle, batch with parallel calls, prefetch), as `dlapps train` feeds it;
2. NumPy: `model.fit(x=np.array(texts, dtype=object), y=labels, batch_size=...)`, Keras slicing
   in-memory arrays itself.

It prints examples/s for each and their ratio (> 1: tf.data is faster). The first epoch of each
is a warm-up (tracing, cache filling) and is not timed.

    python benchmarks/text_pipeline.py                      # sentiment demo data, BiLSTM
    python benchmarks/text_pipeline.py --task spam --epochs 3
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sentiment", choices=["sentiment", "spam"])
    parser.add_argument("--profile", default="demo", help="recipe profile that sizes data and model")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import keras
    import numpy as np

    from dlapps import config, get_task
    from dlapps.data.pipeline import batched

    task = get_task(args.task)
    cfg = config.resolve(task, args.profile, {"batch_size": str(args.batch_size), "epochs": str(args.epochs + 1)})
    data = task.load_data(cfg)
    texts, labels = zip(*data.train.as_numpy_iterator())
    x = np.asarray([t.decode("utf-8") for t in texts], dtype=object)
    y = np.asarray(labels, dtype=np.float32)
    steps = -(-len(x) // args.batch_size)
    info = {**data.info, "steps_per_epoch": steps, "global_batch_size": args.batch_size}

    def timed_fit(feed) -> float:
        keras.utils.set_random_seed(cfg.seed)
        model = task.build_model(cfg, info)
        feed(model, 1)  # warm-up: tracing, tf.data cache filling
        start = time.perf_counter()
        feed(model, args.epochs)
        return len(x) * args.epochs / (time.perf_counter() - start)

    pipeline = batched(data.train, args.batch_size, shuffle=True, cache=True, seed=cfg.seed)

    def with_tf_data(model, epochs):  # the same dataset object each time: the warm-up fills the cache
        model.fit(pipeline, epochs=epochs, shuffle=False, verbose=0)  # `batched` shuffles

    def with_numpy(model, epochs):
        model.fit(x, y, batch_size=args.batch_size, epochs=epochs, shuffle=True, verbose=0)

    numpy_rate = timed_fit(with_numpy)
    tfdata_rate = timed_fit(with_tf_data)
    print(f"{args.task} ({args.profile} profile): {len(x)} training texts, batch {args.batch_size}, "
          f"{args.epochs} timed epoch(s)")
    print(f"  tf.data pipeline (cache, shuffle, batch, prefetch): {tfdata_rate:10.1f} examples/s")
    print(f"  in-memory NumPy arrays (model.fit(x, y)):           {numpy_rate:10.1f} examples/s")
    print(f"  ratio tf.data / NumPy: {tfdata_rate / numpy_rate:.2f}")


if __name__ == "__main__":
    main()
