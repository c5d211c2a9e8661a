"""Vision layers: a keras.applications backbone's own `preprocess_input`, inside the model."""

from __future__ import annotations

import importlib

import keras


@keras.saving.register_keras_serializable(package="dlapps")
class BackbonePreprocess(keras.layers.Layer):
    """Applies `keras.applications.<module>.preprocess_input` (e.g. module="mobilenet_v2").

    Each backbone was trained on inputs scaled its own way (MobileNet: [-1, 1]; ResNet50: BGR minus
    the ImageNet mean; EfficientNet: raw 0-255, rescaled inside the network). Keeping that function
    in a layer lets the saved model take raw uint8 pixels, and the layer saves by module name.
    """

    def __init__(self, module: str, **kwargs):
        super().__init__(**kwargs)
        self.module = module
        self._preprocess = importlib.import_module(f"keras.applications.{module}").preprocess_input

    def call(self, inputs):
        return self._preprocess(keras.ops.cast(inputs, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "module": self.module}
