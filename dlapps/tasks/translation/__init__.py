"""Translation with an encoder-decoder Transformer: tokenization inside the model, greedy/beam decoding,
BLEU/chrF; Multi30k, TED talks (tfds), TSV/Anki pairs, parallel files, or the embedded number task."""

from dlapps.task import Task
from dlapps.tasks.translation.config import Config
from dlapps.tasks.translation.data import load_data
from dlapps.tasks.translation.inference import evaluate, make_plots, predict, translate
from dlapps.tasks.translation.model import MODEL_NOTES, build_model

TASK = Task(
    name="translation",
    summary="Translation with an encoder-decoder Transformer (greedy/beam search, BLEU)",
    Config=Config,
    load_data=load_data,
    build_model=build_model,
    evaluate=evaluate,
    predict=predict,
    make_plots=make_plots,
    objective=("val_loss", "min"),
    inference_keys=("beam_size", "length_penalty", "decode_batch_size"),
    model_notes=MODEL_NOTES,
)

__all__ = ["TASK", "translate"]
