"""Spam filtering of SMS/e-mail text from raw strings, with a decision threshold tuned for F1."""

from dlapps.task import Task
from dlapps.tasks.spam.data import Config, load_data
from dlapps.tasks.spam.model import build_model, callbacks, evaluate, make_plots, predict

TASK = Task(
    name="spam",
    summary="Spam filter for SMS/e-mail text (TF-IDF n-grams in the model, F1-tuned threshold)",
    Config=Config,
    load_data=load_data,
    build_model=build_model,
    evaluate=evaluate,
    predict=predict,
    make_plots=make_plots,
    callbacks=callbacks,
    objective=("val_auc", "max"),
)
