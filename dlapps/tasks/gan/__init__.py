"""DCGAN on 28x28 digits: a keras.Model with its own train_step, judged by a digit classifier."""

from dlapps.task import Task
from dlapps.tasks.gan.data import Config, load_data
from dlapps.tasks.gan.model import build_model, callbacks, evaluate, make_plots, predict

TASK = Task(
    name="gan",
    summary="DCGAN that draws handwritten digits (custom train_step, classifier FID)",
    Config=Config,
    load_data=load_data,
    build_model=build_model,
    evaluate=evaluate,
    predict=predict,
    make_plots=make_plots,
    callbacks=callbacks,
    # GAN losses say little about sample quality (evaluate's classifier FID does); this only picks
    # which epoch best.keras keeps.
    objective=("val_g_loss", "min"),
)
