"""Handwritten digit (or Fashion-MNIST) classification with a CNN; raw uint8 images in."""

from dlapps.data.digits import ImageSplits, load_images
from dlapps.task import Task
from dlapps.tasks.mnist.config import Config
from dlapps.tasks.mnist.data import load_data
from dlapps.tasks.mnist.model import (FEATURES_LAYER, PREDICT_OPTIONS, build_model, evaluate, feature_extractor,
                                      make_plots, predict)

TASK = Task(
    name="mnist",
    summary="Digit classification with a CNN (MNIST, Fashion-MNIST, any 28x28 image set)",
    Config=Config,
    load_data=load_data,
    build_model=build_model,
    evaluate=evaluate,
    predict=predict,
    make_plots=make_plots,
    objective=("val_accuracy", "max"),
    predict_options=PREDICT_OPTIONS,
    model_notes=("Input: raw uint8 images (N, 28, 28, 1), light digit on dark background as in MNIST "
                 "(Rescaling is inside the model; any training augmentation runs in the tf.data pipeline, so "
                 "the model holds no random layers). The penultimate layer, named "
                 "'features', is a stable embedding (dlapps.tasks.mnist.feature_extractor)."),
)

__all__ = ["TASK", "Config", "ImageSplits", "load_data", "load_images", "build_model", "feature_extractor",
           "FEATURES_LAYER"]
