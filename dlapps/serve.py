"""Serve saved models: a plain JSON REST API and a Gradio web app with a tab per task.

    dlapps serve                         # every task with a model in saved_models/
    dlapps serve mnist sentiment --port 8000

REST API (JSON in, JSON out):

- ``GET /api/tasks`` -> ``{"tasks": [{"task", "summary", "inputs", "metrics"}, ...]}``: the
  loaded models, what each takes, and the headline metrics of its model card.
- ``POST /api/TASK/predict`` with ``{"inputs": [...]}`` -> ``{"outputs": [...]}``, one output per
  input. Inputs: texts (spam, sentiment, translation), CSV rows in the training file's column
  order without the target (tabular), base64-encoded image files (mnist, imagenet,
  autoencoder), digits 0-9 or null (gan: ``{"inputs": [3, 7], "seed": 0}``). Translation also
  takes ``"beam_size"`` (1-8).

Errors are ``{"error": "<one line>"}``: HTTP 400 for a malformed request (not JSON, no
``inputs`` list, an input of the wrong kind), 404 for a task that is not served, 500 (one line,
no trace) if the model itself fails, 413 for a request over the limits: at most ``MAX_BODY_BYTES`` (8 MiB) of body, ``MAX_BATCH`` (64)
inputs, ``MAX_TEXT_CHARS`` (5,000) characters a text.

The server binds to 127.0.0.1 (this machine only) unless `--host` says otherwise, prints its
URL at start, and stops cleanly on Ctrl-C.
"""

import base64
import dataclasses
import io
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dlapps.errors import UserError

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_BATCH = 64
MAX_TEXT_CHARS = 5000
MAX_BEAM = 8
HEADLINE = {
    "mnist": ["accuracy", "macro_f1"], "imagenet": ["accuracy", "top5_accuracy"],
    "sentiment": ["accuracy", "f1", "roc_auc"], "spam": ["f1", "precision", "recall"],
    "tabular": ["rmse", "mae", "r2"], "translation": ["bleu", "chrf"],
    "autoencoder": ["mse", "anomaly_auc"], "gan": ["classifier_fid", "confident_share", "label_agreement"],
}
"""The test-split metrics each tab and /api/tasks show (from the model's metrics.json)."""
INPUTS = {
    "mnist": "base64 image files (a digit; any size, light or dark background)",
    "imagenet": "base64 image files (photos)",
    "autoencoder": "base64 image files (a digit)",
    "sentiment": "texts (English sentences)",
    "spam": "texts (SMS messages)",
    "translation": "texts (English sentences); optional beam_size 1-8",
    "tabular": "CSV rows (the training file's columns without the target)",
    "gan": "digits 0-9 (or null for any); optional seed",
}


class BadRequest(Exception):
    """A request the client must fix; `status` is its HTTP status (400, 404 or 413)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Served:
    """One loaded model: its task, model, saved info, config, predict options and card metrics."""

    task: Any
    model: Any
    info: dict
    cfg: Any
    options: dict
    metrics: dict
    path: Path
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def headline(self) -> dict[str, float]:
        """The model card's headline test metrics (those of HEADLINE that it has)."""
        test = self.metrics.get("test", {})
        names = [n for n in HEADLINE.get(self.task.name, []) if n in test] or [
            n for n, v in test.items() if isinstance(v, float)][:3]
        return {name: float(test[name]) for name in names}


def load_models(task_names: list[str] | None = None, models_dir: str | Path | None = None) -> dict[str, Served]:
    """The models to serve, by task: `task_names` (default: every task with a saved model).

    `models_dir` holds `<task>/model.keras` folders (default: the usual search path, see
    `dlapps.runs.find_model`). Raises UserError for a named task without a model, or when no
    model is found at all.
    """
    from dlapps import runs
    from dlapps.task import get_task, list_tasks

    names = task_names or list_tasks()
    served = {}
    for name in names:
        task = get_task(name)
        if models_dir is not None:
            path = Path(models_dir) / name / "model.keras"
            path = path if path.exists() else None
        else:
            path = runs.find_model(name)
        if path is None:
            if task_names:
                raise UserError(f"no trained {name} model in {models_dir or 'saved_models/'}; "
                                f"train one with `dlapps train {name} --save`")
            continue
        model, info = runs.load_model(path)
        cfg, options = runs.model_config(task, path)
        served[name] = Served(task, model, info, cfg, options, runs.read_json(path.with_name("metrics.json"), {}),
                              path)
    if not served:
        raise UserError("no saved model to serve; train one with `dlapps train TASK --save` (or pass --models DIR)")
    return served


