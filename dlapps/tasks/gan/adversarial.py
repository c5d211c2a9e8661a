"""The GAN training model: a `keras.Model` holding a generator and a discriminator, with its own
`train_step` (one discriminator update, then one generator update per batch), so that `fit()` and
everything around it (callbacks, BackupAndRestore, tf.distribute strategies) work unchanged; and
DiffAugment, the differentiable augmentation its discriminator may see images through.

Pattern: keras-io's "DCGAN overriding Model.train_step". The class is registered with Keras as
"dlapps>GAN" (the name saved `.keras` files carry); `dlapps.runs.load_model` imports the task named in
a run's config.json, which imports this module, so a saved GAN loads in a fresh process.
"""

from __future__ import annotations

import keras
from keras import ops


AUGMENTATIONS = ("translation", "cutout")


def diff_augment(images, policy: tuple[str, ...], seed_generator, max_shift: float = 0.125,
                 cutout: float = 0.5):
    """Differentiable augmentation (Zhao et al. 2020, "DiffAugment") of images in [-1, 1].

    Applied to real AND generated images every time the discriminator sees them, in both
    networks' steps, so gradients flow through it to the generator, while the generator is not
    pushed to draw augmented digits. On small data it keeps the discriminator from memorising the
    real set. `translation`: shift each image by up to `max_shift` of its size (new borders are
    background, -1); `cutout`: blank one random square of `cutout` times the side per image.
    """
    if not policy:
        return images
    batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
    x = images + 1.0  # background 0, so shifted-in borders and blanked squares are background
    if "translation" in policy:
        def shift_matrix(size):  # (batch, size, size): row r picks input row r + shift (or nothing)
            limit = max(1, int(round(size * max_shift)))
            shift = keras.random.randint((batch, 1, 1), -limit, limit + 1, seed=seed_generator)
            rows, cols = ops.arange(size)[None, :, None], ops.arange(size)[None, None, :]
            return ops.cast(ops.equal(cols, rows + shift), x.dtype)

        x = ops.einsum("brj,bjkc,bwk->brwc", shift_matrix(height), x, shift_matrix(width))
    if "cutout" in policy:
        def inside(size):  # (batch, size): positions within the square's span along one axis
            centre = keras.random.randint((batch, 1), 0, size, seed=seed_generator)
            return ops.abs(ops.arange(size)[None, :] - centre) < max(1, int(size * cutout / 2))

        square = ops.logical_and(inside(height)[:, :, None], inside(width)[:, None, :])
        x = x * ops.cast(ops.logical_not(square), x.dtype)[..., None]
    return x - 1.0


