"""Why did the model say that? Attributions for images, texts and table rows.

Methods (each a plain function of a Keras model and NumPy inputs; `explain` runs them for the CLI):

- `grad_cam` (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
  Gradient-based Localization"): the feature maps A^k of the last convolutional block, weighted by
  the spatial mean of d(class logit)/dA^k, summed, ReLU'd, upsampled to the image. The block is
  found by `last_conv_layer`, inside a nested backbone too, so any keras.applications network
  (with or without its ImageNet top) and the project's transfer models work.
- `saliency` (Simonyan et al. 2014, "Deep Inside Convolutional Networks"): |d(class logit)/d pixel|,
  the maximum over colour channels.
- `integrated_gradients` (Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks"):
  (e - e') * mean over alpha of dF(e' + alpha (e - e'))/de on the token embeddings e of a text,
  with the all-zero embedding e' as baseline; summed over the embedding axis it gives one score per
  token, and the scores add up to F(text) - F(baseline) (completeness; the midpoint rule with
  `steps` points leaves a small gap, reported as `gap`).
- `text_occlusion` (Zeiler & Fergus 2014's occlusion, for words): p(text) - p(text without word i),
  for models without an embedding layer (the TF-IDF spam model).
- `permutation_importance` (Breiman 2001, "Random Forests"): the rise in RMSE when one column of a
  labelled table is shuffled, mean and standard deviation over repeats.
- `row_occlusion`: prediction(row) - prediction(row with one column set to its training mean, or
  to "missing" for a string column).

Every method runs the model eagerly. Inner tensors are read with a temporary wrapper around one
layer's `call` (`_tap`), so no sub-model has to be cut out of a graph that nests another model.
"""

from __future__ import annotations

import contextlib
import html
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dlapps.errors import UserError

IMAGE_METHODS = ("gradcam", "saliency")
TEXT_METHODS = ("ig", "occlusion")
TABLE_METHODS = ("occlusion", "permutation")
METHODS = {"mnist": IMAGE_METHODS, "imagenet": IMAGE_METHODS, "sentiment": TEXT_METHODS,
           "spam": TEXT_METHODS, "tabular": TABLE_METHODS}
"""Task -> the methods `dlapps explain` offers for it (the first is not always the default: see `explain`)."""


# ----------------------------------------------------------------------------- layer taps
@contextlib.contextmanager
def _tap(layer, transform: Callable | None = None, replace_input=None):
    """Temporarily wrap `layer.call`: record its inputs and outputs, optionally change them.

    Yields a dict with lists "inputs" (first positional argument) and "outputs". `transform(out)`
    replaces the output; `replace_input` replaces the first positional argument (e.g. a float copy
    of a uint8 image, so that gradients reach the pixels). Eager execution only.
    """
    record: dict[str, list] = {"inputs": [], "outputs": []}
    original = layer.call

    def call(inputs, *args, **kwargs):
        record["inputs"].append(inputs)
        if replace_input is not None:
            inputs = replace_input
        out = original(inputs, *args, **kwargs)
        if transform is not None:
            out = transform(out)
        record["outputs"].append(out)
        return out

    layer.call = call
    try:
        yield record
    finally:
        del layer.call  # back to the class's method


@contextlib.contextmanager
def _logits(model):
    """Temporarily turn the last softmax/sigmoid layer of `model` into a linear one (keras-io's Grad-CAM).

    Gradients of a saturated probability vanish (p = 1.0 in float32 has zero slope); the logit's do not.
    """
    import keras

    layer = next((layer for layer in reversed(_all_layers(model))
                  if getattr(layer, "activation", None) in (keras.activations.softmax, keras.activations.sigmoid)),
                 None)
    if layer is None:
        yield
        return
    saved = layer.activation
    layer.activation = keras.activations.linear
    try:
        yield
    finally:
        layer.activation = saved


def _all_layers(model) -> list:
    """Every layer of `model` in order, nested models' layers in place of the nested model."""
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            out.extend(_all_layers(layer))
        out.append(layer)
    return out