# ----------------------------------------------------------------------------- predictions
def _texts(inputs: list) -> list[str]:
    for item in inputs:
        if not isinstance(item, str) or not item.strip():
            raise BadRequest("each input must be a non-empty text")
        if len(item) > MAX_TEXT_CHARS:
            raise BadRequest(f"a text has {len(item)} characters; the limit is {MAX_TEXT_CHARS}", 413)
    return inputs


def _image_file(item) -> Path:
    """A base64 image (optionally a data: URL) written to a temporary file, for the task's readers."""
    if not isinstance(item, str):
        raise BadRequest("each input must be a base64-encoded image file (PNG, JPEG, ...)")
    data = item.split(",", 1)[1] if item.startswith("data:") else item
    try:
        raw = base64.b64decode(data, validate=True)
    except (ValueError, TypeError):
        raise BadRequest("an input is not valid base64") from None
    from PIL import Image, UnidentifiedImageError

    try:
        Image.open(io.BytesIO(raw)).verify()
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise BadRequest("an input is not an image file (PNG, JPEG, ...)") from None
    handle = tempfile.NamedTemporaryFile(suffix=".png", delete=False)
    handle.write(raw)
    handle.close()
    return Path(handle.name)


def _with_images(inputs: list, read: Callable[[Path], np.ndarray]) -> np.ndarray:
    paths = [_image_file(item) for item in inputs]
    try:
        return np.stack([read(path) for path in paths])
    except UserError as err:
        raise BadRequest(str(err)) from None
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def _top(row: np.ndarray, names: list[str], k: int) -> dict:
    order = np.argsort(-row)[:k]
    return {"label": names[order[0]], "probabilities": {names[i]: float(row[i]) for i in order}}


def _digit_reader(served: Served) -> Callable[[Path], np.ndarray]:
    from dlapps.data.digits import read_digit

    center = served.info.get("dataset", "mnist") == "mnist"
    return lambda path: read_digit(path, served.options.get("invert", "auto"), center=center)


def predict_mnist(served: Served, inputs: list, request: dict) -> list[dict]:
    """Top-3 classes with probabilities of each digit image."""
    images = _with_images(inputs, _digit_reader(served))
    probabilities = np.asarray(served.model.predict(images, verbose=0))
    names = served.info.get("class_names") or [str(i) for i in range(probabilities.shape[1])]
    return [_top(row, names, 3) for row in probabilities]


def predict_imagenet(served: Served, inputs: list, request: dict) -> list[dict]:
    """Top-5 classes with probabilities of each photo."""
    from dlapps.tasks.imagenet.model import load_image

    shape = served.info.get("image_shape", [224, 224, 3])
    images = _with_images(inputs, lambda path: load_image(str(path), shape))
    probabilities = np.asarray(served.model.predict(images, verbose=0))
    names = served.info.get("class_names") or [str(i) for i in range(probabilities.shape[1])]
    return [_top(row, names, 5) for row in probabilities]


def predict_autoencoder(served: Served, inputs: list, request: dict) -> list[dict]:
    """The reconstruction (base64 PNG, 28x28 gray) and its mean squared error of each digit image."""
    images = _with_images(inputs, _digit_reader(served))
    reconstructions = np.asarray(served.model.predict(images.astype(np.float32), verbose=0))
    errors = np.mean((reconstructions - images / 255.0) ** 2, axis=(1, 2, 3))
    return [{"reconstruction": png_base64(np.round(r * 255).clip(0, 255).astype(np.uint8)), "error": float(e)}
            for r, e in zip(reconstructions, errors)]