@keras.saving.register_keras_serializable(package="dlapps")
class GAN(keras.Model):
    """A generator and a discriminator trained adversarially by `fit()` (DCGAN-style).

    `generator`: latent (batch, latent_dim) -> images in [-1, 1] (tanh).
    `discriminator`: images in [-1, 1] -> one logit per image (real > 0, fake < 0).
    The data are raw uint8 images (0..255); `call(images)` rescales them to [-1, 1] and returns
    the discriminator's logits, so the model itself is a real-vs-fake scorer, while
    `model.generator` is the inference model that draws digits.

    Each `train_step` makes one discriminator update (real images labelled `1 - label_smoothing`,
    generated ones 0, optionally both blurred by Gaussian `instance_noise`), then one generator
    update (the non-saturating loss: make the discriminator call fakes real).

    Stabilisers, all off by default: `augment` (DiffAugment policies, see `diff_augment`), and
    `ema`: the momentum of an exponential moving average of the generator's weights, kept in
    `generator_ema` and updated after every generator step. Averaging smooths the oscillation of
    adversarial training (Yazici et al. 2019); `sampler` is the generator to draw with (the
    average when there is one).

    With `num_classes` > 0 the GAN is class-conditional (Mirza & Osindero 2014): the generator
    takes [latent, label], the discriminator [image, label], real images come with their labels
    and generated ones with labels drawn uniformly, so the discriminator also judges whether an
    image matches its label. The data are then (images, labels) and `call` takes [images, labels].
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, latent_dim: int,
                 label_smoothing: float = 0.0, instance_noise: float = 0.0, seed: int | None = None,
                 augment=(), ema: float = 0.0, num_classes: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.label_smoothing = float(label_smoothing)
        self.instance_noise = float(instance_noise)
        self.augment = tuple(augment)
        unknown = sorted(set(self.augment) - set(AUGMENTATIONS))
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; choose from {list(AUGMENTATIONS)}")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema={ema}: the moving-average momentum must be in [0, 1) (0: off)")
        self.ema = float(ema)
        self.num_classes = int(num_classes)
        self.generator_ema = None
        if self.ema > 0:  # same architecture; starts as a copy of the generator
            self.generator_ema = keras.models.clone_model(generator)
            self.generator_ema.name = "generator_ema"
            self.generator_ema.set_weights(generator.get_weights())
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.real_accuracy_tracker = keras.metrics.Mean(name="d_real_accuracy")
        self.fake_accuracy_tracker = keras.metrics.Mean(name="d_fake_accuracy")
        self.d_optimizer = None
        self.g_optimizer = None
        self.built = True  # both networks are already-built functional models


    # ------------------------------------------------------------------ keras plumbing
    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """Two optimizers: one for each network (and nothing else: the losses are fixed)."""
        self.d_optimizer = keras.optimizers.get(d_optimizer or "adam")
        self.g_optimizer = keras.optimizers.get(g_optimizer or "adam")
        # Each optimizer gets slots for its own network's variables only, now: otherwise fit()
        # would build `optimizer` over all trainable variables, and saved optimizer states would
        # not match the ones a loaded (or resumed) model builds.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)
        # `optimizer` is what Keras' own machinery (loss scaling, saving) looks at.
        super().compile(optimizer=self.g_optimizer, **kwargs)

    def get_compile_config(self):
        return {"d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
                "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer)}

    def compile_from_config(self, config):
        self.compile(d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
                     g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]))

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.real_accuracy_tracker,
                self.fake_accuracy_tracker]

    def get_config(self):
        return {**super().get_config(),
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "latent_dim": self.latent_dim, "label_smoothing": self.label_smoothing,
                "instance_noise": self.instance_noise, "seed": self.seed,
                "augment": list(self.augment), "ema": self.ema, "num_classes": self.num_classes}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        generator = keras.saving.deserialize_keras_object(config.pop("generator"))
        discriminator = keras.saving.deserialize_keras_object(config.pop("discriminator"))
        return cls(generator, discriminator, **config)

    # ------------------------------------------------------------------ the model
    @staticmethod
    def to_unit_range(images):
        """uint8-scale pixels 0..255 -> [-1, 1], the range of the generator's tanh."""
        return ops.cast(images, "float32") / 127.5 - 1.0

    @staticmethod
    def to_pixels(images):
        """Generator outputs in [-1, 1] -> pixels 0..255 (float)."""
        return ops.clip((ops.cast(images, "float32") + 1.0) * 127.5, 0.0, 255.0)

    def call(self, inputs, training=False):
        """The discriminator's logit for raw uint8-scale images ([images, labels] when conditional).

        > 0 means 'looks real'.
        """
        if self.num_classes:
            images, labels = inputs
            return self.discriminator([self.to_unit_range(images), labels], training=training)
        return self.discriminator(self.to_unit_range(inputs), training=training)

    def _generate(self, latent, labels, training):
        return self.generator([latent, labels] if self.num_classes else latent, training=training)

    def _judge(self, images, labels, training):
        return self.discriminator([images, labels] if self.num_classes else images, training=training)

    def sample_labels(self, batch_size):
        """Labels for generated images: uniform over the classes (None when unconditional)."""
        if not self.num_classes:
            return None
        return keras.random.randint((batch_size,), 0, self.num_classes, seed=self.seed_generator)

    @property
    def sampler(self) -> keras.Model:
        """The generator to draw samples with: the weight average when `ema` > 0, else the generator."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def _augmented(self, images):
        return diff_augment(images, self.augment, self.seed_generator)

    def sample_latent(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def _noisy(self, images):
        if self.instance_noise <= 0:
            return images
        return images + self.instance_noise * keras.random.normal(ops.shape(images), seed=self.seed_generator)

    @staticmethod
    def _global_sum(value):
        """`value` summed over the replicas of a tf.distribute strategy (itself without one)."""
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        return context.all_reduce("sum", value) if context is not None else value

    def _mean_bce(self, target: float, logits, weights=None):
        """This replica's share of the global batch's mean binary cross-entropy on logits.

        Losses are summed on each replica and divided by the *global* (weighted) number of
        examples, so the replicas' gradients, which the optimizer sums, add up to the gradient of
        the global mean, also when the last batch leaves some replicas fewer examples.
        """
        if weights is None:
            weights = ops.ones((ops.shape(logits)[0],), "float32")
        losses = ops.binary_crossentropy(ops.full_like(logits, target), logits, from_logits=True)
        count = ops.maximum(self._global_sum(ops.sum(weights)), 1.0)
        return ops.sum(ops.reshape(losses, (-1,)) * weights) / count

    def _discriminator_loss(self, real_logits, fake_logits, real_weights=None):
        """Real images should score 1 - label_smoothing, generated ones 0 (this replica's share)."""
        return (self._mean_bce(1.0 - self.label_smoothing, real_logits, real_weights)
                + self._mean_bce(0.0, fake_logits))

    def _generator_loss(self, fake_logits):
        """The non-saturating generator loss: generated images should score 1 (this replica's share)."""
        return self._mean_bce(1.0, fake_logits)

    def _real_batch(self, data):
        """(real images in [-1, 1], weights, labels): this replica's batch plus one zero-weight blank image.

        Under a tf.distribute strategy the last, partial batch can leave a replica with no
        images at all, and TensorFlow's graph optimizer breaks on empty batches in this
        two-network step; the blank image keeps every batch non-empty and counts for nothing.
        """
        images = data[0] if isinstance(data, (tuple, list)) else data
        real = self.to_unit_range(images)
        blank = ops.zeros((1, *real.shape[1:]), "float32")
        weights = ops.concatenate([ops.ones((ops.shape(real)[0],), "float32"), ops.zeros((1,), "float32")])
        labels = None
        if self.num_classes:
            if not isinstance(data, (tuple, list)) or len(data) < 2:
                raise ValueError("a conditional GAN trains on (images, labels)")
            labels = ops.concatenate([ops.reshape(ops.cast(data[1], "int32"), (-1,)), ops.zeros((1,), "int32")])
        return ops.concatenate([real, blank], axis=0), weights, labels

    def discriminator_step(self, real, real_weights=None, real_labels=None):
        """One discriminator update on real images (in [-1, 1]) and as many generated ones.

        Returns the discriminator loss of the whole (global) batch, and this replica's logits.
        """
        import tensorflow as tf

        batch_size = ops.shape(real)[0]
        fake_labels = self.sample_labels(batch_size)
        fake = self._generate(self.sample_latent(batch_size), fake_labels, training=True)
        with tf.GradientTape() as tape:
            real_logits = self._judge(self._noisy(self._augmented(real)), real_labels, training=True)
            fake_logits = self._judge(self._noisy(self._augmented(fake)), fake_labels, training=True)
            d_loss = self._discriminator_loss(real_logits, fake_logits, real_weights)
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, weights), weights))
        return self._global_sum(d_loss), real_logits, fake_logits

    def generator_step(self, batch_size):
        """One generator update: make the discriminator call a fresh batch of fakes real.

        Returns the generator loss of the whole (global) batch.
        """
        import tensorflow as tf

        latent, labels = self.sample_latent(batch_size), self.sample_labels(batch_size)
        with tf.GradientTape() as tape:
            fake = self._augmented(self._generate(latent, labels, training=True))
            fake_logits = self._judge(fake, labels, training=True)
            g_loss = self._generator_loss(fake_logits)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, weights), weights))
        if self.generator_ema is not None:
            self._update_average()
        return self._global_sum(g_loss)

    def _update_average(self):
        """generator_ema <- m * generator_ema + (1 - m) * generator, on every replica's copy.

        m ramps up as min(ema, (1 + t) / (10 + t)), t the number of generator updates so far, so
        the average follows the fast early changes instead of remembering the initialisation.
        Like Keras' optimizers, the update runs in cross-replica context (`merge_call`), where
        every replica's copy of a mirrored variable can be assigned.
        """
        import tensorflow as tf

        step = ops.cast(self.g_optimizer.iterations, "float32")
        momentum = ops.minimum(self.ema, (1.0 + step) / (10.0 + step))
        pairs = [(average.value, weight.value)
                 for average, weight in zip(self.generator_ema.weights, self.generator.weights)]

        def update(distribution):
            for average, weight in pairs:
                distribution.extended.update(
                    average, lambda a, w: a.assign(momentum * a + (1.0 - momentum) * ops.cast(w, a.dtype)),
                    args=(weight,), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(update, tf.distribute.get_strategy())

    def _update_metrics(self, d_loss, g_loss, real_logits, fake_logits, real_weights):
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.real_accuracy_tracker.update_state(ops.cast(ops.reshape(real_logits, (-1,)) > 0, "float32"),
                                                sample_weight=real_weights)
        self.fake_accuracy_tracker.update_state(ops.cast(fake_logits < 0, "float32"))
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        real, weights, labels = self._real_batch(data)
        d_loss, real_logits, fake_logits = self.discriminator_step(real, weights, labels)
        g_loss = self.generator_step(ops.shape(real)[0])
        return self._update_metrics(d_loss, g_loss, real_logits, fake_logits, weights)

    def test_step(self, data):
        """Both losses on held-out real images and fresh fakes, without updating anything."""
        real, weights, labels = self._real_batch(data)
        fake_labels = self.sample_labels(ops.shape(real)[0])
        fake = self._generate(self.sample_latent(ops.shape(real)[0]), fake_labels, training=False)
        real_logits = self._judge(real, labels, training=False)
        fake_logits = self._judge(fake, fake_labels, training=False)
        d_loss = self._global_sum(self._discriminator_loss(real_logits, fake_logits, weights))
        g_loss = self._global_sum(self._generator_loss(fake_logits))
        return self._update_metrics(d_loss, g_loss, real_logits, fake_logits, weights)
