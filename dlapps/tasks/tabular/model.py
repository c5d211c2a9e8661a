"""The tabular MLP: raw columns in (preprocessing layers inside), the target in its own units out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from dlapps.config import choices, field_types
from dlapps.data.pipeline import batched
from dlapps.errors import UserError
from dlapps.layers import ImputeMissing, Log1p, PeriodicEncoding, PiecewiseLinearEncoding
from dlapps.optim import make_optimizer
from dlapps.runs import readable
from dlapps.tasks.tabular.config import Config
from dlapps.tasks.tabular.data import to_columns
from dlapps.tasks.tabular.inputs import check_dataset_columns, read_inputs
from dlapps.tasks.tabular.nca import ModernNCA, check_settings

NUMERIC_ENCODINGS = choices(field_types(Config)["numeric_encoding"])

MODEL_NOTES = ("Raw columns in: numbers standardised (log1p first for long-tailed counts) with a missing-value "
               "flag, plus a learned periodic embedding of each (numeric_encoding=periodic), or piecewise-linear "
               "encoded; strings one-hot or embedded. model=mlp: an MLP over them; model=nca (ModernNCA): the "
               "similarity-weighted mean target of the training rows nearest in a learned embedding, the training "
               "rows stored in the model (so rows of its own training set are predicted from their own targets: "
               "judge it on held-out rows). Loss MSE on the standardised target, metrics in the target's units.")


def _raw_inputs(info: dict) -> dict:
    """One keras.Input (batch, 1) per feature column: float32 for numbers, string for the rest."""
    return {column: keras.Input(shape=(1,), name=_safe(column), dtype="float32" if kind == "numeric" else "string")
            for column, kind in info["kinds"].items()}


def _standardized(name: str, values, stats: dict):
    """A numeric column z-scored with its training statistics (log1p first for long-tailed ones); NaN stays NaN."""
    values = Log1p(name=f"{name}_log1p")(values) if stats.get("log") else values
    return keras.layers.Normalization(mean=stats["mean"], variance=max(stats["variance"], 1e-12),
                                      name=f"{name}_norm")(values)


def _one_hot(name: str, values, vocabulary: list):
    return keras.layers.StringLookup(vocabulary=vocabulary, output_mode="one_hot", name=f"{name}_onehot")(values)


def preprocessing(info: dict) -> tuple[dict, keras.KerasTensor]:
    """(raw inputs by column, their encoded concatenation): normalise numbers, encode strings."""
    inputs, encoded = _raw_inputs(info), []
    for column, kind in info["kinds"].items():
        name, stats = _safe(column), info["stats"][column]
        if kind == "numeric":
            if info.get("numeric_encoding") == "piecewise":
                encoded.append(PiecewiseLinearEncoding(stats["edges"], name=f"{name}_piecewise")(inputs[column]))
                continue
            normalized = _standardized(name, inputs[column], stats)
            encoded.append(ImputeMissing(0.0, name=f"{name}_impute")(normalized))
            if info.get("numeric_encoding") == "periodic":  # + its own periodic embedding (PLR)
                periodic = info["periodic"]
                waves = PeriodicEncoding(periodic["frequencies"], periodic["sigma"],
                                         name=f"{name}_periodic")(normalized)
                encoded.append(keras.layers.Dense(periodic["dim"], activation="relu",
                                                  name=f"{name}_periodic_dense")(waves))
        else:
            vocabulary = stats["vocabulary"]
            if len(vocabulary) <= info.get("one_hot_max", 12):  # more than one_hot_max: embedded
                encoded.append(_one_hot(name, inputs[column], vocabulary))
            else:
                ids = keras.layers.StringLookup(vocabulary=vocabulary, name=f"{name}_ids")(inputs[column])
                embedded = keras.layers.Embedding(len(vocabulary) + 1, info.get("embedding_dim", 8),
                                                  name=f"{name}_embedding")(ids)
                encoded.append(keras.layers.Flatten(name=f"{name}_flat")(embedded))
    return inputs, _concatenated(encoded, "features")


def _concatenated(tensors: list, name: str):
    return tensors[0] if len(tensors) == 1 else keras.layers.Concatenate(name=name)(tensors)


def nca_features(info: dict, cfg: Config) -> tuple[dict, keras.KerasTensor, dict]:
    """(raw inputs, their fixed encodings (batch, width), the layout `ModernNCA` takes).

    The encodings hold no trainable weight, so the training rows can be stored encoded in the
    model: numeric columns as (z-score, missing flag) pairs (or piecewise-linear codes, with the
    one-hot columns), string columns one-hot up to `one_hot_max` categories, else as an id that
    ModernNCA embeds.
    """
    inputs, numeric, other, ids, vocabularies = _raw_inputs(info), [], [], [], []
    for column, kind in info["kinds"].items():
        name, stats = _safe(column), info["stats"][column]
        if kind == "numeric" and cfg.numeric_encoding == "piecewise":
            other.append(PiecewiseLinearEncoding(stats["edges"], name=f"{name}_piecewise")(inputs[column]))
        elif kind == "numeric":
            numeric.append(ImputeMissing(0.0, name=f"{name}_impute")(_standardized(name, inputs[column], stats)))
        elif len(stats["vocabulary"]) <= cfg.one_hot_max:
            other.append(_one_hot(name, inputs[column], stats["vocabulary"]))
        else:
            looked_up = keras.layers.StringLookup(vocabulary=stats["vocabulary"], name=f"{name}_ids")(inputs[column])
            ids.append(keras.layers.Rescaling(1.0, name=f"{name}_id")(looked_up))  # the id, as float32
            vocabularies.append(len(stats["vocabulary"]))
    layout = {"numeric": len(numeric), "other": sum(int(t.shape[-1]) for t in other), "vocabularies": vocabularies}
    return inputs, _concatenated(numeric + other + ids, "nca_features"), layout


def build_model(cfg: Config, info: dict, hp=None) -> keras.Model:
    """A compiled regressor, model=mlp (an MLP) or nca (ModernNCA); `hp` (KerasTuner) may choose units,
    depth, dropout, l2, optimizer, the numeric encoding. Raises UserError for settings out of range."""
    units = hp.Int("units", 32, 512, step=32, default=cfg.units) if hp else cfg.units
    depth = hp.Int("depth", 0, 6, default=cfg.depth) if hp else cfg.depth  # 0: linear (mlp), no blocks (nca)
    dropout = hp.Float("dropout", 0.0, 0.5, step=0.05, default=cfg.dropout) if hp else cfg.dropout
    l2 = hp.Float("l2", 1e-7, 1e-2, sampling="log", default=max(cfg.l2, 1e-7)) if hp else cfg.l2
    batch_norm = hp.Boolean("batch_norm", default=cfg.batch_norm) if hp else cfg.batch_norm
    activation = (hp.Choice("activation", ["relu", "gelu", "selu", "elu", "tanh", "swish"],
                            default=cfg.activation) if hp else cfg.activation)

    encoding = (hp.Choice("numeric_encoding", list(NUMERIC_ENCODINGS), default=cfg.numeric_encoding)
                if hp else cfg.numeric_encoding)
    periodic = {"frequencies": cfg.periodic_frequencies, "dim": cfg.periodic_dim,
                "sigma": (hp.Float("periodic_sigma", 0.01, 10.0, sampling="log", default=cfg.periodic_sigma)
                          if hp else cfg.periodic_sigma)}  # (declared for every trial: used when periodic)
    if cfg.model == "nca":
        check_settings(cfg.sample_rate, cfg.temperature)
        if cfg.ensemble != 1:
            raise UserError(f"ensemble={cfg.ensemble} packs MLPs: it needs model=mlp (model=nca is one model)")
        inputs, x, layout = nca_features(info, dataclasses.replace(cfg, numeric_encoding=encoding))
        standardized = ModernNCA(
            info["train_size"], **layout, units=units, blocks=depth, dropout=dropout,
            frequencies=cfg.periodic_frequencies if encoding == "periodic" else 0, sigma=periodic["sigma"],
            periodic_dim=cfg.periodic_dim, id_embedding_dim=cfg.embedding_dim, sample_rate=cfg.sample_rate,
            temperature=cfg.temperature, dtype="float32", name="neighbours")(x)
        return _compiled(keras.Model(inputs, _in_target_units(standardized, info), name="tabular_nca"),
                         cfg, info, hp)
    inputs, x = preprocessing({**info, "one_hot_max": cfg.one_hot_max, "embedding_dim": cfg.embedding_dim,
                               "numeric_encoding": encoding, "periodic": periodic})
    regularizer = (keras.regularizers.L1L2(l1=cfg.l1, l2=l2) if cfg.l1 > 0
                   else keras.regularizers.L2(l2) if l2 > 0 else None)
    if cfg.ensemble < 1:
        raise UserError(f"ensemble={cfg.ensemble}: give the number of MLPs, at least 1")
    if cfg.ensemble > 1:
        standardized = packed_ensemble(x, cfg.ensemble, units, depth, activation, dropout, batch_norm,
                                       cfg.kernel_initializer, regularizer)
    else:
        for i in range(depth):
            x = keras.layers.Dense(units, kernel_initializer=cfg.kernel_initializer,
                                   kernel_regularizer=regularizer, use_bias=not batch_norm, name=f"dense_{i}")(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(x)
            x = keras.layers.Activation(activation, name=f"{activation}_{i}")(x)
            if dropout > 0:
                x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        standardized = keras.layers.Dense(1, dtype="float32", name="standardized_prediction")(x)
    return _compiled(keras.Model(inputs, _in_target_units(standardized, info), name="tabular_mlp"), cfg, info, hp)


def _in_target_units(standardized, info: dict):
    """Back to the target's own units, so predictions and metrics read in (e.g.) USD."""
    return keras.layers.Rescaling(scale=info["target_std"], offset=info["target_mean"],
                                  dtype="float32", name=_safe(info["target"]))(standardized)


