"""Spam filtering of SMS/e-mail text from raw strings, with a decision threshold tuned for F1."""

from dlapps.task import Task
from dlapps.tasks.spam.config import Config
from dlapps.tasks.spam.data import load_data
from dlapps.tasks.spam.model import MODEL_NOTES, after_fit, build_model, evaluate, make_plots, predict

TASK = Task(
    name="spam",
    summary="Spam filter for SMS/e-mail text (TF-IDF n-grams in the model, F1-tuned threshold)",
    Config=Config,
    load_data=load_data,
    build_model=build_model,
    evaluate=evaluate,
    predict=predict,
    make_plots=make_plots,
    after_fit=after_fit,
    objective=("val_auc", "max"),
    inference_keys=("threshold",),
    model_notes=MODEL_NOTES,
)
