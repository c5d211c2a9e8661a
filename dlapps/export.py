"""Export a trained model to TF SavedModel, LiteRT or ONNX, and check the export against it.

    dlapps export mnist --format onnx            # -> exports/mnist/onnx/model.onnx + export.json

Every export is reloaded in its own runtime right after it is written and its outputs are
compared with the `.keras` model's on raw inputs: a sample of the task's data (the model's own
data source, or the task's embedded data when that file is not here) and, with `check_data`, a
file of the user's. The result goes into `export.json` beside the export (format, runtime
versions, inputs and outputs with shapes and dtypes, the largest absolute difference, the
agreement of predicted labels). An export that disagrees is a UserError (exit 2), its files kept
for inspection.

Tolerance (float32 runtimes reorder sums and fuse ops, nothing more): every output element must
satisfy ``|export - keras| <= ATOL + RTOL * |keras|`` with ATOL = RTOL = 1e-4, and string outputs
(translation tokens) must be equal. Measured differences are ~1e-7 on probabilities.

Formats:

- ``saved_model`` (every task): a TF SavedModel whose ``serving_default`` signature takes the raw
  inputs the `.keras` model takes (strings, one tensor per table column, uint8 images) and
  returns the task's outputs; loadable with ``tf.saved_model.load`` and by TF Serving. The GAN
  exports its generator (latent, label -> pixels 0..255); translation decodes greedily inside
  the graph (source strings -> target tokens and their space-joined text).
- ``litert`` (``ai-edge-litert``) and ``onnx`` (``tf2onnx``, run by ``onnxruntime``): image and
  numeric models whole. String operations (``StringLower``, ``StaticRegexReplace``,
  ``StringSplitV2``, lookup tables) are not builtin LiteRT or ONNX ops, so for models that
  take strings (spam, sentiment, tabular's categorical columns, translation) the export holds
  the numeric part after the string preprocessing, and ``preprocessing.json`` holds that
  preprocessing (each Keras layer's config with its vocabulary, IDF weights, ...): apply it
  (``keras.layers.deserialize``) to raw inputs, then run the export. The parity check rebuilds
  the preprocessing from that JSON file, so the JSON and the export are checked together.

Where LiteRT cannot convert a recurrent layer with a dynamic batch (its tensor lists need a
static element shape), the LiteRT file takes a batch of 1 (`export.json`: ``"batch_size": 1``).
Keras' own ``model.export()`` traces the model's call without ``training=False``; exports here
trace inference mode explicitly (the saved mnist model's random augmentation layers otherwise
stay active: measured max difference 0.35).
"""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dlapps.errors import UserError

FORMATS = ("saved_model", "litert", "onnx")
ATOL = 1e-4
RTOL = 1e-4
SAMPLE_SIZE = 32
"""Examples of the task's data in the parity check."""
ONNX_OPSET = 17
FILES = {"saved_model": "saved_model.pb", "litert": "model.tflite", "onnx": "model.onnx"}
"""The main file of each format inside the output folder."""


# ----------------------------------------------------------------------------- runtimes
def _require(fmt: str) -> None:
    """A one-line UserError when the runtime of `fmt` is not installed."""
    needed = {"litert": ["ai_edge_litert"], "onnx": ["tf2onnx", "onnxruntime"]}.get(fmt, [])
    import importlib.util

    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"--format {fmt} needs {', '.join(missing)}: pip install 'dlapps[export]'")


def runtime_versions(fmt: str) -> dict[str, str]:
    """Versions of the libraries that wrote and run an export of format `fmt`."""
    import keras
    import tensorflow as tf

    versions = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__}
    if fmt == "litert":
        from importlib.metadata import version

        versions["ai-edge-litert"] = version("ai-edge-litert")
    if fmt == "onnx":
        import onnxruntime
        import tf2onnx

        versions.update({"tf2onnx": tf2onnx.__version__, "onnxruntime": onnxruntime.__version__,
                         "opset": str(ONNX_OPSET)})
    return versions