def _binary(served: Served, inputs: list, threshold: float) -> list[dict]:
    import tensorflow as tf

    texts = _texts(inputs)
    probabilities = np.asarray(served.model.predict_on_batch(tf.constant(texts))).reshape(-1)
    names = served.info.get("class_names", ["negative", "positive"])
    return [{"label": names[int(p >= threshold)], "probability": float(p), "threshold": threshold}
            for p in probabilities]


def predict_sentiment(served: Served, inputs: list, request: dict) -> list[dict]:
    """The label and P(positive) of each text."""
    return _binary(served, inputs, 0.5)


def predict_spam(served: Served, inputs: list, request: dict) -> list[dict]:
    """The label and P(spam) of each text, at the decision threshold saved in the model."""
    from dlapps.tasks.spam.model import threshold_of

    return _binary(served, inputs, threshold_of(served.model, served.cfg))


def predict_translation(served: Served, inputs: list, request: dict) -> list[dict]:
    """The German translation of each English text (beam search with `beam_size`, default the model's)."""
    from dlapps.tasks.translation.inference import translate

    beam = request.get("beam_size", served.cfg.beam_size)
    if not isinstance(beam, int) or isinstance(beam, bool) or not 1 <= beam <= MAX_BEAM:
        raise BadRequest(f"beam_size must be an integer from 1 to {MAX_BEAM}")
    return [{"translation": text} for text in translate(served.model, _texts(inputs), beam, served.cfg.length_penalty)]


def predict_tabular(served: Served, inputs: list, request: dict) -> list[dict]:
    """The predicted target of each CSV row."""
    import tensorflow as tf

    from dlapps.tasks.tabular.data import to_columns
    from dlapps.tasks.tabular.model import parse_rows

    rows = _texts(inputs)
    if any(row.lower().endswith((".csv", ".tsv")) for row in rows):
        raise BadRequest("give CSV rows, not file names")
    try:
        frame = parse_rows(rows, served.info)
    except UserError as err:
        raise BadRequest(str(err)) from None
    columns = {name: tf.constant(values) for name, values in to_columns(frame, served.info["kinds"]).items()}
    predictions = np.asarray(served.model.predict_on_batch(columns)).ravel()
    return [{served.info["target"]: float(value)} for value in predictions]


def predict_gan(served: Served, inputs: list, request: dict) -> list[dict]:
    """A generated digit image (base64 PNG) per requested digit (null: any), drawn with `seed`."""
    from dlapps.tasks.gan.model import generate, generator_classes

    seed = request.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise BadRequest("seed must be a non-negative integer")
    generator = served.model.sampler
    classes = generator_classes(generator)
    outputs = []
    for i, digit in enumerate(inputs):
        if digit is not None and (not isinstance(digit, int) or isinstance(digit, bool)
                                  or not 0 <= digit < max(classes, 10)):
            raise BadRequest("each input must be a digit 0-9 or null")
        if digit is not None and not classes:
            raise BadRequest("this generator is unconditional: give null inputs")
        image = generate(generator, 1, seed + i, digit=digit)[0]
        outputs.append({"digit": digit, "image": png_base64(image)})
    return outputs


PREDICT: dict[str, Callable[[Served, list, dict], list[dict]]] = {
    "mnist": predict_mnist, "imagenet": predict_imagenet, "autoencoder": predict_autoencoder,
    "sentiment": predict_sentiment, "spam": predict_spam, "translation": predict_translation,
    "tabular": predict_tabular, "gan": predict_gan,
}


