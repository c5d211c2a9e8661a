"""Layers of generative models: the VAE's sampling layer.

- `VAESampling`: the reparameterization trick z = mean + exp(log_var / 2) * eps, which adds the
  KL divergence to N(0, I) as a layer loss (`add_loss`), so `fit()` optimises the whole ELBO.

The GAN training model (a `keras.Model` with its own `train_step`) is not a layer: it lives in
its task, `dlapps/tasks/gan/adversarial.py`.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dlapps")
class VAESampling(keras.layers.Layer):
    """Samples a code z ~ N(mean, exp(log_var)) with the reparameterization trick; adds the KL loss.

    Input: [mean, log_var], each (batch, code_dim). Output: z (batch, code_dim).
    In training z = mean + exp(log_var / 2) * eps with eps ~ N(0, I), so gradients flow through
    mean and log_var; at inference z = mean (deterministic reconstructions and codes).
    The KL divergence KL(N(mean, var) || N(0, I)), averaged over the batch and multiplied by
    `kl_weight`, is added with `add_loss` (in training and evaluation, so val_loss is the same
    objective as loss). Pick `kl_weight` on the scale of the reconstruction loss: for a loss
    averaged over P pixels, kl_weight = beta / P keeps the ELBO's balance (beta = 1: the VAE).
    """

    def __init__(self, kl_weight: float = 1.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.kl_weight = float(kl_weight)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        mean, log_var = inputs
        kl = -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)
        self.add_loss(self.kl_weight * ops.mean(kl))
        if not training:
            return mean
        epsilon = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * epsilon

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "kl_weight": self.kl_weight, "seed": self.seed}