# ----------------------------------------------------------------------------- what is exported
@dataclasses.dataclass
class Servable:
    """A function from named input arrays to named output arrays, with its input signature.

    `function(**inputs) -> {name: tensor}` runs the `.keras` model in inference mode; `specs`
    are the tf.TensorSpecs of its inputs, by name; `preprocessing` (numeric exports of string
    models) is the JSON-ready description of the string layers that feed it.
    """

    function: Callable[..., dict]
    specs: dict[str, Any]
    trackable: Any
    preprocessing: dict | None = None
    batch_size: int | None = None

    def tf_function(self):
        """A tf.function of keyword arguments with the signature `specs` (names kept by converters)."""
        import tensorflow as tf

        names = list(self.specs)
        # A real parameter list (not **kwargs): LiteRT and tf2onnx name inputs after the parameters.
        source = f"def serve({', '.join(names)}):\n    return function(**dict(zip(names, [{', '.join(names)}])))\n"
        scope = {"function": self.function, "names": names}
        exec(source, scope)  # noqa: S102 (names are layer names: identifiers, checked below)
        specs = [tf.TensorSpec((self.batch_size, *spec.shape[1:]), spec.dtype, name=name)
                 for name, spec in self.specs.items()]
        return tf.function(scope["serve"], input_signature=specs)


def _identifier(name: str) -> str:
    if not name.isidentifier():
        raise UserError(f"input {name!r} is not a Python identifier; rename the layer to export it")
    return name


def _is_string(tensor) -> bool:
    return "string" in str(tensor.dtype)


def _output_names(model) -> list[str]:
    """Output names: the layers that make them (a DecisionThreshold passes its "probability" on)."""
    operations = [tensor._keras_history.operation for tensor in model.outputs]
    return ["probability" if type(op).__name__ == "DecisionThreshold" else op.name for op in operations]


def _functional(model, raw: bool) -> Servable:
    """A Functional model whole (`raw`), or its numeric part after the layers that read strings."""
    import keras
    import tensorflow as tf

    boundary = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)
                and any(_is_string(t) for t in keras.tree.flatten(layer.input))]
    inputs = {_identifier(t._keras_history.operation.name): t for t in model.inputs}
    preprocessing = None
    if not raw and boundary:
        numeric = {_identifier(layer.name): layer.output for layer in boundary}
        passthrough = {name: t for name, t in inputs.items() if not _is_string(t)}
        sources = {layer.name: [t._keras_history.operation.name for t in keras.tree.flatten(layer.input)]
                   for layer in boundary}
        if any(len(s) != 1 or s[0] not in inputs for s in sources.values()):
            raise UserError(f"{model.name}: the string preprocessing does not read the raw inputs directly; "
                            "only --format saved_model keeps it")
        preprocessing = {
            "note": ("This export takes numbers: apply these Keras layers to the raw inputs first "
                     "(keras.layers.deserialize(layer); each output feeds the export input of the same name)."),
            "layers": {name: {"input": sources[name][0], "layer": keras.layers.serialize(layer)}
                       for name, layer in zip(numeric, boundary)},
            "passthrough": sorted(passthrough)}
        inputs = {**numeric, **passthrough}
        model = keras.Model(list(inputs.values()), model.outputs, name=f"{model.name}_numeric")
    outputs = _output_names(model)
    names = list(inputs)
    single = len(model.inputs) == 1 and not isinstance(model.input, dict)

    def function(**kwargs):
        if single:
            args = kwargs[names[0]]
        elif isinstance(model.input, dict):
            args = {name: kwargs[name] for name in model.input}
        else:
            args = [kwargs[name] for name in names]
        result = model(args, training=False)
        result = result if isinstance(result, (list, tuple)) else [result]
        return dict(zip(outputs, result))

    specs = {name: tf.TensorSpec(t.shape, t.dtype, name=name) for name, t in inputs.items()}
    return Servable(function, specs, model, json.loads(json.dumps(preprocessing, default=_jsonable))
                    if preprocessing else None)


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _gan(model) -> Servable:
    """The generator that samples (the weights' moving average when kept): latent[, label] -> pixels."""
    import tensorflow as tf
    from keras import ops

    generator = model.sampler
    latent_dim = int(generator.inputs[0].shape[-1])
    conditional = len(generator.inputs) > 1
    specs = {"latent": tf.TensorSpec((None, latent_dim), tf.float32, name="latent")}
    if conditional:
        specs["label"] = tf.TensorSpec((None,), tf.int32, name="label")

    def function(latent, label=None):
        images = generator([latent, label] if conditional else latent, training=False)
        return {"pixels": ops.clip((ops.cast(images, "float32") + 1.0) * 127.5, 0.0, 255.0)}

    return Servable(function, specs, generator)


