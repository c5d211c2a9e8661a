"""tf.data input pipelines: the one place datasets are cached, shuffled, batched and prefetched."""

from __future__ import annotations

import dataclasses
from typing import Any


def _unbatched(dataset, shuffle: bool, cache: bool, shuffle_buffer: int, seed: int | None):
    """`dataset` sharded by element across workers, cached and shuffled as asked (before batching)."""
    import tensorflow as tf

    options = tf.data.Options()
    # In-memory datasets cannot be sharded by file across workers: shard by element.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset


def batched(dataset, batch_size: int, shuffle: bool = False, cache: bool = False,
            shuffle_buffer: int = 10_000, seed: int | None = None, drop_remainder: bool = False,
            augment=None):
    """`dataset` (unbatched) cached, shuffled, batched by `batch_size`, augmented and prefetched.

    `batch_size` is the global batch (per-replica batch x replicas under a tf.distribute
    strategy, which splits each batch across its replicas). `augment` (a `Data.augment`) is
    mapped over the batches after the cache, one batch at a time so that a seed gives the same
    draws (prefetched, so beside the training step); every epoch sees new draws.
    """
    import tensorflow as tf

    dataset = _unbatched(dataset, shuffle, cache, shuffle_buffer, seed)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        # One batch at a time, so the random draws (from stateful random ops) come in a fixed order
        # and a seed repeats a run bit for bit; parallel calls drew them in whatever order the
        # threads ran. The prefetch still overlaps it with the training step.
        dataset = dataset.map(augment)
    return dataset.prefetch(tf.data.AUTOTUNE)


def bucketed(dataset, batch_size: int, length, boundaries: list[int], cache: bool = False,
             shuffle_buffer: int = 10_000, seed: int | None = None, steps: int | None = None, augment=None):
    """Shuffled training batches of `batch_size` examples of similar length, prefetched.

    `length(*element)` gives an element's length (scalar int32); `boundaries` (ascending) cut the
    lengths into len(boundaries) + 1 buckets, and each batch is drawn from one bucket (tf.data's
    `bucket_by_sequence_length`), so a batch padded to its longest sequence wastes few time steps.
    The examples are shuffled before bucketing, so every batch is still a random draw within its
    length range; each bucket's last batch of an epoch may be smaller. The dataset's cardinality
    is set to that number of batches (`steps`, counted by `bucketed_steps` when not given), so
    Keras knows the epoch's length. `augment` is mapped over the batches as in `batched`.
    """
    import tensorflow as tf

    if steps is None:
        steps = bucketed_steps(dataset, batch_size, length, boundaries)
    dataset = _unbatched(dataset, True, cache, shuffle_buffer, seed)
    dataset = dataset.bucket_by_sequence_length(length, bucket_boundaries=[int(b) for b in boundaries],
                                                bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))
    if augment is not None:
        dataset = dataset.map(augment)  # one batch at a time: see `batched`
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)


def bucketed_steps(dataset, batch_size: int, length, boundaries: list[int]) -> int:
    """Batches per epoch of `bucketed`: the sum over length buckets of ceil(examples / batch_size)."""
    import numpy as np

    lengths = np.concatenate([np.atleast_1d(batch) for batch in
                              dataset.map(length).batch(8192).as_numpy_iterator()] or [np.zeros(0, int)])
    per_bucket = np.bincount(np.searchsorted(np.asarray(boundaries), lengths, side="right"),
                             minlength=len(boundaries) + 1)
    return int(sum(-(-int(n) // batch_size) for n in per_bucket))


def count(dataset) -> int:
    """Number of elements of a dataset (its cardinality when known, else by iterating once)."""
    import tensorflow as tf

    n = int(dataset.cardinality())
    if n >= 0:
        return n
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda total, _: total + 1))


def with_batch_facts(data, global_batch_size: int):
    """`data` whose info also holds train_size, steps_per_epoch and global_batch_size.

    The training set is counted only when the loader did not report its size; with length
    buckets the steps are those of `bucketed` (each bucket's last batch may be partial).
    """
    info: dict[str, Any] = dict(data.info)
    if "train_size" not in info:
        info["train_size"] = count(data.train)
    if data.length is not None and data.length_boundaries:
        info["steps_per_epoch"] = bucketed_steps(data.train, global_batch_size, data.length, data.length_boundaries)
    else:
        info["steps_per_epoch"] = max(1, -(-int(info["train_size"]) // global_batch_size))
    info["global_batch_size"] = global_batch_size
    return dataclasses.replace(data, info=info)


def fit_datasets(data, cfg, global_batch_size: int):
    """(train, val) batched for `model.fit`: the training split shuffled (and augmented, when the
    data has `augment`), val None when absent.

    When the data gives a `length` function and `length_boundaries`, training batches hold
    examples of similar length (`bucketed`); their number comes from `with_batch_facts` when it
    counted them for this global batch, so the training set is read for lengths only once.
    """
    if data.length is not None and data.length_boundaries:
        counted = data.info.get("global_batch_size") == global_batch_size
        train = bucketed(data.train, global_batch_size, data.length, data.length_boundaries, cache=cfg.cache,
                         shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed,
                         steps=data.info.get("steps_per_epoch") if counted else None, augment=data.augment)
    else:
        train = batched(data.train, global_batch_size, shuffle=True, cache=cfg.cache,
                        shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed, augment=data.augment)
    val = batched(data.val, global_batch_size, cache=cfg.cache) if data.val is not None else None
    return train, val