def _output_rank(layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError, RuntimeError):  # not called, or called on several inputs
        return None


def last_conv_layer(model):
    """The layer whose output is the last convolutional block's feature maps, (batch, h, w, channels).

    The last layer (inside nested backbones too) with a rank-4 output that is not pooling, dropout,
    padding or a random augmentation: e.g. `out_relu` of MobileNetV2, `conv5_block3_out` of ResNet50,
    `top_activation` of EfficientNet, `block1_relu1` of the mnist CNN. Raises UserError when the
    model has no such layer.
    """
    skip = ("Pooling", "Dropout", "ZeroPadding", "Random", "Rescaling", "Normalization", "InputLayer",
            "Preprocess", "Cropping", "Resizing")
    candidates = [layer for layer in _all_layers(model) if not (hasattr(layer, "layers") and layer.layers)
                  and _output_rank(layer) == 4 and not any(s in type(layer).__name__ for s in skip)]
    if not candidates:
        raise UserError(f"model {model.name} has no convolutional feature maps for Grad-CAM; try --method saliency")
    return candidates[-1]


def _input_consumers(model) -> list:
    """The layers that read `model`'s (single) input tensor directly."""
    source = model.inputs[0]
    out = []
    for layer in model.layers:
        for node in getattr(layer, "_inbound_nodes", []):
            if any(t is source for t in getattr(node, "input_tensors", [])):
                out.append(layer)
                break
    return out


def _differentiable_input(model, images: np.ndarray, tape):
    """(call context, float tensor watched by `tape`) so that d output / d pixels exists.

    A model whose input is uint8 casts what it gets (no gradient passes a cast to an integer), so
    the layers that read the input are handed the float copy instead.
    """
    import tensorflow as tf

    pixels = tf.convert_to_tensor(np.asarray(images, np.float32))
    tape.watch(pixels)
    if model.inputs[0].dtype.startswith("float"):
        return contextlib.nullcontext(), pixels, pixels
    stack = contextlib.ExitStack()
    consumers = _input_consumers(model)
    if not consumers:
        raise UserError(f"cannot find the layers reading the input of {model.name}")
    for layer in consumers:
        stack.enter_context(_tap(layer, replace_input=pixels))
    return stack, pixels, tf.convert_to_tensor(np.asarray(images).astype(model.inputs[0].dtype))


# ----------------------------------------------------------------------------- images
def grad_cam(model, images: np.ndarray, class_index: Sequence[int] | None = None,
             layer=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grad-CAM heatmaps (Selvaraju et al. 2017).

    images: (n, H, W, C) in the model's input dtype (uint8 for dlapps' image models, float for a
    keras.applications classifier after its `preprocess_input`). class_index: the class explained per
    image (default: the predicted one). layer: the feature-map layer (default `last_conv_layer`).
    Returns (heatmaps (n, H, W) float32 in [0, 1] (each divided by its maximum; all zero when no
    pixel speaks for the class), classes (n,) int, probabilities (n, classes) float32).
    """
    import tensorflow as tf

    layer = layer or last_conv_layer(model)
    probabilities = np.asarray(model(np.asarray(images), training=False))
    classes = probabilities.argmax(axis=1) if class_index is None else np.asarray(class_index)
    with tf.GradientTape() as tape:
        with _tap(layer, transform=lambda out: _watched(tape, out)) as record, _logits(model):
            logits = model(np.asarray(images), training=False)
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    maps = record["outputs"][-1]
    grads = tape.gradient(score, maps)
    if grads is None:
        raise UserError(f"no gradient reaches layer {layer.name}")
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)           # (n, 1, 1, channels)
    cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))[..., None]    # (n, h, w, 1)
    cam = tf.image.resize(cam, np.asarray(images).shape[1:3], method="bilinear")[..., 0].numpy()
    return _unit_max(cam), classes.astype(int), probabilities.astype(np.float32)


def _watched(tape, tensor):
    tape.watch(tensor)
    return tensor


def saliency(model, images: np.ndarray, class_index: Sequence[int] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vanilla gradient saliency (Simonyan et al. 2014): max over channels of |d logit_c / d pixel|.

    Same arguments and returns as `grad_cam` (maps divided by their maximum per image).
    """
    import tensorflow as tf

    probabilities = np.asarray(model(np.asarray(images), training=False))
    classes = probabilities.argmax(axis=1) if class_index is None else np.asarray(class_index)
    with tf.GradientTape() as tape:
        context, pixels, model_input = _differentiable_input(model, images, tape)
        with context, _logits(model):
            logits = model(model_input, training=False)
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    grads = tape.gradient(score, pixels)
    if grads is None:
        raise UserError(f"no gradient reaches the input of {model.name}")
    return _unit_max(np.abs(grads.numpy()).max(axis=-1)), classes.astype(int), probabilities.astype(np.float32)