def _translation(model) -> Servable:
    """Greedy decoding inside the graph: source strings -> target tokens ("" after [end]) and text.

    The same computation as `decoding.greedy` (encoder once; the decoder on the prefix cut to a
    multiple of 8 tokens at each step; padding never emitted). `translation` joins the tokens
    with spaces (WordPiece pieces glued); `text.detokenize`'s punctuation spacing is Python only.
    """
    import tensorflow as tf

    from dlapps.tasks.translation import subword
    from dlapps.tasks.translation.decoding import BUCKET, parts
    from dlapps.tasks.translation.text import END, START

    source_vectorizer = model.get_layer("source_vectorizer")
    vocabulary = model.get_layer("target_vectorizer").get_vocabulary()
    encoder, decoder, projection = parts(model.get_layer("transformer"))
    max_length = subword.sequence_length(source_vectorizer)
    start_id, end_id = vocabulary.index(START), vocabulary.index(END)
    wordpiece = subword.kind(source_vectorizer) == "wordpiece"
    words = tf.constant(vocabulary)

    def function(source):
        source_ids = tf.cast(source_vectorizer(source), tf.int32)
        batch = tf.shape(source_ids)[0]
        context = encoder(source_ids, training=False)
        tokens = tf.concat([tf.fill([batch, 1], start_id), tf.zeros([batch, max_length], tf.int32)], axis=1)
        done = tf.zeros([batch], tf.bool)
        padding = tf.one_hot(0, len(vocabulary), on_value=-np.inf, off_value=0.0)
        for t in tf.range(max_length):
            width = tf.minimum(max_length, (t + BUCKET) // BUCKET * BUCKET)
            hidden = decoder([tokens[:, :width], context, source_ids], training=False)
            logits = tf.cast(projection(hidden[:, t, :]), tf.float32) + padding
            choice = tf.where(done, 0, tf.argmax(logits, axis=-1, output_type=tf.int32))
            tokens = tokens + choice[:, None] * tf.one_hot(t + 1, max_length + 1, dtype=tf.int32)[None, :]
            done = done | (choice == end_id)
            if tf.reduce_all(done):
                break
        ids = tokens[:, 1:]
        keep = (ids != 0) & (ids != end_id)
        output = tf.where(keep, tf.gather(words, ids), "")
        text = tf.strings.reduce_join(tf.ragged.boolean_mask(output, keep), axis=-1, separator=" ")
        if wordpiece:
            text = tf.strings.regex_replace(text, " ##", "")
        return {"tokens": output, "translation": text}

    # tf.function here: autograph turns the Python loop into a tf.while_loop (with its early exit).
    return Servable(tf.function(function), {"source": tf.TensorSpec((None,), tf.string, name="source")}, model)


def _translation_reference(model, raw: dict) -> dict:
    """What the translation SavedModel must return, by dlapps' Python greedy decoder (`decoding.greedy`)."""
    from dlapps.tasks.translation import subword
    from dlapps.tasks.translation.decoding import greedy, ids_to_tokens
    from dlapps.tasks.translation.text import END, START

    source_vectorizer = model.get_layer("source_vectorizer")
    vocabulary = model.get_layer("target_vectorizer").get_vocabulary()
    max_length = subword.sequence_length(source_vectorizer)
    end_id = vocabulary.index(END)
    source_ids = np.asarray(source_vectorizer(np.asarray(raw["source"], dtype=object))).astype("int32")
    ids = greedy(model.get_layer("transformer"), source_ids, vocabulary.index(START), end_id, max_length)
    rows = ids_to_tokens(ids, vocabulary, end_id)
    tokens = np.array([row + [""] * (max_length - len(row)) for row in rows], dtype=object)
    texts = [" ".join(row) for row in rows]
    if subword.kind(source_vectorizer) == "wordpiece":
        texts = [text.replace(" ##", "") for text in texts]
    return {"tokens": tokens, "translation": np.array(texts, dtype=object)}


def servable(task_name: str, model, fmt: str) -> Servable:
    """What `fmt` exports of `model`: raw inputs for saved_model, numbers for litert/onnx."""
    raw = fmt == "saved_model"
    if task_name == "gan":
        return _gan(model)
    if task_name == "translation" and raw:
        return _translation(model)
    import keras

    if not isinstance(model, keras.Model) or not hasattr(model, "inputs") or model.__class__.__name__ not in (
            "Functional", "Model"):
        raise UserError(f"{task_name}: a {type(model).__name__} model cannot be exported to {fmt}")
    return _functional(model, raw)


# ----------------------------------------------------------------------------- writing
def _write_saved_model(item: Servable, output: Path) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(item.trackable)
    archive.add_endpoint("serving_default", item.tf_function())
    archive.write_out(str(output), verbose=False)


def _write_litert(item: Servable, output: Path) -> Servable:
    import tempfile

    import tensorflow as tf

    for batch_size in (None, 1):
        item = dataclasses.replace(item, batch_size=batch_size)
        with tempfile.TemporaryDirectory() as folder:
            _write_saved_model(item, Path(folder))
            converter = tf.lite.TFLiteConverter.from_saved_model(folder)
            try:
                flatbuffer = converter.convert()
                break
            except Exception as err:  # noqa: BLE001 (converter errors have many types)
                if batch_size == 1:
                    raise UserError(f"LiteRT cannot convert this model: {str(err).splitlines()[-1][:300]}") from None
    (output / FILES["litert"]).write_bytes(flatbuffer)
    return item


def _register_onnx_handlers() -> None:
    """tf2onnx 1.17 has no handlers for two TF ops the models use: Log1p (tabular's log columns)
    becomes log(1 + x), Erfc (inside TF's exact GELU) becomes 1 - erf(x). Each rewrites the
    node in place, as tf2onnx's own handlers do."""
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    def constant_one(ctx, node):
        dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
        return ctx.make_const(utils.make_name("one"), np.array(1, dtype)).output[0]

    @tf_op("Log1p")
    class Log1p:
        @classmethod
        def version_1(cls, ctx, node, **kwargs):
            add = ctx.make_node("Add", [node.input[0], constant_one(ctx, node)], op_name_scope=node.name)
            ctx.replace_inputs(node, [add.output[0]])
            node.type = "Log"

    @tf_op("Erfc")
    class Erfc:
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=node.name)
            ctx.replace_inputs(node, [constant_one(ctx, node), erf.output[0]])
            node.type = "Sub"


