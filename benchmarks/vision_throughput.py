"""Training throughput (images/s) of the MNIST CNN: tf.data vs NumPy input, and XLA (--jit) vs not.

    python benchmarks/vision_throughput.py                       # embedded digits, demo-size CNN
    python benchmarks/vision_throughput.py --data ../shared/data/mnist-sample/mnist_sample.npz --profile full

Four runs of the same model and data in one process, each timed over `--epochs` epochs after one
warm-up epoch (tracing/compilation excluded): input from `data.pipeline.batched` (the tf.data pipeline
`dlapps train` uses: cached, shuffled, prefetched) or from NumPy arrays given to `fit`, each with
and without `jit_compile`. Prints images/s and the ratios against the NumPy, no-XLA baseline;
figures depend on the machine, so compare ratios, measured in the same run.

The augmentation layers are off here (`--augment` turns them on): Keras refuses `jit_compile` for a
model containing them (`supports_jit = False` on the random image layers) and silently falls
back to no XLA, which would make the XLA comparison meaningless. The script prints whether
Keras actually kept XLA on.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", help="mnist recipe profile giving the CNN's shape")
    parser.add_argument("--data", help="a .npz or image folder (default: embedded digits)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after 1 warm-up)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--augment", action="store_true", help="keep the augmentation layers (disables XLA)")
    args = parser.parse_args()

    import keras

    from dlapps import config, get_task
    from dlapps.data.pipeline import batched

    task = get_task("mnist")
    sets = {"data": args.data} if args.data else {}
    cfg = dataclasses.replace(config.resolve(task, args.profile, sets), batch_size=args.batch_size,
                              lr_schedule="constant", augment=args.augment)
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    from dlapps.tasks.mnist import load_images

    splits = load_images(cfg)
    x, y = splits.x_train, splits.y_train
    info = {"num_classes": len(splits.class_names), "image_shape": [28, 28, 1],
            "steps_per_epoch": -(-len(x) // cfg.batch_size)}
    print(f"data: {splits.description}; {len(x)} training images; batch {cfg.batch_size}; "
          f"profile {args.profile}; {args.epochs} timed epochs per run")

    results = {}
    for feed in ("numpy", "tf.data"):
        for jit in (False, True):
            keras.utils.set_random_seed(0)
            model = task.build_model(cfg, info)
            with warnings.catch_warnings(record=True):
                model.jit_compile = jit  # Keras resets it to False for layers without XLA support
            if feed == "numpy":
                def fit(epochs, model=model):
                    model.fit(x, y, batch_size=cfg.batch_size, epochs=epochs, shuffle=True, verbose=0)
            else:
                import tensorflow as tf

                dataset = batched(tf.data.Dataset.from_tensor_slices((x, y)), cfg.batch_size, shuffle=True,
                                  cache=True, seed=0)

                def fit(epochs, model=model, dataset=dataset):
                    model.fit(dataset, epochs=epochs, verbose=0)
            fit(1)  # warm-up: tracing, XLA compilation, the tf.data cache filled
            start = time.perf_counter()
            fit(args.epochs)
            seconds = time.perf_counter() - start
            results[(feed, jit)] = args.epochs * len(x) / seconds
            kept = " (XLA refused by Keras: ran without)" if jit and not model.jit_compile else ""
            print(f"  {feed:<8} jit={'on ' if jit else 'off'}  {results[(feed, jit)]:9.0f} images/s{kept}")

    base = results[("numpy", False)]
    print("ratios (vs numpy, jit off):")
    for key, value in results.items():
        print(f"  {key[0]:<8} jit={'on ' if key[1] else 'off'}  x{value / base:.2f}")
    print(f"tf.data / numpy (jit off): x{results[('tf.data', False)] / base:.2f}; "
          f"jit / no jit (tf.data): x{results[('tf.data', True)] / results[('tf.data', False)]:.2f}")


if __name__ == "__main__":
    main()