def _compiled(model: keras.Model, cfg: Config, info: dict, hp) -> keras.Model:
    # The loss is computed in target units and scaled by 1/std^2 (1/std for huber's linear part):
    # the same optimisation as on a standardised target, while metrics stay in target units.
    scale = info["target_std"] or 1.0
    loss = (keras.losses.MeanSquaredError() if cfg.loss == "mse" else keras.losses.Huber(delta=scale))
    model.compile(optimizer=make_optimizer(cfg, info, hp), loss=loss,
                  loss_weights=1.0 / (scale ** 2 if cfg.loss == "mse" else scale),
                  metrics=[keras.metrics.RootMeanSquaredError(name="rmse"),
                           keras.metrics.MeanAbsoluteError(name="mae")])
    return model


def before_fit(model: keras.Model, data, cfg: Config) -> None:
    """model=nca: writes the training rows, encoded, and their standardised targets into the
    model's ModernNCA layer (its candidates); other models: nothing."""
    if cfg.model != "nca":
        return
    layer = model.get_layer("neighbours")
    encoder = keras.Model(model.input, layer.input)
    rows = list(batched(data.train, 1024).as_numpy_iterator())
    features = np.concatenate([encoder.predict_on_batch(x) for x, _ in rows])
    targets = np.concatenate([y for _, y in rows])
    layer.set_candidates(features, (targets - data.info["target_mean"]) / (data.info["target_std"] or 1.0))