_HANDLERS_REGISTERED = False


def _write_onnx(item: Servable, output: Path) -> None:
    """tf2onnx converts the function with every captured tensor frozen into a constant first.

    Keras layers built from given statistics (Normalization's mean and variance) hold them as
    eager constants, which a tf.function captures as extra graph inputs; tf2onnx freezes
    variables but leaves such captures as inputs that no caller feeds. Freezing the concrete
    function (`convert_variables_to_constants_v2`) turns both into constants; it is done only
    for functions with such captures."""
    global _HANDLERS_REGISTERED
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    if not _HANDLERS_REGISTERED:
        _register_onnx_handlers()
        _HANDLERS_REGISTERED = True
    function = item.tf_function()
    concrete = function.get_concrete_function()
    if any(t.dtype != tf.resource for t in concrete.captured_inputs):
        frozen = convert_variables_to_constants_v2(concrete)
        names, keys = list(item.specs), list(concrete.structured_outputs)

        def call_frozen(**inputs):
            result = frozen(*[inputs[name] for name in names])
            return result if isinstance(result, dict) else dict(zip(keys, tf.nest.flatten(result)))

        # Only then: tf2onnx does not inline the frozen function's call when it holds control flow
        # (the sentiment LSTM's while loops), and models with only variables need no freezing.
        function = dataclasses.replace(item, function=call_frozen).tf_function()
    try:
        tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=ONNX_OPSET,
                                      output_path=str(output / FILES["onnx"]))
    except Exception as err:  # noqa: BLE001
        raise UserError(f"tf2onnx cannot convert this model: {str(err).splitlines()[0][:300]}") from None


