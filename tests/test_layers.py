"""One serialization harness for every object dlapps registers with Keras (keras-hub's run_serialization_test).

The registry is read from Keras after importing `dlapps.layers`, `dlapps.optim` and every module of every
task, so a newly registered layer, loss, schedule or function fails `test_every_registered_object_has_a_case`
until it gets a case here, and then goes through the same checks as the others:

- constructed with non-default arguments, its `get_config()` holds every constructor argument with the
  value given (a dropped or renamed argument fails here even when `from_config` would still succeed);
- `from_config(get_config())` gives an equal config and, with the same weights, equal outputs;
- inside a model, `.keras` save -> load gives the same outputs (and weights).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import keras
import numpy as np
import pytest

import dlapps.layers  # noqa: F401  (registers the shared layers)
import dlapps.optim as optim
import dlapps.tasks
from dlapps.layers.generative import VAESampling
from dlapps.layers.tabular import ImputeMissing, Log1p, PeriodicEncoding, PiecewiseLinearEncoding
from dlapps.layers.text import DecisionThreshold, MaskedGlobalMaxPooling1D, NotPadding, TruncateSequence, ZeroMasked
from dlapps.layers.transformer import (PaddingMask, PositionalEmbedding, TokenSlice, TransformerDecoderBlock,
                                       TransformerEncoderBlock)
from dlapps.layers.vision import BackbonePreprocess
from dlapps.layers.wordpiece import WordPieceVectorizer
from dlapps.tasks.tabular.model import EnsembleMean
from dlapps.tasks.tabular.nca import ModernNCA

for _module in pkgutil.walk_packages(dlapps.tasks.__path__, "dlapps.tasks."):
    importlib.import_module(_module.name)  # every task module, so its registrations are in the registry


def registered() -> dict[str, object]:
    """name -> class or function, for everything registered under the "dlapps" package."""
    return {key.split(">", 1)[1]: obj for key, obj in keras.saving.get_custom_objects().items()
            if key.startswith("dlapps>")}


RNG = np.random.default_rng(0)


def _floats(*shape):
    return RNG.normal(size=shape).astype("float32")


def _ids(*shape, high=11):
    ids = RNG.integers(1, high, size=shape).astype("int32")
    ids[:, -2:] = 0  # some padding
    return ids


def _input(array):
    """A keras.Input that takes `array` (any batch size; other dimensions as in the array)."""
    dtype = "string" if array.dtype.kind in "OUS" else str(array.dtype)
    return keras.Input(shape=array.shape[1:], dtype=dtype)


# name -> (layer with non-default constructor arguments (a factory), the arguments, example inputs).
# Inputs are a list: the layer is called as layer(*inputs), or layer(inputs) for those in TAKES_A_LIST.
_VOCAB = ["[start]", "[end]", "ein", "mann", "fahr", "##rad", "."]


def _layer_cases():
    mean, log_var = _floats(3, 4), _floats(3, 4) * 0.1
    context = _floats(2, 6, 8)
    cases = {
        "BackbonePreprocess": (BackbonePreprocess, {"module": "resnet50"},
                               [RNG.integers(0, 256, size=(2, 4, 4, 3)).astype("uint8")]),
        "DecisionThreshold": (DecisionThreshold, {"threshold": 0.3}, [RNG.uniform(size=(4, 1)).astype("float32")]),
        "EnsembleMean": (EnsembleMean, {"spread_weight": 0.5}, [_floats(4, 3)]),
        "ImputeMissing": (ImputeMissing, {"fill_value": -2.5},
                          [np.array([[1.0], [np.nan], [3.5]], "float32")]),
        "Log1p": (Log1p, {}, [np.array([[0.0], [np.e - 1], [np.nan]], "float32")]),
        "MaskedGlobalMaxPooling1D": (MaskedGlobalMaxPooling1D, {}, [_floats(2, 5, 3)]),
        # 2 numeric (value, flag) pairs, 1 other column, 1 id of a 3-word vocabulary: 6 columns
        "ModernNCA": (ModernNCA, {"candidates": 5, "numeric": 2, "other": 1, "vocabularies": [3], "units": 8,
                                  "blocks": 1, "dropout": 0.1, "frequencies": 3, "sigma": 0.5, "periodic_dim": 4,
                                  "id_embedding_dim": 2, "sample_rate": 0.6, "temperature": 0.5, "seed": 7},
                      [np.concatenate([_floats(4, 5), np.array([[0.0], [1.0], [3.0], [2.0]])], axis=1)
                       .astype("float32")]),
        "NotPadding": (NotPadding, {}, [_ids(2, 6)]),
        "PaddingMask": (PaddingMask, {}, [_ids(2, 6)]),
        "PeriodicEncoding": (PeriodicEncoding, {"frequencies": 3, "sigma": 0.5}, [_floats(4, 1)]),
        "PiecewiseLinearEncoding": (PiecewiseLinearEncoding, {"edges": [-1.0, 0.0, 0.5, 2.0]},
                                    [np.array([[-3.0], [0.25], [1.0], [np.nan]], "float32")]),
        "PositionalEmbedding": (PositionalEmbedding, {"vocab_size": 11, "max_length": 9, "d_model": 6,
                                                      "dropout": 0.25}, [_ids(2, 7)]),
        "TokenSlice": (TokenSlice, {"begin": 1, "end": -1}, [_ids(2, 6)]),
        "TransformerEncoderBlock": (TransformerEncoderBlock, {"d_model": 8, "num_heads": 2, "ff_dim": 12,
                                                              "dropout": 0.05},
                                    [_floats(2, 5, 8), np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)]),
        "TransformerDecoderBlock": (TransformerDecoderBlock, {"d_model": 8, "num_heads": 4, "ff_dim": 12,
                                                              "dropout": 0.05},
                                    [_floats(2, 4, 8), context, np.ones((2, 4), bool),
                                     np.array([[1, 1, 1, 1, 0, 0], [1] * 6], bool)]),
        "TruncateSequence": (TruncateSequence, {"max_length": 3}, [_floats(2, 5, 2)]),
        "VAESampling": (VAESampling, {"kl_weight": 0.25, "seed": 7}, [mean, log_var]),
        "WordPieceVectorizer": (WordPieceVectorizer, {"vocabulary": _VOCAB, "sequence_length": 9,
                                                      "split_rules": [[r"([.])", r" \1 "]],
                                                      "markers": ["[start]", "[end]"]},
                                [np.array([["Ein Mann fahrrad."], ["ein Xylophon"]], object)]),
        "ZeroMasked": (ZeroMasked, {}, [_floats(2, 5, 3)]),
    }
    return cases


LAYER_CASES = _layer_cases()
TAKES_A_LIST = {"VAESampling"}


def _call(name, layer, inputs):
    return layer(inputs) if name in TAKES_A_LIST else layer(*inputs)


def _gan(**kwargs):
    from dlapps.tasks.gan.adversarial import GAN

    generator = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, activation="tanh"),
                                  keras.layers.Reshape((4, 4, 1))], name="generator")
    discriminator = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(1)],
                                     name="discriminator")
    return GAN(generator, discriminator, **kwargs)


GAN_ARGS = {"latent_dim": 3, "label_smoothing": 0.1, "instance_noise": 0.05, "seed": 3,
            "augment": ["translation"], "ema": 0.9, "num_classes": 0}

# Registered objects that are not layers: checked by their own tests below.
OTHER_CASES = {"GAN", "OneCycle", "OneCycleSGD", "OneCycleAdam", "OneCycleAdamW", "OneCycleNadam", "OneCycleAdamax",
               "MaskedSparseCrossentropy", "masked_accuracy", "translation_standardize",
               "translation_standardize_target"}


def _plain(value):
    """Config values as JSON would give them back (tuples -> lists)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _outputs(result):
    return [np.asarray(r) for r in (result if isinstance(result, (list, tuple)) else [result])]


