"""Autoencoders on 28x28 images: reconstruction, denoising, a variational version, anomaly scores."""

from dlapps.task import Task
from dlapps.tasks.autoencoder.data import Config, load_data
from dlapps.tasks.autoencoder.model import build_model, evaluate, make_plots, predict

TASK = Task(
    name="autoencoder",
    summary="(Denoising / variational) autoencoder on digits: reconstruction, code space, anomaly AUC",
    Config=Config,
    load_data=load_data,
    build_model=build_model,
    evaluate=evaluate,
    predict=predict,
    make_plots=make_plots,
    objective=("val_loss", "min"),
)