# ----------------------------------------------------------------------------- running
def load_runner(fmt: str, folder: Path) -> Callable[[dict], dict]:
    """A function {input name: array} -> {output name: array} running the export in `folder`.

    Raises UserError when the files are missing or the runtime cannot load them.
    """
    folder = Path(folder)
    path = folder / FILES[fmt]
    if not path.exists():
        raise UserError(f"{path} not found: not a {fmt} export (run `dlapps export` first)")
    try:
        if fmt == "saved_model":
            import tensorflow as tf

            signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
            return lambda inputs: {k: v.numpy() for k, v in signature(
                **{name: tf.constant(value) for name, value in inputs.items()}).items()}
        if fmt == "litert":
            from ai_edge_litert.interpreter import Interpreter

            runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
            return lambda inputs: dict(runner(**inputs))
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return lambda inputs: dict(zip(names, session.run(None, inputs)))
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 (a damaged file fails in the runtime's own way)
        raise UserError(f"cannot load the {fmt} export {path}: {str(err).splitlines()[0][:300]}") from None


def _preprocessor(preprocessing: dict) -> Callable[[dict], dict]:
    """Raw inputs -> numeric export inputs, by the layers described in preprocessing.json."""
    import keras

    import dlapps.layers  # noqa: F401  (registers the project's layers and standardizers)

    layers = {name: (spec["input"], keras.layers.deserialize(spec["layer"]))
              for name, spec in preprocessing["layers"].items()}

    def apply(raw: dict) -> dict:
        out = {name: np.asarray(layer(raw[source])) for name, (source, layer) in layers.items()}
        out.update({name: raw[name] for name in preprocessing["passthrough"]})
        return out

    return apply


def _dtype_of(spec: dict) -> np.dtype:
    return np.dtype(object) if spec["dtype"] == "string" else np.dtype(spec["dtype"])


def _run(fmt: str, folder: Path, meta: dict, raw: dict) -> dict:
    """Outputs of the export in `folder` on raw inputs (through preprocessing.json when it has one)."""
    runner = load_runner(fmt, folder)
    inputs = raw
    if meta.get("preprocessing"):
        preprocessing = _read(folder / "preprocessing.json")
        try:
            inputs = _preprocessor(preprocessing)(raw)
        except Exception as err:  # noqa: BLE001
            raise UserError(f"{folder / 'preprocessing.json'} does not rebuild the preprocessing: "
                            f"{str(err).splitlines()[0][:200]}") from None
    specs = meta["inputs"]
    inputs = {name: np.asarray(inputs[name]).astype(_dtype_of(specs[name])) for name in specs}
    if meta.get("batch_size") == 1:
        rows = [runner({k: v[i: i + 1] for k, v in inputs.items()}) for i in range(len(next(iter(inputs.values()))))]
        return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    return runner(inputs)


def _read(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from None


# ----------------------------------------------------------------------------- parity
def sample_inputs(task_name: str, model, cfg, check_data: str | Path | None = None,
                  size: int = SAMPLE_SIZE) -> dict[str, np.ndarray]:
    """Raw inputs of the `.keras` model for the parity check, as {name: array}.

    The task's own data (the model's data source; the task's embedded data when that file is
    not on this machine) or the whole of `check_data`. GAN: seeded latents and every label.
    """
    if task_name == "gan":
        generator = model.sampler
        latents = np.random.default_rng(0).standard_normal((size, generator.inputs[0].shape[-1])).astype("float32")
        inputs = {"latent": latents}
        if len(generator.inputs) > 1:
            classes = generator.get_layer("label_embedding").input_dim
            inputs["label"] = (np.arange(size) % classes).astype("int32")
        return inputs
    from dlapps.task import get_task

    task = get_task(task_name)
    if check_data is not None:
        if not Path(check_data).exists():
            raise UserError(f"--check-data {check_data}: file not found")
        data = task.load_data(dataclasses.replace(cfg, source="file", data=str(check_data),
                                                  val_fraction=0.0, test_fraction=0.0))
        dataset, size = data.train, None
    else:
        try:
            data = task.load_data(cfg)
        except UserError:  # the model's data file is not here: the task's embedded data
            defaults = task.config()
            data = task.load_data(dataclasses.replace(cfg, source=defaults.source, data=defaults.data))
        dataset = data.test
    if size is not None:
        dataset = dataset.take(size)
    batches = [x for x, _ in dataset.batch(256)]
    if not batches:
        raise UserError("no examples to check the export on")
    import keras

    def stack(parts):
        return np.concatenate([np.asarray(p) for p in parts])

    first = batches[0]
    if isinstance(first, dict):
        inputs = {name: stack([b[name] for b in batches]) for name in first}
    else:
        inputs = {model.inputs[0]._keras_history.operation.name: stack(batches)}
    # A table's columns are (n,) in the dataset and (n, 1) model inputs.
    shapes = {t._keras_history.operation.name: t.shape for t in keras.tree.flatten(model.inputs)}
    return {name: value.reshape((len(value), *shapes[name][1:])) if name in shapes else value
            for name, value in inputs.items()}


def _labels(task_name: str, model, outputs: dict) -> np.ndarray | None:
    """Predicted labels of a classifier's outputs (argmax, or its decision threshold), else None."""
    if task_name in ("mnist", "imagenet"):
        return np.asarray(next(iter(outputs.values()))).argmax(axis=-1)
    if task_name in ("spam", "sentiment"):
        threshold = 0.5
        if task_name == "spam" and any(layer.name == "decision_threshold" for layer in model.layers):
            threshold = float(model.get_layer("decision_threshold").threshold)
        return np.asarray(next(iter(outputs.values()))).reshape(-1) >= threshold
    return None


def compare(task_name: str, model, reference: dict, exported: dict) -> dict:
    """Parity figures: max absolute difference, elements out of tolerance, label agreement."""
    report: dict[str, Any] = {"tolerance": f"|export - keras| <= {ATOL:g} + {RTOL:g} * |keras|",
                              "outputs": {}}
    ok = True
    for name, ref in reference.items():
        if name not in exported:
            raise UserError(f"the export has no output {name!r} (it has {', '.join(exported)})")
        ref, got = np.asarray(ref), np.asarray(exported[name])
        if ref.dtype.kind in "OSU":
            ref = np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else s, otypes=[object])(ref)
            got = np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else s, otypes=[object])(got)
            equal = (ref == got).reshape(len(ref), -1).all(axis=1) if ref.shape == got.shape else np.zeros(len(ref), bool)
            report["outputs"][name] = {"agreement": float(equal.mean())}
            ok &= bool(equal.all())
            continue
        if ref.shape != got.shape:
            got = got.reshape(ref.shape) if got.size == ref.size else got
        if ref.shape != got.shape:
            raise UserError(f"output {name!r}: the export returns shape {got.shape}, the model {ref.shape}")
        difference = np.abs(got.astype("float64") - ref.astype("float64"))
        bad = ~(difference <= ATOL + RTOL * np.abs(ref.astype("float64")))
        report["outputs"][name] = {"max_abs_difference": float(difference.max()) if difference.size else 0.0,
                                   "out_of_tolerance": int(bad.sum())}
        ok &= not bad.any()
    labels_ref, labels_got = _labels(task_name, model, reference), _labels(task_name, model, exported)
    if labels_ref is not None:
        report["label_agreement"] = float(np.mean(labels_ref == labels_got))
    report["examples"] = int(len(next(iter(reference.values()))))
    report["passed"] = bool(ok)
    return report


