"""tf.data input pipelines: the one place datasets are cached, shuffled, batched and prefetched."""

from __future__ import annotations

import dataclasses
from typing import Any


def batched(dataset, batch_size: int, shuffle: bool = False, cache: bool = False,
            shuffle_buffer: int = 10_000, seed: int | None = None, drop_remainder: bool = False):
    """`dataset` (unbatched) cached, shuffled, batched by `batch_size` and prefetched.

    `batch_size` is the global batch (per-replica batch x replicas under a tf.distribute
    strategy, which splits each batch across its replicas).
    """
    import tensorflow as tf

    options = tf.data.Options()
    # In-memory datasets cannot be sharded by file across workers: shard by element.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder,
                         num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def count(dataset) -> int:
    """Number of elements of a dataset (its cardinality when known, else by iterating once)."""
    import tensorflow as tf

    n = int(dataset.cardinality())
    if n >= 0:
        return n
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda total, _: total + 1))


def with_batch_facts(data, global_batch_size: int):
    """`data` whose info also holds train_size, steps_per_epoch and global_batch_size.

    The training set is counted only when the loader did not report its size.
    """
    info: dict[str, Any] = dict(data.info)
    if "train_size" not in info:
        info["train_size"] = count(data.train)
    info["steps_per_epoch"] = max(1, -(-int(info["train_size"]) // global_batch_size))
    info["global_batch_size"] = global_batch_size
    return dataclasses.replace(data, info=info)


def fit_datasets(data, cfg, global_batch_size: int):
    """(train, val) batched for `model.fit`: the training split shuffled, val None when absent."""
    train = batched(data.train, global_batch_size, shuffle=True, cache=cfg.cache,
                    shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed)
    val = batched(data.val, global_batch_size, cache=cfg.cache) if data.val is not None else None
    return train, val
