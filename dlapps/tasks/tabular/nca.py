"""ModernNCA: regression by soft nearest neighbours in a learned embedding of the rows."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from dlapps.errors import UserError
from dlapps.layers.tabular import periodic_waves


@keras.saving.register_keras_serializable(package="dlapps")
class ModernNCA(keras.layers.Layer):
    """A row's (standardised) target as the similarity-weighted mean of the training rows' targets.

    y(x) = sum_i softmax_i(-||phi(x) - phi(x_i)|| / temperature) * y_i over the candidate rows
    (x_i, y_i): the training set, held in the layer as non-trainable weights and written by
    `set_candidates` before training (the tabular task's `before_fit`). phi, the learned embedding:
    each numeric column's periodic embedding (cosines and sines of learned frequencies, Dense + ReLU:
    "PLR", Gorishniy et al. 2022) beside the other features, a linear projection to `units`, then
    `blocks` residual blocks (batch norm, Dense + ReLU, dropout, Dense). Training is neighbourhood
    component analysis with MSE (Goldberger et al. 2004): in each step the batch is compared with a
    random `sample_rate` share of the candidates (stochastic neighbourhood sampling), and a candidate
    whose features equal the row's is masked, so a row is never its own neighbour. Evaluation and
    prediction compare with every candidate, so rows of the training set itself are predicted from
    their own targets (the method is a retrieval model: judge it on held-out rows only).
    Source: Ye, Yin and Zhan, "Revisiting Nearest Neighbor for Tabular Data: A Deep Tabular Baseline
    Two Decades Later" (ModernNCA, ICLR 2025, arXiv:2407.03257).

    Input (batch, width) float32 fixed encodings of a row: `numeric` (standardised value, missing
    flag) pairs, then `other` columns used as they are (one-hot, piecewise-linear), then one integer
    id per entry of `vocabularies` (vocabulary sizes, embedded with `id_embedding_dim`).
    Output (batch, 1) float32. Cost per batch: embedding every candidate once, then a
    (batch, candidates) distance matrix. Raises ValueError (from `set_candidates`) when the
    candidates' shape is not the layer's.
    """

    def __init__(self, candidates: int, numeric: int, other: int, vocabularies=(), units: int = 256,
                 blocks: int = 0, dropout: float = 0.0, frequencies: int = 16, sigma: float = 0.1,
                 periodic_dim: int = 16, id_embedding_dim: int = 8, sample_rate: float = 0.3,
                 temperature: float = 1.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.candidates, self.numeric, self.other = int(candidates), int(numeric), int(other)
        self.vocabularies = [int(v) for v in vocabularies]
        self.units, self.blocks, self.dropout = int(units), int(blocks), float(dropout)
        self.frequencies, self.sigma, self.periodic_dim = int(frequencies), float(sigma), int(periodic_dim)
        self.id_embedding_dim = int(id_embedding_dim)
        self.sample_rate, self.temperature, self.seed = float(sample_rate), float(temperature), seed
        if not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample_rate={sample_rate}: a share of the candidates in (0, 1]")
        self.sampled = max(1, int(round(self.candidates * self.sample_rate)))
        self.seed_generator = keras.random.SeedGenerator(seed)
        same = {"dtype": self.dtype_policy}  # sublayers compute as this layer does (float32 under mixed precision)
        self.periodic_dense = (keras.layers.EinsumDense("bnf,nfd->bnd", output_shape=(self.numeric, periodic_dim),
                                                        bias_axes="nd", activation="relu", name="periodic_dense", **same)
                               if self.numeric and self.frequencies else None)
        self.id_embeddings = [keras.layers.Embedding(size + 1, self.id_embedding_dim, name=f"id_embedding_{j}", **same)
                              for j, size in enumerate(self.vocabularies)]
        self.projection = keras.layers.Dense(self.units, name="projection", **same)
        self.residual = [(keras.layers.BatchNormalization(name=f"block_{i}_norm", **same),
                          keras.layers.Dense(self.units, activation="relu", name=f"block_{i}_dense", **same),
                          keras.layers.Dropout(self.dropout, **same),
                          keras.layers.Dense(self.units, name=f"block_{i}_out", **same)) for i in range(self.blocks)]

    @property
    def width(self) -> int:
        """The number of input columns."""
        return 2 * self.numeric + self.other + len(self.vocabularies)

    def build(self, input_shape):
        self.candidate_features = self.add_weight(shape=(self.candidates, self.width), initializer="zeros",
                                                  trainable=False, name="candidate_features")
        self.candidate_targets = self.add_weight(shape=(self.candidates,), initializer="zeros",
                                                 trainable=False, name="candidate_targets")
        embedded = 2 * self.numeric + self.other + self.id_embedding_dim * len(self.vocabularies)
        if self.periodic_dense is not None:
            self.coefficients = self.add_weight(shape=(self.numeric, self.frequencies), name="coefficients",
                                                initializer=keras.initializers.RandomNormal(stddev=self.sigma))
            self.periodic_dense.build((None, self.numeric, 2 * self.frequencies))
            embedded += self.numeric * self.periodic_dim
        for embedding in self.id_embeddings:
            embedding.build((None,))
        self.projection.build((None, embedded))
        for norm, dense, _, out in self.residual:
            norm.build((None, self.units))
            dense.build((None, self.units))
            out.build((None, self.units))

    def set_candidates(self, features: np.ndarray, targets: np.ndarray) -> None:
        """Stores the training rows: `features` (candidates, width) as the layer's input encodes
        them, `targets` (candidates,) standardised. Raises ValueError on other shapes."""
        features, targets = np.asarray(features, np.float32), np.asarray(targets, np.float32).ravel()
        if features.shape != (self.candidates, self.width) or targets.shape != (self.candidates,):
            raise ValueError(f"candidates of shape {features.shape} and {targets.shape}; the layer holds "
                             f"({self.candidates}, {self.width}) and ({self.candidates},)")
        self.candidate_features.assign(features)
        self.candidate_targets.assign(targets)

    def embed(self, x, training=None):
        """phi: (rows, width) fixed encodings -> (rows, units) embeddings."""
        parts, n = [], self.numeric
        if n:
            pairs = ops.reshape(x[:, :2 * n], (-1, n, 2))
            values = pairs[..., 0]
            if self.periodic_dense is not None:
                waves = self.periodic_dense(periodic_waves(values[:, :, None], self.coefficients[None]))
                parts.append(ops.reshape(waves, (-1, n * self.periodic_dim)))
        parts.append(x[:, :2 * n + self.other])
        ids = ops.cast(x[:, 2 * n + self.other:], "int32")
        parts += [embedding(ids[:, j]) for j, embedding in enumerate(self.id_embeddings)]
        h = self.projection(ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0])
        for norm, dense, dropout, out in self.residual:
            h = h + out(dropout(dense(norm(h, training=training)), training=training))
        return h

    def call(self, inputs, training=None):
        x = ops.cast(inputs, "float32")
        features, targets = self.candidate_features, self.candidate_targets
        if training:  # stochastic neighbourhood sampling
            chosen = keras.random.shuffle(ops.arange(self.candidates), seed=self.seed_generator)[:self.sampled]
            features, targets = ops.take(features, chosen, axis=0), ops.take(targets, chosen, axis=0)
        query, keys = self.embed(x, training), self.embed(features, training)
        squared = (ops.sum(query * query, axis=-1, keepdims=True) + ops.sum(keys * keys, axis=-1)[None]
                   - 2.0 * ops.matmul(query, ops.transpose(keys)))
        logits = -ops.sqrt(ops.maximum(squared, 0.0) + 1e-8) / self.temperature
        if training:  # a row is not its own neighbour
            same = ops.all(ops.abs(x[:, None, :] - features[None]) < 1e-6, axis=-1)
            logits = ops.where(same, -1e9, logits)
        return ops.matmul(ops.softmax(logits, axis=-1), targets[:, None])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "candidates": self.candidates, "numeric": self.numeric,
                "other": self.other, "vocabularies": self.vocabularies, "units": self.units,
                "blocks": self.blocks, "dropout": self.dropout, "frequencies": self.frequencies,
                "sigma": self.sigma, "periodic_dim": self.periodic_dim, "id_embedding_dim": self.id_embedding_dim,
                "sample_rate": self.sample_rate, "temperature": self.temperature, "seed": self.seed}


def check_settings(sample_rate: float, temperature: float) -> None:
    """UserError unless 0 < sample_rate <= 1 and temperature > 0."""
    if not 0 < sample_rate <= 1:
        raise UserError(f"sample_rate={sample_rate}: give the share of training rows each step compares "
                        "with, in (0, 1] (e.g. --set sample_rate=0.3)")
    if temperature <= 0:
        raise UserError(f"temperature={temperature}: give a positive softmax temperature (e.g. 1.0)")