def _reference(task_name: str, model, raw: dict, fmt: str = "saved_model") -> dict:
    """The `.keras` model's outputs on `raw`, computed as the export's function computes them."""
    import tensorflow as tf

    if task_name == "translation":
        return _numeric_reference(model, raw) if fmt != "saved_model" else _translation_reference(model, raw)
    item = servable(task_name, model, "saved_model")
    names = list(item.specs)
    result = item.function(**{name: tf.constant(raw[name]) for name in names})
    return {k: np.asarray(v) for k, v in result.items()}


def check_export(task_name: str, model_path: str | Path, folder: str | Path,
                 check_data: str | Path | None = None) -> dict:
    """Reload the export in `folder` in its runtime and compare it with the `.keras` model.

    Returns the parity report (see `compare`); raises UserError when an output is out of
    tolerance, a string output differs, or the export cannot be loaded.
    """
    from dlapps import runs
    from dlapps.task import get_task

    folder = Path(folder)
    meta = _read(folder / "export.json")
    fmt = meta.get("format")
    if fmt not in FORMATS:
        raise UserError(f"{folder / 'export.json'}: unknown format {fmt!r}")
    _require(fmt)
    task = get_task(task_name)
    path = runs.find_model(task.name, model_path)
    model, _ = runs.load_model(path)
    cfg, _ = runs.model_config(task, path)
    reports = _check(task.name, model, cfg, fmt, folder, meta, check_data)
    _raise_if_failed(fmt, folder, reports)
    return reports


