"""Autoencoders on 28x28 images: reconstruction, denoising, a variational version, anomaly scores."""

from dlapps.task import Task
from dlapps.tasks.autoencoder.config import Config
from dlapps.tasks.autoencoder.data import load_data
from dlapps.tasks.autoencoder.model import PREDICT_OPTIONS, build_model, evaluate, make_plots, predict

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
    predict_options=PREDICT_OPTIONS,
    # A denoiser can be scored at other noise levels than it was trained at.
    inference_keys=("noise",),
    model_notes=("The saved model takes raw pixels 0..255 (28, 28, 1) and returns the reconstruction "
                 "in [0, 1]; its sub-models `encoder` and `decoder` (model.get_layer) map images to "
                 "codes and codes to images."),
)
