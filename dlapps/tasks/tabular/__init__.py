"""Tabular regression on any CSV: preprocessing inside the model, an MLP, RMSE/MAE/R^2."""

from dlapps.task import Task
from dlapps.tasks.tabular.config import Config
from dlapps.tasks.tabular.data import load_data
from dlapps.tasks.tabular.model import MODEL_NOTES, before_fit, build_model, evaluate, make_plots, predict

TASK = Task(
    name="tabular",
    summary="Regression on any CSV with an MLP or ModernNCA (preprocessing inside the model)",
    Config=Config,
    load_data=load_data,
    build_model=build_model,
    evaluate=evaluate,
    predict=predict,
    make_plots=make_plots,
    before_fit=before_fit,
    objective=("val_rmse", "min"),
    model_notes=MODEL_NOTES,
)