def png_base64(image: np.ndarray) -> str:
    """A uint8 image (H, W) or (H, W, 1|3) as a base64 PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def predict(served: dict[str, Served], task_name: str, request: Any) -> dict:
    """`{"outputs": [...]}` for a decoded JSON request `{"inputs": [...]}` to `task_name`.

    Raises BadRequest (with its HTTP status) for an unknown task or a malformed request.
    """
    if task_name not in served:
        raise BadRequest(f"task {task_name!r} is not served; served: {', '.join(served)}", 404)
    if not isinstance(request, dict) or "inputs" not in request:
        raise BadRequest('the body must be a JSON object {"inputs": [...]}')
    inputs = request["inputs"]
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest('"inputs" must be a non-empty list')
    if len(inputs) > MAX_BATCH:
        raise BadRequest(f"{len(inputs)} inputs; the limit is {MAX_BATCH} a request", 413)
    item = served[task_name]
    with item.lock:
        return {"outputs": PREDICT[task_name](item, inputs, request)}


def tasks_listing(served: dict[str, Served]) -> dict:
    """`{"tasks": [...]}`: each served model's task, summary, inputs and headline metrics."""
    return {"tasks": [{"task": name, "summary": item.task.summary, "inputs": INPUTS.get(name, ""),
                       "metrics": item.headline()} for name, item in served.items()]}


# ----------------------------------------------------------------------------- the app
def create_app(served: dict[str, Served]):
    """A FastAPI app: the REST API under /api and the Gradio web app at /."""
    import json

    import gradio as gr
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(title="dlapps", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/tasks")
    def list_models():
        return tasks_listing(served)

    @app.post("/api/{task_name}/predict")
    async def predict_route(task_name: str, request: Request):
        try:
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise BadRequest(f"the request has {int(declared):,} bytes; the limit is {MAX_BODY_BYTES:,}", 413)
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise BadRequest(f"the request is over the limit of {MAX_BODY_BYTES:,} bytes", 413)
            try:
                decoded = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise BadRequest("the body is not JSON") from None
            import anyio

            return await anyio.to_thread.run_sync(predict, served, task_name, decoded)
        except BadRequest as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        except Exception as err:  # noqa: BLE001 (a failure of ours: one line and HTTP 500, never a trace)
            first = str(err).splitlines()[0][:200] if str(err) else ""
            return JSONResponse({"error": f"prediction failed: {type(err).__name__}: {first}"}, status_code=500)

    return gr.mount_gradio_app(app, build_ui(served), path="/", theme=_theme(), footer_links=[])


def _theme():
    import gradio as gr

    # System fonts: the default theme fetches web fonts, and a served machine may be offline.
    fonts = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=fonts, font_mono=["ui-monospace", "monospace"])


def _card(item: Served) -> str:
    from dlapps.runs import readable

    metrics = ", ".join(f"{name} **{readable(value)}**" for name, value in item.headline().items())
    return f"**{item.task.summary}**  \nModel card (test split): {metrics or 'no metrics recorded'}"


def _ui_call(function: Callable, *args):
    """Run a UI handler; a bad input shows as a Gradio error message rather than a trace."""
    import gradio as gr

    try:
        return function(*args)
    except (BadRequest, UserError) as err:
        raise gr.Error(str(err)) from None


def build_ui(served: dict[str, Served]):
    """The Gradio Blocks: one tab per served task, each with its card's headline metrics."""
    import gradio as gr

    with gr.Blocks(title="dlapps") as demo:
        gr.Markdown("# dlapps\nTrained models of the dlapps tasks. The same predictions as JSON: "
                    "`POST /api/TASK/predict`; `GET /api/tasks` lists them.")
        with gr.Tabs():
            for name, item in served.items():
                with gr.Tab(name, id=name):
                    gr.Markdown(_card(item))
                    TABS[name](item, served)
    return demo


def _file_b64(path: str | None) -> str:
    if not path:
        raise BadRequest("upload an image first")
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _sketch_b64(value) -> str | None:
    """The composite of a Sketchpad value as base64 PNG, or None when nothing is drawn."""
    if not value or value.get("composite") is None:
        return None
    image = np.asarray(value["composite"])
    if image.ndim == 3 and image.shape[2] == 4 and image[..., 3].min() != image[..., 3].max():
        gray = image[..., 3]  # ink on a transparent canvas: light digit on dark, as MNIST
    else:
        gray = image if image.ndim == 2 else image[..., :3].mean(axis=2)
    if gray.max() == gray.min():
        return None
    return png_base64(gray.astype(np.uint8))