def _unit_max(maps: np.ndarray) -> np.ndarray:
    top = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, *([1] * (maps.ndim - 1)))
    return np.where(top > 0, maps / np.where(top > 0, top, 1), 0).astype(np.float32)


def overlay_figure(image: np.ndarray, heatmap: np.ndarray, title: str, path: Path) -> Path:
    """A PNG of the image and the image with `heatmap` (H, W in [0, 1]) laid over it in 'jet'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlapps import plots

    shown = image[..., 0] if image.shape[-1] == 1 else image
    cmap = "gray" if image.shape[-1] == 1 else None
    fig, axes = plt.subplots(1, 2, figsize=(5.6, 3.0))
    axes[0].imshow(shown, cmap=cmap)
    axes[0].set_title("input", fontsize=9)
    axes[1].imshow(shown, cmap=cmap)
    axes[1].imshow(heatmap, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes[1].set_title(title, fontsize=9)
    for ax in axes:
        ax.axis("off")
    return plots.save_figure(fig, path)


# ----------------------------------------------------------------------------- texts
@dataclass
class TokenScores:
    """Attribution of one text: `tokens[i]` got `scores[i]` (units of the model's output probability)."""

    text: str
    tokens: list[str]
    scores: np.ndarray
    probability: float
    baseline_probability: float | None = None
    gap: float | None = None
    """integrated gradients only: sum(scores) - (probability - baseline_probability)."""

    def line(self) -> str:
        """`p=0.97 | WINNER[+0.41] claim[+0.20] ...`."""
        words = " ".join(f"{token}[{score:+.3f}]" for token, score in zip(self.tokens, self.scores))
        return f"p={self.probability:.3f} | {words}"


def _layer_of_type(model, type_name: str):
    return next((layer for layer in _all_layers(model) if type(layer).__name__ == type_name), None)


def _vocabulary_for(model, embedding) -> list[str]:
    vectorizer = next((layer for layer in _all_layers(model) if type(layer).__name__ == "TextVectorization"
                       and getattr(layer, "_output_mode", getattr(layer, "output_mode", "int")) == "int"), None)
    if vectorizer is None:
        return [str(i) for i in range(embedding.input_dim)]
    return [str(word) for word in vectorizer.get_vocabulary()]


def integrated_gradients(model, texts: Sequence[str], steps: int = 32) -> list[TokenScores]:
    """Integrated gradients of a text model's output over its token embeddings (Sundararajan et al. 2017).

    model: raw strings (n,) -> probability (n,) or (n, 1), with one `Embedding` layer (mask_zero
    or not). Baseline: the all-zero embedding at every position. steps: midpoint-rule points on the
    straight path. Returns one `TokenScores` per text; tokens are the model's own (vocabulary
    words after its standardization, `[UNK]` for unknown ones, padding dropped).
    Raises UserError for a model without an Embedding layer (use `text_occlusion`).
    """
    import tensorflow as tf

    embedding = _layer_of_type(model, "Embedding")
    if embedding is None:
        raise UserError(f"model {model.name} has no token embedding; use --method occlusion")
    vocabulary = _vocabulary_for(model, embedding)
    alphas = np.concatenate([(np.arange(steps) + 0.5) / steps, [0.0, 1.0]]).astype(np.float32)
    out = []
    for text in texts:
        batch = tf.constant([text] * len(alphas))
        with tf.GradientTape() as tape:
            def scale(vectors):
                scaled = vectors * tf.reshape(tf.constant(alphas, vectors.dtype), (-1, 1, 1))
                tape.watch(scaled)
                return scaled

            with _tap(embedding, transform=scale) as record:
                probability = tf.reshape(model(batch, training=False), (len(alphas),))
            total = tf.reduce_sum(probability)
        scaled = record["outputs"][-1]
        grads = tape.gradient(total, scaled).numpy()[:steps]            # (steps, T, D)
        full = (scaled[-1].numpy())                                       # alpha = 1: the embeddings e
        scores = (full * grads.mean(axis=0)).sum(axis=-1)                 # (T,)
        ids = np.asarray(record["inputs"][-1])[-1]
        keep = ids != 0
        tokens = [vocabulary[i] if i < len(vocabulary) else str(i) for i in ids[keep]]
        p, p0 = float(probability[-1]), float(probability[-2])
        scores = scores[keep].astype(np.float64)
        out.append(TokenScores(text, tokens, scores, p, p0, float(scores.sum() - (p - p0))))
    return out


def text_occlusion(predict: Callable[[list[str]], np.ndarray], texts: Sequence[str],
                   score: Callable[[list[str]], np.ndarray] | None = None) -> list[TokenScores]:
    """Per-word occlusion: score(text) - score(text with word i removed), words split on white space.

    predict: raw strings -> probabilities (n,); score: raw strings -> the quantity compared (default
    `predict`; `explain` passes the logit, since removing one word from a text scored p = 1.000
    changes the probability by less than float32 shows). Works for any text model (e.g. TF-IDF n-grams).
    """
    score = score or predict
    out = []
    for text in texts:
        words = text.split()
        variants = [text] + [" ".join(words[:i] + words[i + 1:]) for i in range(len(words))]
        values = np.asarray(score(variants), np.float64).ravel()
        p = float(np.asarray(predict([text])).ravel()[0])
        out.append(TokenScores(text, words, values[0] - values[1:], p))
    return out


def text_html(results: Sequence[TokenScores], title: str, path: Path) -> Path:
    """An HTML page: each token shaded by its score (red raises the output, blue lowers it)."""
    rows = []
    for result in results:
        scale = max(float(np.abs(result.scores).max()) if len(result.scores) else 0.0, 1e-12)
        spans = []
        for token, score in zip(result.tokens, result.scores):
            alpha = min(1.0, abs(score) / scale)
            color = f"rgba(220,40,40,{alpha:.2f})" if score > 0 else f"rgba(40,90,220,{alpha:.2f})"
            spans.append(f'<span style="background:{color};padding:1px 3px;margin:1px;border-radius:3px" '
                         f'title="{score:+.4f}">{html.escape(token)}</span>')
        rows.append(f"<p><b>p={result.probability:.3f}</b> {' '.join(spans)}</p>")
    page = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<h3>{html.escape(title)}</h3>{''.join(rows)}"
            "<p style='color:grey'>red: raises the output, blue: lowers it; hover for the score</p>\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def text_figure(results: Sequence[TokenScores], title: str, path: Path) -> Path:
    """A PNG: per text, one horizontal bar per token in reading order (red up, blue down)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlapps import plots

    heights = [max(1.5, 0.28 * len(r.tokens) + 0.8) for r in results]
    fig, axes = plt.subplots(len(results), 1, figsize=(6.0, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, result in zip(axes[:, 0], results):
        y = np.arange(len(result.tokens))
        ax.barh(y, result.scores, color=["tab:red" if s > 0 else "tab:blue" for s in result.scores])
        ax.set_yticks(y, result.tokens, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(f"p={result.probability:.3f}", fontsize=9)
        ax.set_xlabel("contribution to the output", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return plots.save_figure(fig, path)


# ----------------------------------------------------------------------------- tables
def permutation_importance(predict: Callable[[dict], np.ndarray], columns: dict[str, np.ndarray],
                           y_true: np.ndarray, repeats: int = 5, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Rise in RMSE when each column is shuffled (Breiman 2001), as (mean, std) over `repeats` shuffles.

    predict: columns (name -> (n, 1) array) -> predictions (n,). y_true: (n,) in the target's units.
    """
    rng = np.random.default_rng(seed)
    y_true = np.asarray(y_true, np.float64).ravel()

    def rmse(cols) -> float:
        return float(np.sqrt(np.mean((np.asarray(predict(cols), np.float64).ravel() - y_true) ** 2)))

    base = rmse(columns)
    out = {}
    for name in columns:
        rises = []
        for _ in range(repeats):
            shuffled = dict(columns)
            shuffled[name] = columns[name][rng.permutation(len(y_true))]
            rises.append(rmse(shuffled) - base)
        out[name] = (float(np.mean(rises)), float(np.std(rises)))
    return out


def row_occlusion(predict: Callable[[dict], np.ndarray], row: dict[str, np.ndarray],
                  baselines: dict[str, object]) -> tuple[float, dict[str, float]]:
    """(prediction of the row, column -> prediction(row) - prediction(row with that column = its baseline)).

    row: name -> (1, 1) array; baselines: name -> the value standing for "typical" or "unknown".
    """
    names = list(row)
    batch = {name: np.concatenate([row[name]] * (len(names) + 1)) for name in names}
    for i, name in enumerate(names, start=1):
        batch[name] = batch[name].copy()
        batch[name][i, 0] = baselines[name]
    predictions = np.asarray(predict(batch), np.float64).ravel()
    return float(predictions[0]), {name: float(predictions[0] - predictions[i]) for i, name in enumerate(names, 1)}


def bar_figure(values: dict[str, float], errors: dict[str, float] | None, title: str, xlabel: str,
               path: Path) -> Path:
    """A horizontal bar chart of `values` (largest magnitude on top), with optional error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlapps import plots

    names = sorted(values, key=lambda k: abs(values[k]))
    fig, ax = plt.subplots(figsize=(6.0, 0.35 * len(names) + 1.4))
    ax.barh(names, [values[n] for n in names], xerr=[errors[n] for n in names] if errors else None,
            color=["tab:red" if values[n] > 0 else "tab:blue" for n in names])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    return plots.save_figure(fig, path)


# ----------------------------------------------------------------------------- the command
def _task_attr(task: str, name: str):
    """A function of a task package, wherever the package keeps it (package, data, model, inference)."""
    for module in ("", ".data", ".model", ".inference", ".predict"):
        try:
            found = getattr(importlib.import_module(f"dlapps.tasks.{task}{module}"), name, None)
        except ImportError:
            continue
        if found is not None:
            return found
    raise AttributeError(f"dlapps.tasks.{task} has no {name}")


def _free(path: Path, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; pass --overwrite to replace it")
    return path


def _image_batch(task: str, inputs: list[str], model, info: dict, cfg):
    """(model input batch, uint8 images to draw on, class names or None, a decoder for ImageNet or None)."""
    for item in inputs:
        if not Path(item).is_file():
            raise UserError(f"image {item} not found; give image files, e.g. dlapps explain {task} digit.png")
    if task == "mnist":  # brought to MNIST style as `dlapps predict mnist` does (centred, light on dark)
        from dlapps.data.digits import read_digit

        center = info.get("dataset", "mnist") == "mnist"
        images = np.stack([read_digit(path, "auto", center=center) for path in inputs])
        return images, images, info.get("class_names"), None
    shape = info.get("image_shape") or list(model.input_shape[1:])
    load = _task_attr("imagenet", "load_image")
    images = np.stack([load(path, shape) for path in inputs])
    if "imagenet_backbone" in info:  # a keras.applications classifier: preprocessing outside the model
        application = _task_attr("imagenet", "application")
        _, module = application(info["imagenet_backbone"])
        return module.preprocess_input(images.astype("float32")), images, None, module
    return images, images, info.get("class_names"), None


def _class_name(index: int, names, module, probabilities: np.ndarray) -> str:
    if names:
        return str(names[index])
    if module is not None:
        try:
            return str(module.decode_predictions(probabilities[None], top=1)[0][0][1])
        except Exception:  # the class index file is a download; offline, the number will do
            return f"class {index}"
    return str(index)


def explain(task: str, inputs: list[str], model, info: dict, cfg, method: str | None = None,
            data: str | None = None, output: str | None = None, overwrite: bool = False) -> list[str]:
    """Attributions for `inputs` (what `dlapps predict TASK` takes) as lines of text; files are written.

    - mnist / imagenet: image files -> `<image>.gradcam.png` and/or `<image>.saliency.png` next to
      each image (method gradcam, saliency, or None for both).
    - sentiment / spam: texts (or .txt files, one text per line) -> per-token scores printed and saved
      to `output` (.html or .png; default `<task>.explain.html`). Method `ig` (integrated gradients;
      the default when the model has an Embedding layer) or `occlusion` (default otherwise).
    - tabular: CSV rows -> per-column occlusion bars (`output`, default `tabular.occlusion.png`); with
      `data` (a labelled CSV), permutation importance -> `output` when no rows are given, else
      `<data file stem>.importance.png` in the current folder (data folders are often read-only).
    Raises UserError for a missing input, an unknown method, or an output that exists without `overwrite`.
    """
    if task not in METHODS:
        raise UserError(f"dlapps explain supports {', '.join(METHODS)}; not {task}")
    if method is not None and method not in METHODS[task]:
        raise UserError(f"method {method!r} for {task}: choose {', '.join(METHODS[task])}")
    if task in ("mnist", "imagenet"):
        return _explain_images(task, inputs, model, info, cfg, method, overwrite)
    if task in ("sentiment", "spam"):
        return _explain_texts(task, inputs, model, method, output, overwrite)
    return _explain_table(inputs, model, info, method, data, output, overwrite)


def _explain_images(task, inputs, model, info, cfg, method, overwrite) -> list[str]:
    if not inputs:
        raise UserError(f"give one or more image files, e.g. dlapps explain {task} digit.png")
    methods = [method] if method else list(IMAGE_METHODS)
    targets = {(path, m): Path(path).with_suffix(f".{m}.png") for path in inputs for m in methods}
    for target in targets.values():
        _free(target, overwrite)
    batch, images, names, module = _image_batch(task, inputs, model, info, cfg)
    lines = []
    for m in methods:
        maps, classes, probabilities = (grad_cam if m == "gradcam" else saliency)(model, batch)
        for i, path in enumerate(inputs):
            label = _class_name(int(classes[i]), names, module, probabilities[i])
            title = f"{m}: {label} ({probabilities[i, classes[i]]:.3f})"
            written = overlay_figure(images[i], maps[i], title, targets[(path, m)])
            lines.append(f"{path}: {label} ({probabilities[i, classes[i]]:.3f}); {m} -> {written}")
    return lines


def _texts(inputs: list[str]) -> list[str]:
    texts = []
    for item in inputs:
        if item.endswith(".txt"):
            from dlapps.data.text import read_text_lines

            texts.extend(read_text_lines(item))  # a UserError names a missing file
        else:
            texts.append(item)
    return texts


def _explain_texts(task, inputs, model, method, output, overwrite) -> list[str]:
    import tensorflow as tf

    texts = _texts(inputs)
    if not texts:
        raise UserError(f'give texts to explain, e.g. dlapps explain {task} "not good at all"')
    if method is None:
        method = "ig" if _layer_of_type(model, "Embedding") is not None else "occlusion"
    if output is None:
        first = next((item for item in inputs if item.endswith(".txt")), None)
        output = str(Path(first).with_suffix(".explain.html")) if first else f"{task}.explain.html"
    path = Path(output)
    if path.suffix not in (".html", ".png"):
        raise UserError(f"--output {path}: use a .html or .png file name")
    _free(path, overwrite)
    if method == "ig":
        results = integrated_gradients(model, texts)
    else:
        def predict(batch):
            return np.asarray(model(tf.constant(batch), training=False)).ravel()

        def logit(batch):
            with _logits(model):
                return predict(batch)

        results = text_occlusion(predict, texts, logit)
    what = "p(spam)" if task == "spam" else "p(positive)"
    what = what if method == "ig" else f"the log-odds of {what}"
    title = f"{task}: {'integrated gradients' if method == 'ig' else 'occlusion'}, contributions to {what}"
    (text_html if path.suffix == ".html" else text_figure)(results, title, path)
    lines = [r.line() for r in results]
    if method == "ig":
        lines = [f"{line}  (baseline p={r.baseline_probability:.3f}, gap {r.gap:+.3f})"
                 for line, r in zip(lines, results)]
    return lines + [f"-> {path}"]


def _explain_table(inputs, model, info, method, data, output, overwrite) -> list[str]:
    import tensorflow as tf

    kinds = info["kinds"]
    to_columns = _task_attr("tabular", "to_columns")

    def predict(columns: dict) -> np.ndarray:
        tensors = {name: tf.constant(values) for name, values in columns.items()}
        return np.asarray(model.predict_on_batch(tensors)).ravel()

    lines = []
    if method in (None, "permutation") and data:
        from dlapps.data import read_table

        target_path = Path(output) if output and not inputs else Path(f"{Path(data).stem}.importance.png")
        _free(target_path, overwrite)
        frame = read_table(data)
        if info["target"] not in frame:
            raise UserError(f"{data} has no {info['target']} column (the target permutation importance needs)")
        frame = frame.dropna(subset=[info["target"]])
        if len(frame) > 5000:  # the importances settle well before; a bounded run time
            frame = frame.sample(5000, random_state=0)
        columns = to_columns(frame, kinds)
        importance = permutation_importance(predict, columns, frame[info["target"]].to_numpy())
        bar_figure({k: v[0] for k, v in importance.items()}, {k: v[1] for k, v in importance.items()},
                   f"permutation importance on {Path(data).name} ({len(frame)} rows, 5 shuffles)",
                   f"rise in RMSE ({info['target']})", target_path)
        lines += [f"{name:<24} +{mean:,.1f} ± {std:,.1f} RMSE"
                  for name, (mean, std) in sorted(importance.items(), key=lambda kv: -kv[1][0])]
        lines.append(f"-> {target_path}")
    elif method == "permutation":
        raise UserError("permutation importance needs a labelled table: --data FILE.csv")
    if inputs:
        if method == "permutation":
            raise UserError("rows are explained by --method occlusion; permutation importance reads --data")
        path = _free(Path(output or "tabular.occlusion.png"), overwrite)
        frame = _task_attr("tabular", "parse_rows")(inputs, info)
        baselines = {column: (float(np.expm1(info["stats"][column]["mean"])) if info["stats"][column].get("log")
                              else float(info["stats"][column]["mean"])) if kind == "numeric" else ""
                     for column, kind in kinds.items()}
        columns = to_columns(frame, kinds)
        for r in range(len(frame)):
            row = {name: values[r: r + 1] for name, values in columns.items()}
            value, effects = row_occlusion(predict, row, baselines)
            row_path = path if len(frame) == 1 else _free(path.with_suffix(f".row{r + 1}.png"), overwrite)
            bar_figure(effects, None, f"row {r + 1}: {info['target']} = {value:,.0f}",
                       f"prediction minus prediction with the column at its mean ({info['target']})", row_path)
            lines.append(f"row {r + 1}: {info['target']} = {value:,.0f}; " + ", ".join(
                f"{k} {v:+,.0f}" for k, v in sorted(effects.items(), key=lambda kv: -abs(kv[1]))))
            lines.append(f"-> {row_path}")
    if not lines:
        raise UserError('give CSV rows to explain (occlusion) and/or --data FILE.csv (permutation importance)')
    return lines


__all__ = ["grad_cam", "saliency", "last_conv_layer", "integrated_gradients", "text_occlusion",
           "permutation_importance", "row_occlusion", "explain", "TokenScores", "overlay_figure",
           "text_html", "text_figure", "bar_figure", "METHODS"]
