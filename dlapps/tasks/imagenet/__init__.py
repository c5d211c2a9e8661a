"""keras.applications backbones: ImageNet top-5 inference and transfer learning with fine-tuning."""

from dlapps.task import Task
from dlapps.tasks.imagenet.config import Config
from dlapps.tasks.imagenet.data import load_data
from dlapps.tasks.imagenet.model import (PREDICT_OPTIONS, after_fit, build_model, evaluate, make_plots, phases,
                                         predict, pretrained)

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
    after_fit=after_fit,
    objective=("val_accuracy", "max"),
    predict_options=PREDICT_OPTIONS,
    # top_k: how many classes predict prints (and evaluate's top-k accuracy). backbone, weights and
    # image_size choose the pretrained ImageNet classifier that `dlapps predict imagenet photo.jpg`
    # uses when there is no trained model (e.g. --set backbone=efficientnet_b0 --set weights=PATH).
    inference_keys=("top_k", "backbone", "weights", "image_size"),
    model_notes=("Input: raw uint8 images (N, size, size, channels) of the backbone's input shape "
                 "(info.json's image_shape); the backbone's own preprocessing and the augmentation "
                 "layers are inside the model. Output: class probabilities in the order of info.json's "
                 "class_names. With compare_scratch, the same network trained from random weights on the "
                 "same labels is saved beside the run as scratch_baseline.keras."),
)
