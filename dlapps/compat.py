"""Workarounds for upstream bugs, each guarded by version and tested for when upstream fixes it.

keras-team/keras#20585 (open): Keras 3's TensorFlow trainer fails under
MultiWorkerMirroredStrategy.
1. `_maybe_symbolic_build` reduces the first distributed batch with `strategy.reduce`, eagerly,
   which multi-worker collectives reject ("Attempt to convert a value (PerReplica...)").
   Building only needs shapes, so the local value of the first replica is enough.
2. `reduce_per_replica` reduces the per-replica scalar logs with `axis=0` under a multi-worker
   strategy, which fails for scalars; `axis=None` averages them across workers as intended.
`tests/test_multiworker.py::test_upstream_multiworker_bug_still_present` fails once Keras fixes it:
then delete this module.

The same eager `strategy.reduce("MEAN", first batch)` also fails under a single-machine
MirroredStrategy when the inputs are strings (raw-text models: "AddN ... string") or when the
first batch splits unevenly across replicas (67 rows -> 34 + 33: "AddN must have the same size"),
so the first replica's batch is used under every strategy.
"""

from __future__ import annotations

import keras

# Versions measured to have the bug (3.5 .. 3.15); newer versions are patched too until the
# upstream-bug test says the fix has landed.
AFFECTED_SINCE = (3, 0)


def _version() -> tuple[int, int]:
    major, minor = keras.__version__.split(".")[:2]
    return int(major), int(minor)


def patch_distributed_trainer() -> bool:
    """Apply the keras#20585 workarounds once (any strategy); returns whether they are active."""
    import os

    from keras.src.backend.tensorflow import trainer as tf_trainer

    if os.environ.get("DLAPPS_NO_COMPAT") == "1":  # lets a test check whether upstream is fixed
        return False
    if _version() < AFFECTED_SINCE or getattr(tf_trainer, "_dlapps_patched", False):
        return getattr(tf_trainer, "_dlapps_patched", False)
    import tensorflow as tf

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("mean", "auto") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            def _mean(v):
                if not tf_trainer._is_per_replica_instance(v):
                    return v
                return strategy.reduce("MEAN", v, axis=None)

            return tf.nest.map_structure(_mean, values)
        return original_reduce(values, strategy, reduction)

    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or strategy is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            batch = next(it)
            break
        data_batch = tf.nest.map_structure(
            lambda v: strategy.experimental_local_results(v)[0]
            if isinstance(v, tf.distribute.DistributedValues) else v, batch)
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer._dlapps_patched = True
    return True
