"""keras.applications backbones: ImageNet top-5 inference and transfer learning with fine-tuning."""

from dlapps.task import Task
from dlapps.tasks.imagenet.data import Config, load_data
from dlapps.tasks.imagenet.model import (build_model, callbacks, evaluate, make_plots, phases, predict,
                                         pretrained)

TASK = Task(
    name="imagenet",
    summary="Pretrained backbones: ImageNet top-5 inference, transfer learning + fine-tuning on your images",
    Config=Config,
    load_data=load_data,
    build_model=build_model,
    evaluate=evaluate,
    predict=predict,
    make_plots=make_plots,
    phases=phases,
    pretrained=pretrained,
    callbacks=callbacks,
    objective=("val_accuracy", "max"),
)