def _check(task_name, model, cfg, fmt, folder, meta, check_data, sample=None) -> dict:
    """Parity reports {"task data": ..., "check data": ...} of the export in `folder` (no raising)."""
    sets = {"task data": sample if sample is not None else sample_inputs(task_name, model, cfg)}
    if check_data is not None:
        sets["check data"] = sample_inputs(task_name, model, cfg, check_data)
    reports = {}
    for label, inputs in sets.items():
        reference = _reference(task_name, model, inputs, fmt)
        reports[label] = compare(task_name, model, reference, _run(fmt, folder, meta, inputs))
    return reports


def _raise_if_failed(fmt: str, folder: Path, reports: dict) -> None:
    failed = [label for label, report in reports.items() if not report["passed"]]
    if failed:
        figures = reports[failed[0]]
        raise UserError(f"the {fmt} export in {folder} disagrees with the .keras model on the {failed[0]} "
                        f"({json.dumps(figures['outputs'])}; tolerance {figures['tolerance']})")


def _numeric_reference(model, raw: dict) -> dict:
    """The translator's next-token logits on (source, target) pairs: what its numeric export returns."""
    import tensorflow as tf

    logits = model({"source": tf.constant(raw["source"]), "target": tf.constant(raw["target"])}, training=False)
    return {_output_names(model)[0]: np.asarray(logits)}


def _describe(specs: dict, batch_size: int | None = None) -> dict:
    return {name: {"shape": [batch_size, *(None if d is None else int(d) for d in spec.shape[1:])],
                   "dtype": spec.dtype.name} for name, spec in specs.items()}


def export_model(task_name: str, model_path: str | Path | None, fmt: str, output: str | Path | None = None,
                 overwrite: bool = False, check_data: str | Path | None = None) -> dict:
    """Export a trained model of `task_name` to `fmt` in `output` and check it; returns export.json.

    `model_path`: a `.keras` file or a folder with model.keras (None: the task's default model,
    see `runs.find_model`). `output` defaults to exports/<task>/<format>/; an existing non-empty
    folder is replaced only with `overwrite`. Raises UserError for an unknown format, a missing
    runtime (naming the `export` extra), a model that cannot be converted, or a failed parity
    check (the files stay for inspection; export.json records the figures).
    """
    from dlapps import runs
    from dlapps.task import get_task

    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")
    _require(fmt)
    task = get_task(task_name)
    path = runs.find_model(task.name, model_path)
    if path is None:
        raise UserError(f"no trained {task.name} model found; train one or pass --model PATH")
    model, info = runs.load_model(path)
    cfg, _ = runs.model_config(task, path)
    output = runs.writable_dir(Path(output) if output else Path("exports") / task.name / fmt, overwrite)

    item = servable(task.name, model, fmt)
    if fmt == "saved_model":
        _write_saved_model(item, output)
    elif fmt == "litert":
        item = _write_litert(item, output)
    else:
        _write_onnx(item, output)
    if item.preprocessing:
        runs.write_json(output / "preprocessing.json", item.preprocessing)
    sample = sample_inputs(task.name, model, cfg)
    reference = _reference(task.name, model, {name: value[:2] for name, value in sample.items()}, fmt)
    meta = {"task": task.name, "format": fmt, "file": FILES[fmt], "model": str(path), "output": str(output),
            "runtime": runtime_versions(fmt), "inputs": _describe(item.specs, item.batch_size),
            "outputs": {name: {"shape": [None, *value.shape[1:]],
                               "dtype": "string" if value.dtype.kind in "OSU" else value.dtype.name}
                        for name, value in reference.items()},
            "batch_size": item.batch_size,
            "preprocessing": "preprocessing.json" if item.preprocessing else None,
            "notes": _notes(task.name, fmt, item)}
    runs.write_json(output / "export.json", meta)
    meta["parity"] = _check(task.name, model, cfg, fmt, output, meta, check_data, sample)
    runs.write_json(output / "export.json", meta)
    _raise_if_failed(fmt, output, meta["parity"])
    return meta