def _tab_digits(item: Served, served) -> None:
    import gradio as gr

    name = item.task.name
    with gr.Row():
        upload = gr.Image(type="filepath", label="Upload a digit image", sources=["upload", "clipboard"],
                          height=280, elem_id=f"{name}-upload")
        sketch = gr.Sketchpad(label="... or draw one (then Classify)", type="numpy", canvas_size=(280, 280),
                              height=280, elem_id=f"{name}-sketch")
    button = gr.Button("Classify", variant="primary", elem_id=f"{name}-run")
    label = gr.Label(num_top_classes=3, label="Top 3", elem_id=f"{name}-label")

    def run(path, drawing):
        image = _file_b64(path) if path else _sketch_b64(drawing)
        if image is None:
            raise BadRequest("upload or draw a digit first")
        return predict(served, name, {"inputs": [image]})["outputs"][0]["probabilities"]

    button.click(lambda p, d: _ui_call(run, p, d), [upload, sketch], label)
    upload.upload(lambda p: _ui_call(run, p, None), upload, label)


def _tab_imagenet(item: Served, served) -> None:
    import gradio as gr

    with gr.Row():
        upload = gr.Image(type="filepath", label="Upload a photo", elem_id="imagenet-upload")
        label = gr.Label(num_top_classes=5, label="Top 5", elem_id="imagenet-label")
    upload.upload(lambda p: _ui_call(lambda: predict(served, "imagenet", {"inputs": [_file_b64(p)]})
                                     ["outputs"][0]["probabilities"]), upload, label)


def _tab_text(item: Served, served) -> None:
    import gradio as gr

    name = item.task.name
    placeholder = {"spam": "WINNER!! Claim your free prize now: call 09061701461",
                   "sentiment": "A moving, beautifully acted film."}.get(name, "")
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Text", placeholder=placeholder, lines=3, elem_id=f"{name}-text")
            button = gr.Button("Classify", variant="primary", elem_id=f"{name}-run")
        label = gr.Label(label="Prediction", elem_id=f"{name}-label")

    def run(value):
        result = predict(served, name, {"inputs": [value or ""]})["outputs"][0]
        names = item.info.get("class_names", ["negative", "positive"])
        positive = result["probability"]
        return {names[1]: positive, names[0]: 1.0 - positive}

    button.click(lambda v: _ui_call(run, v), text, label)
    text.submit(lambda v: _ui_call(run, v), text, label)


def _tab_translation(item: Served, served) -> None:
    import gradio as gr

    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="English", placeholder="A man is riding a bicycle.", lines=2,
                              elem_id="translation-text")
            beam = gr.Slider(1, MAX_BEAM, value=int(item.cfg.beam_size), step=1, label="Beam size")
            button = gr.Button("Translate", variant="primary", elem_id="translation-run")
        output = gr.Textbox(label="German", elem_id="translation-output")

    def run(value, beam_size):
        request = {"inputs": [value or ""], "beam_size": int(beam_size)}
        return predict(served, "translation", request)["outputs"][0]["translation"]

    button.click(lambda v, b: _ui_call(run, v, b), [text, beam], output)


def _tab_autoencoder(item: Served, served) -> None:
    import gradio as gr

    with gr.Row():
        upload = gr.Image(type="filepath", label="Upload a digit image", elem_id="autoencoder-upload")
        with gr.Column():
            output = gr.Image(label="Reconstruction", image_mode="L", elem_id="autoencoder-output")
            error = gr.Number(label="Reconstruction error (MSE, pixels 0-1)", elem_id="autoencoder-error")

    def run(path):
        result = predict(served, "autoencoder", {"inputs": [_file_b64(path)]})["outputs"][0]
        from PIL import Image

        image = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["reconstruction"]))))
        return np.kron(image, np.ones((8, 8), np.uint8)), result["error"]  # 224x224 to see it

    upload.upload(lambda p: _ui_call(run, p), upload, [output, error])