@keras.saving.register_keras_serializable(package="dlapps")
class EnsembleMean(keras.layers.Layer):
    """Member predictions (batch, k) -> their mean (batch, 1), float32.

    In training it also adds the members' spread, mean over batch and members of
    (p_i - mean)^2, as a loss. For squared error, error(mean)^2 + spread = the mean of the members'
    own squared errors (the bias-variance identity), so with an MSE loss on the mean each member is
    trained on its own error, as TabM's members are (Gorishniy et al. 2024, "TabM: Advancing Tabular
    Deep Learning with Parameter-Efficient Ensembling"), while the model keeps one output.
    `spread_weight` scales that loss: the main loss's weight in the units of the members' predictions.
    """

    def __init__(self, spread_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.spread_weight = float(spread_weight)

    def call(self, members, training=None):
        members = keras.ops.cast(members, "float32")
        mean = keras.ops.mean(members, axis=-1, keepdims=True)
        if training:
            self.add_loss(self.spread_weight * keras.ops.mean(keras.ops.square(members - mean)))
        return mean

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)

    def get_config(self):
        return {**super().get_config(), "spread_weight": self.spread_weight}


def _member_initializer(name: str, members: int):
    """`name` (a Keras initializer) for a kernel of shape (members, fan_in, fan_out).

    Keras counts the leading member axis into fan_in/fan_out; a variance-scaling initializer
    (he_normal, glorot_uniform, ...) gets its scale multiplied by `members` so that each member
    starts as a single Dense layer would.
    """
    initializer = keras.initializers.get(name)
    if isinstance(initializer, keras.initializers.VarianceScaling):
        return keras.initializers.VarianceScaling(scale=initializer.scale * members, mode=initializer.mode,
                                                  distribution=initializer.distribution)
    return initializer