def _notes(task_name: str, fmt: str, item: Servable) -> str:
    notes = []
    if item.preprocessing:
        notes.append("Numeric part only: the string preprocessing is in preprocessing.json "
                     "(Keras layer configs with vocabularies); apply it to raw inputs first.")
    if item.batch_size == 1:
        notes.append("Batch size 1: LiteRT converts the recurrent layer's tensor lists only with a static batch.")
    if task_name == "translation" and fmt == "saved_model":
        notes.append("Greedy decoding in the graph; `translation` joins tokens with spaces (dlapps' "
                     "detokenizer also removes spaces before punctuation).")
    if task_name == "translation" and fmt != "saved_model":
        notes.append("One decoder pass: (source ids, target ids) -> next-token logits; run the decoding "
                     "loop (start with [start], stop at [end]) around it.")
    if task_name == "gan":
        notes.append("The generator that samples (moving average of its weights when kept): latent "
                     "(standard normal) and label -> pixels 0..255.")
    return " ".join(notes)


def summary(meta: dict) -> str:
    """What `dlapps export` prints: the files written and the parity figures, a line each."""
    lines = [f"wrote {Path(meta['output']) / meta['file']} and export.json"
             + (" + preprocessing.json" if meta.get("preprocessing") else "")]
    for label, report in meta.get("parity", {}).items():
        figures = ", ".join(
            f"{name}: max |diff| {o['max_abs_difference']:.2g}" if "max_abs_difference" in o
            else f"{name}: {o['agreement']:.0%} equal" for name, o in report["outputs"].items())
        agreement = f", labels agree {report['label_agreement']:.1%}" if "label_agreement" in report else ""
        lines.append(f"parity on {report['examples']} examples of the {label}: {figures}{agreement} "
                     f"(tolerance {report['tolerance']}): {'passed' if report['passed'] else 'FAILED'}")
    if meta.get("notes"):
        lines.append(meta["notes"])
    return "\n".join(lines)


def card_section(metas: list[dict]) -> str:
    """The "Exports" section of a model card: one table row per format with its parity figures."""
    rows = []
    for meta in metas:
        report = meta["parity"]["task data"]
        figures = "; ".join(f"{name} {o['max_abs_difference']:.2g}" if "max_abs_difference" in o
                            else f"{name} {o['agreement']:.0%} equal" for name, o in report["outputs"].items())
        labels = f"{report['label_agreement']:.0%}" if "label_agreement" in report else "-"
        inputs = ", ".join(f"{name} {spec['dtype']} ({', '.join('n' if d is None else str(d) for d in spec['shape'])})"
                           for name, spec in meta["inputs"].items())
        if len(inputs) > 90:
            inputs = f"{len(meta['inputs'])} tensors ({', '.join(sorted({s['dtype'] for s in meta['inputs'].values()}))})"
        rows.append(f"| `{meta['format']}` | {inputs} | {figures} | {labels} | {report['examples']} |")
    by_note: dict[str, list[str]] = {}
    for meta in metas:
        if meta.get("notes"):
            by_note.setdefault(meta["notes"], []).append(f"`{meta['format']}`")
    notes = [f"{', '.join(formats)}: {note}" for note, formats in by_note.items()]
    runtime = {k: v for meta in metas for k, v in meta["runtime"].items() if k != "python"}
    return ("## Exports\n\n`dlapps export TASK --format saved_model|litert|onnx` writes the model in each format "
            "and checks it in its own runtime against this model on the task's data "
            f"(tolerance |export - keras| <= {ATOL:g} + {RTOL:g}·|keras| elementwise):\n\n"
            "| format | inputs | max abs difference (output units) | labels agree | examples |\n|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n\n"
            + "".join(f"- {note}\n" for note in notes)
            + f"- Measured with {', '.join(f'{k} {v}' for k, v in runtime.items())}.\n")
