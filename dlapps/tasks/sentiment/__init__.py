"""Sentiment classification with an embedding and a (bidirectional) LSTM, from raw text."""

from dlapps.task import Task
from dlapps.tasks.sentiment.config import Config
from dlapps.tasks.sentiment.data import load_data
from dlapps.tasks.sentiment.model import MODEL_NOTES, build_model, evaluate, make_plots, phases, predict

TASK = Task(
    name="sentiment",
    summary="Sentiment of a text with a bidirectional LSTM (tokenization inside the model)",
    Config=Config,
    load_data=load_data,
    build_model=build_model,
    evaluate=evaluate,
    predict=predict,
    make_plots=make_plots,
    phases=phases,
    objective=("val_accuracy", "max"),
    model_notes=MODEL_NOTES,
)