def _assert_same(a, b):
    for x, y in zip(_outputs(a), _outputs(b), strict=True):
        if x.dtype.kind in "fc":
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(x, y)


def test_every_registered_object_has_a_case():
    names = set(registered())
    assert names == set(LAYER_CASES) | OTHER_CASES, (
        f"registered without a case here: {sorted(names - set(LAYER_CASES) - OTHER_CASES)}; "
        f"cases for unregistered names: {sorted((set(LAYER_CASES) | OTHER_CASES) - names)}")


def _constructor_arguments(cls) -> list[str]:
    return [p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def _assert_config_holds_arguments(cls, config, kwargs):
    missing = [name for name in _constructor_arguments(cls) if name not in config]
    assert not missing, f"{cls.__name__}.get_config() lacks constructor argument(s) {missing}"
    for name, value in kwargs.items():
        assert _plain(config[name]) == _plain(value), f"{cls.__name__}: config[{name!r}]={config[name]!r}, given {value!r}"


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_config_round_trip(name):
    cls, kwargs, inputs = LAYER_CASES[name]
    assert registered()[name] is cls
    # Every default differs from the case's arguments: a case really exercises non-default values.
    defaults = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()}
    for key, value in kwargs.items():
        assert _plain(defaults[key]) != _plain(value), f"{name}: {key}={value!r} is the default; pick another value"

    layer = cls(**kwargs, name=f"my_{name.lower()}", dtype="float32")
    expected = _call(name, layer, inputs)
    config = layer.get_config()
    _assert_config_holds_arguments(cls, config, kwargs)
    assert config["name"] == f"my_{name.lower()}"

    clone = cls.from_config(config)
    assert clone.get_config() == config
    _call(name, clone, inputs)  # builds its weights
    clone.set_weights(layer.get_weights())
    _assert_same(expected, _call(name, clone, inputs))

    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is cls and revived.get_config() == config


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_saves_and_loads_inside_a_model(name, tmp_path):
    cls, kwargs, inputs = LAYER_CASES[name]
    model_inputs = [_input(x) for x in inputs]
    layer = cls(**kwargs, name="under_test")
    model = keras.Model(model_inputs, _call(name, layer, model_inputs))
    if name == "DecisionThreshold":
        layer.assign_threshold(0.73)  # a weight, not a constructor argument: it must travel too
    if layer.weights:  # weights that differ from a fresh layer's, so loading must restore them
        model.get_layer("under_test").set_weights([w + 0.125 for w in layer.get_weights()])
    expected = model(inputs)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    restored = loaded.get_layer("under_test")
    assert type(restored) is cls
    _assert_config_holds_arguments(cls, restored.get_config(), kwargs)
    for saved, read in zip(layer.get_weights(), restored.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, read)
    _assert_same(expected, loaded(inputs))


