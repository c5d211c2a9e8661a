"""Where and how a model runs: tf.distribute strategy, logical devices, precision, XLA, seeds."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from dlapps.errors import UserError

STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclass(frozen=True)
class Runtime:
    """How to run: strategy name, logical CPU devices, precision, XLA, seed and determinism."""

    strategy: str = "auto"
    devices: str | None = None
    """'cpu:N' splits the CPU into N logical devices (multi-replica code on any laptop)."""
    precision: str = "float32"
    jit: bool = False
    seed: int | None = None
    deterministic: bool = False


def parse_devices(spec: str | None) -> int | None:
    """'cpu:N' -> N; None -> None; anything else is a UserError."""
    if spec is None:
        return None
    kind, _, count = spec.partition(":")
    if kind.lower() != "cpu" or not count.isdigit() or int(count) < 1:
        raise UserError(f"--devices {spec!r}: expected cpu:N with N >= 1 (e.g. cpu:2)")
    return int(count)


def setup(runtime: Runtime):
    """Configure TensorFlow/Keras for `runtime` and return the tf.distribute strategy to use.

    Must run before TensorFlow creates its devices (logical CPU devices cannot be added later).
    """
    if runtime.strategy not in STRATEGIES:
        raise UserError(f"--strategy {runtime.strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if runtime.precision not in PRECISIONS:
        raise UserError(f"--precision {runtime.precision!r}: choose one of {', '.join(PRECISIONS)}")
    n_cpus = parse_devices(runtime.devices)

    import keras
    import tensorflow as tf

    # Collective ops must be configured before anything initialises TensorFlow's context.
    strategy = _multiworker_strategy() if runtime.strategy == "multiworker" else None

    if n_cpus is not None and strategy is None:
        cpus = tf.config.list_physical_devices("CPU")
        wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(n_cpus)]
        try:
            current = tf.config.get_logical_device_configuration(cpus[0])
            if current is None or len(current) != n_cpus:
                tf.config.set_logical_device_configuration(cpus[0], wanted)
        except RuntimeError:
            if len(tf.config.list_logical_devices("CPU")) != n_cpus:
                raise UserError(
                    f"--devices {runtime.devices}: TensorFlow is already initialised with "
                    f"{len(tf.config.list_logical_devices('CPU'))} CPU device(s) in this process"
                ) from None
    from dlapps import compat

    compat.patch_distributed_trainer()  # also fixes string inputs under MirroredStrategy (see compat.py)
    keras.mixed_precision.set_global_policy(runtime.precision)
    if runtime.seed is not None:
        keras.utils.set_random_seed(runtime.seed)
    if runtime.deterministic:
        tf.config.experimental.enable_op_determinism()
    else:  # a process that ran a deterministic job before must not stay deterministic (nor lose XLA)
        from tensorflow.python.framework import config as tf_config  # no public API for this

        tf_config.disable_op_determinism()
    return strategy or make_strategy(runtime.strategy, n_cpus)


def make_strategy(name: str, n_cpus: int | None = None):
    """The tf.distribute strategy called `name` (see STRATEGIES)."""
    import tensorflow as tf

    if name == "multiworker":
        return _multiworker_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if _tpu_hinted():
            tpu = _tpu_strategy(required=False)
            if tpu is not None:
                return tpu
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        if n_cpus and n_cpus > 1 and not gpus:
            return _mirrored_on_cpus()
        return tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        return _mirrored_on_cpus()
    if name == "tpu":
        return _tpu_strategy(required=True)
    raise UserError(f"--strategy {name!r}: choose one of {', '.join(STRATEGIES)}")


def _multiworker_strategy():
    """MultiWorkerMirroredStrategy from TF_CONFIG; must be created before TensorFlow initialises."""
    import tensorflow as tf

    if "TF_CONFIG" not in os.environ:
        raise UserError("--strategy multiworker needs the TF_CONFIG environment variable "
                        "(cluster and task); see the README's multi-worker section")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError:
        raise UserError("TF_CONFIG is not valid JSON") from None
    from dlapps import compat

    compat.patch_distributed_trainer()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as err:
        raise UserError(f"--strategy multiworker: {err}; start it in a fresh process") from None


def _mirrored_on_cpus():
    """MirroredStrategy over all logical CPU devices (cross-device ops that work on CPU)."""
    import tensorflow as tf

    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(
        devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())


def _tpu_hinted() -> bool:
    """Whether this machine looks like it has a TPU (so `auto` does not probe a resolver for nothing)."""
    import glob

    return bool(os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR")
                or glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def _tpu_strategy(required: bool):
    """A TPUStrategy if a TPU resolver answers; None (or a UserError when required) otherwise."""
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        if required:
            raise UserError(f"--strategy tpu: no TPU found ({str(err).splitlines()[0]})") from None
        return None


def is_chief() -> bool:
    """True unless TF_CONFIG names this process as a non-chief worker."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    cluster = config.get("cluster", {})
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in cluster