def packed_ensemble(features, members: int, units: int, depth: int, activation: str, dropout: float,
                    batch_norm: bool, kernel_initializer: str, regularizer) -> keras.KerasTensor:
    """`members` independent MLPs (`depth` x `units`) over `features` (batch, d), as einsum layers.

    Each hidden layer is one EinsumDense with a kernel (members, fan_in, units): every member has
    its own weights, and all are computed in one batched matmul. Batch norm keeps statistics per
    member and unit. Returns the members' mean standardized prediction (batch, 1), via
    `EnsembleMean` (which trains each member on its own error).
    """
    x = features
    for i in range(depth):
        equation = "bd,kdu->bku" if i == 0 else "bkd,kdu->bku"
        x = keras.layers.EinsumDense(equation, output_shape=(members, units),
                                     bias_axes=None if batch_norm else "ku",
                                     kernel_initializer=_member_initializer(kernel_initializer, members),
                                     kernel_regularizer=regularizer, name=f"dense_{i}")(x)
        if batch_norm:  # statistics per (member, unit): Keras' BatchNormalization takes one axis
            x = keras.layers.Reshape((members * units,), name=f"flat_{i}")(x)
            x = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(x)
            x = keras.layers.Reshape((members, units), name=f"members_{i}")(x)
        x = keras.layers.Activation(activation, name=f"{activation}_{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    x = keras.layers.EinsumDense("bkd,kdo->bko", output_shape=(members, 1), bias_axes="ko",
                                 kernel_initializer=_member_initializer("glorot_uniform", members),
                                 dtype="float32", name="member_predictions")(x)
    x = keras.layers.Reshape((members,), dtype="float32", name="members")(x)
    return EnsembleMean(name="standardized_prediction")(x)


def _safe(name: str) -> str:
    """A column name usable as a Keras layer name."""
    return "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in str(name)) or "column"


def _predictions(model: keras.Model, dataset) -> tuple[np.ndarray, np.ndarray]:
    x_and_y = list(batched(dataset, 1024).as_numpy_iterator())
    if not x_and_y:
        return np.zeros(0), np.zeros(0)
    y_true = np.concatenate([y for _, y in x_and_y])
    y_pred = np.concatenate([model.predict_on_batch(x) for x, _ in x_and_y]).ravel()
    return y_true, y_pred


def evaluate(model: keras.Model, data, cfg: Config) -> dict[str, float]:
    """RMSE, MAE and R^2 on the test split, in the target's units.

    The split's columns are checked against the model's (`inputs.check_dataset_columns`): missing
    ones are an error, extra ones are ignored with a note.
    """
    y_true, y_pred = _predictions(model, check_dataset_columns(data.test, data.info))
    if len(y_true) == 0:
        raise UserError("no rows to evaluate")
    error = y_pred - y_true
    total = float(np.sum((y_true - y_true.mean()) ** 2))
    return {"rmse": float(np.sqrt(np.mean(error ** 2))), "mae": float(np.mean(np.abs(error))),
            "r2": 1.0 - float(np.sum(error ** 2)) / total if total > 0 else 0.0,
            "rmse_predicting_mean": float(np.sqrt(np.mean((y_true - data.info["target_mean"]) ** 2))),
            "n": int(len(y_true))}


def make_plots(model: keras.Model, data, cfg: Config, plots_dir: Path) -> list[Path]:
    """Predicted-vs-true scatter on the test split."""
    from dlapps import plots

    y_true, y_pred = _predictions(model, data.test)
    return [plots.predicted_vs_true(y_true, y_pred, Path(plots_dir) / "predicted_vs_true.png",
                                    unit=f"({data.info['target']})")]


def parse_rows(inputs: list[str], info: dict) -> pd.DataFrame:
    """Raw CSV rows (in the training file's column order, target optional) or CSV files -> the
    model's feature columns, checked against the model (see `dlapps.tasks.tabular.inputs`)."""
    return read_inputs(inputs, info)


def predict(model: keras.Model, inputs: list[str], info: dict, cfg: Config, options: dict) -> list[str]:
    """`<target> = <value>` for each raw CSV row (or every row of each CSV file given).

    Rows and files are read by `dlapps.tasks.tabular.inputs.read_inputs`: a file missing model
    columns, a row of the wrong width or with a non-number target field is a UserError; extra
    columns are ignored with a note and unseen categories are counted in a warning (stderr).
    """
    if not inputs:
        raise UserError("give CSV rows (quoted) or a .csv file to predict")
    frame = parse_rows(inputs, info)
    import tensorflow as tf

    columns = {name: tf.constant(values) for name, values in to_columns(frame, info["kinds"]).items()}
    predictions = np.asarray(model.predict_on_batch(columns)).ravel()
    return [f"{info['target']} = {readable(float(value))}" for value in predictions]
