"""Handwritten digit (or Fashion-MNIST) classification with a CNN; raw uint8 images in."""

from dlapps.task import Task
from dlapps.tasks.mnist.data import Config, ImageSplits, load_data, load_images
from dlapps.tasks.mnist.model import (FEATURES_LAYER, build_model, evaluate, feature_extractor, make_plots,
                                      predict)

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
)

__all__ = ["TASK", "Config", "ImageSplits", "load_data", "load_images", "build_model", "feature_extractor",
           "FEATURES_LAYER"]