def test_gan_config_and_save_load(tmp_path):
    gan = _gan(**GAN_ARGS)
    cls = type(gan)
    assert registered()["GAN"] is cls
    defaults = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()}
    for key, value in GAN_ARGS.items():
        if key not in ("latent_dim", "num_classes"):
            assert _plain(defaults[key]) != _plain(value), key
    config = gan.get_config()
    _assert_config_holds_arguments(cls, {**config}, GAN_ARGS)
    images = RNG.integers(0, 256, size=(3, 4, 4, 1)).astype("float32")
    clone = cls.from_config(config)
    assert clone.get_config() == config
    clone.set_weights(gan.get_weights())
    _assert_same(gan(images), clone(images))

    gan.generator_ema.set_weights([w + 0.5 for w in gan.generator_ema.get_weights()])  # differs from generator
    gan.save(tmp_path / "gan.keras")
    loaded = keras.saving.load_model(tmp_path / "gan.keras")
    assert type(loaded) is cls
    _assert_config_holds_arguments(cls, loaded.get_config(), GAN_ARGS)
    _assert_same(gan(images), loaded(images))
    latent = _floats(2, 3)
    _assert_same(gan.generator_ema(latent), loaded.generator_ema(latent))


ONECYCLE_ARGS = {"max_learning_rate": 0.3, "total_steps": 40, "warmup_fraction": 0.2, "div_factor": 10.0,
                 "final_div_factor": 100.0, "momentum_range": [0.8, 0.9], "name": "my_cycle"}