def _tab_gan(item: Served, served) -> None:
    import gradio as gr

    from dlapps.tasks.gan.model import generator_classes

    classes = generator_classes(item.model.sampler)
    with gr.Row():
        with gr.Column():
            digit = gr.Dropdown(["any"] + [str(i) for i in range(classes)], value="any" if not classes else "3",
                                label="Digit", interactive=bool(classes))
            seed = gr.Number(0, precision=0, minimum=0, label="Seed")
            button = gr.Button("Generate 16", variant="primary", elem_id="gan-run")
        grid = gr.Image(label="Samples", image_mode="L", elem_id="gan-output")

    def run(value, seed_value):
        wanted = None if value == "any" else int(value)
        request = {"inputs": [wanted] * 16, "seed": int(seed_value or 0)}
        from PIL import Image

        images = [np.asarray(Image.open(io.BytesIO(base64.b64decode(o["image"]))))
                  for o in predict(served, "gan", request)["outputs"]]
        rows = [np.concatenate(images[i: i + 4], axis=1) for i in range(0, 16, 4)]
        return np.kron(np.concatenate(rows, axis=0), np.ones((3, 3), np.uint8))

    button.click(lambda d, s: _ui_call(run, d, s), [digit, seed], grid)


def _tab_tabular(item: Served, served) -> None:
    import gradio as gr

    info = item.info
    features = [c for c in info["file_columns"] if c != info["target"]]
    fields = []
    with gr.Row():
        with gr.Column():
            for column in features:
                if info["kinds"].get(column) == "numeric":
                    stats = info.get("stats", {}).get(column, {})
                    fields.append(gr.Number(label=column, value=round(float(stats.get("mean", 0.0)), 4)))
                else:
                    choices = _categories(item.model, column)
                    fields.append(gr.Dropdown(choices, value=choices[0] if choices else None, label=column,
                                              allow_custom_value=True))
            button = gr.Button("Predict", variant="primary", elem_id="tabular-run")
        output = gr.Number(label=f"Predicted {info['target']}", elem_id="tabular-output")

    def run(*values):
        import csv

        buffer = io.StringIO()
        csv.writer(buffer).writerow(["" if v is None else v for v in values])
        result = predict(served, "tabular", {"inputs": [buffer.getvalue().strip()]})["outputs"][0]
        return result[info["target"]]

    button.click(lambda *v: _ui_call(run, *v), fields, output)


def _categories(model, column: str) -> list[str]:
    """The vocabulary of a categorical column's StringLookup in the model (empty if none found)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.StringLookup) and layer.name.startswith(column):
            return [v for v in layer.get_vocabulary() if v != layer.oov_token]
    return []


TABS: dict[str, Callable[[Served, dict], None]] = {
    "mnist": _tab_digits, "imagenet": _tab_imagenet, "autoencoder": _tab_autoencoder, "gan": _tab_gan,
    "sentiment": _tab_text, "spam": _tab_text, "translation": _tab_translation, "tabular": _tab_tabular,
}


def serve(task_names: list[str] | None = None, host: str = "127.0.0.1", port: int = 7860,
          models_dir: str | Path | None = None) -> None:
    """Load the models and serve them until Ctrl-C (the REST API and the web app on one port).

    Raises UserError when a model is missing, the port is taken, or the serve extra is not installed.
    """
    import importlib.util

    missing = [m for m in ("gradio", "fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"dlapps serve needs {', '.join(missing)}: pip install 'dlapps[serve]'")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            raise UserError(f"cannot listen on {host}:{port} ({err.strerror}); choose another --port") from None
    served = load_models(task_names, models_dir)
    app = create_app(served)
    import uvicorn

    where = "this machine only" if host in ("127.0.0.1", "localhost", "::1") else "reachable from the network"
    print(f"dlapps serve: {', '.join(served)} on http://{host}:{port}/ ({where}); "
          f"REST: POST http://{host}:{port}/api/TASK/predict; Ctrl-C stops", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    print("dlapps serve: stopped", flush=True)