def test_onecycle_schedule_config_round_trip():
    schedule = optim.OneCycle(**ONECYCLE_ARGS)
    config = keras.saving.serialize_keras_object(schedule)["config"]
    _assert_config_holds_arguments(optim.OneCycle, config, ONECYCLE_ARGS)
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(revived) is optim.OneCycle and revived.get_config() == schedule.get_config()
    for step in (0, 5, 8, 20, 39, 60):
        np.testing.assert_allclose(float(revived(step)), float(schedule(step)), rtol=1e-6)
        np.testing.assert_allclose(float(revived.momentum(step)), float(schedule.momentum(step)), rtol=1e-6)


@pytest.mark.parametrize("name", ["OneCycleSGD", "OneCycleAdam", "OneCycleAdamW", "OneCycleNadam", "OneCycleAdamax"])
def test_onecycle_optimizers_save_and_load_inside_a_model(name, tmp_path):
    cls = registered()[name]
    momentum = {"momentum": 0.7, "nesterov": True} if name == "OneCycleSGD" else {"beta_1": 0.7}
    optimizer = cls(optim.OneCycle(**ONECYCLE_ARGS), **momentum)
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(optimizer))
    assert type(revived) is cls and revived.get_config() == optimizer.get_config()

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer, "mse")
    x, y = _floats(8, 3), _floats(8, 2)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is cls
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert isinstance(loaded.optimizer._learning_rate, optim.OneCycle)
    # One more identical step from the same state gives identical weights: state and schedule both travelled.
    model.train_on_batch(x[:4], y[:4])
    loaded.train_on_batch(x[:4], y[:4])
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_translation_loss_metric_and_standardizers_round_trip():
    from dlapps.tasks.translation import model as translation_model
    from dlapps.tasks.translation import text as translation_text

    loss = translation_model.MaskedSparseCrossentropy(label_smoothing=0.2, name="my_loss")
    config = loss.get_config()
    _assert_config_holds_arguments(type(loss), config, {"label_smoothing": 0.2, "name": "my_loss"})
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(revived) is type(loss) and revived.get_config() == config
    y_true = np.array([[3, 1, 0], [2, 2, 4]], "int32")
    y_pred = _floats(2, 3, 5)
    np.testing.assert_allclose(float(revived(y_true, y_pred)), float(loss(y_true, y_pred)), rtol=1e-6)

    for function in (translation_model.masked_accuracy, translation_text.standardize,
                     translation_text.standardize_target):
        assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(function)) is function


# ----------------------------------------------------------------------------- values by another route
def test_position_codes_follow_the_formula():
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)) (Vaswani et al., 2017)."""
    import math

    from dlapps.layers.transformer import sinusoids

    for depth in (6, 8):
        codes = sinusoids(40, depth)
        for pos in (0, 1, 2, 7, 39):
            for i in range(depth // 2):
                angle = pos / 10_000 ** (2 * i / depth)
                assert codes[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6), (depth, pos, 2 * i)
                assert codes[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6), (depth, pos, 2 * i + 1)
    # The layer adds exactly these codes: with all-zero token vectors its output is the codes.
    layer = PositionalEmbedding(vocab_size=5, max_length=12, d_model=4)
    ids = np.array([[1, 2, 3, 4, 1, 2, 3]], "int32")
    layer(ids)
    layer.token_embedding.set_weights([np.zeros((5, 4), "float32")])
    expected = [[math.sin(p / 100 ** (2 * (c // 2) / 2)) if c % 2 == 0 else math.cos(p / 100 ** (2 * (c // 2) / 2))
                 for c in range(4)] for p in range(7)]  # d=4: 10000^(2i/4) = 100^i
    np.testing.assert_allclose(np.asarray(layer(ids))[0], expected, atol=1e-6)
