"""The translation task: learning the embedded task, decoding, save/load, loaders offline, bad input."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import dlapps
from dlapps import config, runs, training
from dlapps.errors import UserError
from dlapps.runtime import Runtime
from dlapps.tasks.translation import data as data_lib
from dlapps.tasks.translation.decoding import beam_search, greedy
from dlapps.tasks.translation.inference import TruncationWarning, cross_attention, translate
from dlapps.tasks.translation.text import detokenize, generated_pairs, number_in_words, python_tokens

TASK = dlapps.get_task("translation")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One smoke-profile run on the embedded task, under MirroredStrategy with 2 logical CPUs."""
    import keras

    keras.utils.set_random_seed(7)
    root = tmp_path_factory.mktemp("translation")
    cfg = config.resolve(TASK, "smoke")
    result = training.train(TASK, cfg, Runtime(strategy="mirrored", devices="cpu:2"),
                            runs_root=root / "runs", saved_models_root=root / "saved", quiet=True)
    return cfg, result


# ----------------------------------------------------------------------------- learning
def test_smoke_training_learns_the_embedded_task(trained):
    cfg, result = trained
    assert result.metrics["replicas"] == 2
    # Chance of writing a whole number right by guessing digits is ~0; the model must really read it.
    assert result.metrics["test"]["exact_match"] > 0.5, result.metrics
    assert result.metrics["test"]["chrf"] > 60
    assert result.history["loss"][-1] < 0.5 * result.history["loss"][0]
    assert (result.run_dir / "plots" / "attention.png").exists()


def test_greedy_equals_beam_search_with_one_beam(trained):
    cfg, result = trained
    model = result.model
    sentences = [number_in_words(n) for n in (7, 42, 300, 5_019, 71_640, 999_999)]
    source_ids = np.asarray(model.get_layer("source_vectorizer")(np.array(sentences, dtype=object))).astype("int32")
    vocabulary = model.get_layer("target_vectorizer").get_vocabulary()
    start, end = vocabulary.index("[start]"), vocabulary.index("[end]")
    transformer = model.get_layer("transformer")
    by_greedy = greedy(transformer, source_ids, start, end, cfg.max_length)
    by_beam = beam_search(transformer, source_ids, start, end, cfg.max_length, beam_size=1)
    np.testing.assert_array_equal(by_greedy, by_beam)
    # Wider beams decode the same batch too, one translation per sentence, made of digits.
    wide = translate(model, sentences, beam_size=4)
    assert len(wide) == len(sentences) and sum(t.isdigit() for t in wide) >= len(sentences) - 1


def test_save_load_round_trip_on_raw_strings(trained, tmp_path):
    cfg, result = trained
    path = tmp_path / "model.keras"
    result.model.save(path)
    loaded, _ = runs.load_model(path)
    sentences = ["forty-two", "seven hundred and five thousand three hundred twelve", "nineteen"]
    assert translate(loaded, sentences) == translate(result.model, sentences)
    assert translate(loaded, sentences, beam_size=3) == translate(result.model, sentences, beam_size=3)
    lines = TASK.predict(loaded, sentences, {}, cfg, {})
    assert lines == translate(result.model, sentences, cfg.beam_size)


def test_a_fresh_process_loads_the_run_without_importing_the_task(trained):
    """load_model imports the task named in the run's config.json (its losses are registered there)."""
    import subprocess
    import sys

    _, result = trained
    code = ("from dlapps.runs import load_model; import sys; "
            f"model, info = load_model({str(result.run_dir)!r}); "
            "assert 'dlapps.tasks.translation' in sys.modules; print(type(model).__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("Functional")


def test_attention_heatmap_rows_are_distributions(trained):
    _, result = trained
    source_tokens, output_tokens, weights = cross_attention(result.model, "three hundred twelve")
    assert source_tokens == ["three", "hundred", "twelve"]
    assert weights.shape == (len(output_tokens), 3)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-4)


# ----------------------------------------------------------------------------- bad input
def test_empty_sentence_is_a_clear_error(trained):
    cfg, result = trained
    with pytest.raises(UserError, match="empty sentence"):
        TASK.predict(result.model, ["forty", "   "], {}, cfg, {})
    with pytest.raises(UserError, match="give sentences"):
        TASK.predict(result.model, [], {}, cfg, {})


def test_too_long_sentence_is_truncated_with_a_warning(trained, capsys):
    cfg, result = trained
    long_sentence = " ".join(["seven"] * (cfg.max_length + 5))
    with pytest.warns(TruncationWarning, match="truncated"):
        out = translate(result.model, [long_sentence])
    assert len(out) == 1
    TASK.predict(result.model, [long_sentence], {}, cfg, {})
    assert "truncated" in capsys.readouterr().err


def test_mismatched_line_counts(tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n")
    (tmp_path / "a.de").write_text("eins\nzwei\n")
    cfg = TASK.config(data=f"{tmp_path / 'a.en'},{tmp_path / 'a.de'}", source="file")
    with pytest.raises(UserError, match="mismatched line counts: a.en has 3 lines, a.de has 2"):
        TASK.load_data(cfg)


def test_unknown_language_codes(tmp_path):
    with pytest.raises(UserError, match="unknown language code 'xx' for multi30k; available: en, de, fr"):
        TASK.load_data(TASK.config(source="multi30k", source_lang="xx"))
    with pytest.raises(UserError, match="unknown language code 'English'"):
        TASK.load_data(TASK.config(source="multi30k", source_lang="English"))
    with pytest.raises(UserError, match="for ted_hrlr_translate"):
        TASK.load_data(TASK.config(source="ted_hrlr", source_lang="zz", target_lang="en"))
    _write_corpus(tmp_path, {"en": ["a"], "de": ["b"]})
    with pytest.raises(UserError, match="unknown language code 'fr' for folder .*available: de, en"):
        TASK.load_data(TASK.config(data=str(tmp_path), source="file", target_lang="fr"))


def test_unknown_source():
    with pytest.raises(UserError, match="unknown source 'nope'"):
        TASK.load_data(TASK.config(source="nope"))


# ----------------------------------------------------------------------------- loaders, offline
def _write_corpus(folder: Path, sides: dict[str, list[str]], split: str = "train") -> None:
    for lang, lines in sides.items():
        with gzip.open(folder / f"{split}.{lang}.gz", "wt", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


EN = ["A man rides a bike.", "Two dogs play in the snow.", "A girl reads a book.", "", "A man reads."]
DE = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Ein Mädchen liest ein Buch.", "Leer.",
      "Ein Mann liest."]


def test_folder_of_parallel_files(tmp_path):
    _write_corpus(tmp_path, {"en": EN, "de": DE})
    _write_corpus(tmp_path, {"en": EN[:2], "de": DE[:2]}, split="val")
    data = TASK.load_data(TASK.config(data=str(tmp_path), source="file", min_count=1))
    info = data.info
    assert info["train_size"] == 4 and info["dropped_empty_pairs"] == 1  # the pair with an empty side
    assert info["val_size"] == 2 and "test = validation" in info["source_description"]
    assert "Fahrrad" in info["target_vocabulary"] and "." in info["target_vocabulary"]
    (inputs, labels), = data.val.take(1).as_numpy_iterator()
    assert inputs["source"].decode() == EN[0] and labels.shape == (40,)
    vocabulary = ["", "[UNK]"] + info["target_vocabulary"]
    words = [vocabulary[i] for i in labels if i]
    assert words == ["Ein", "Mann", "fährt", "Fahrrad", ".", "[end]"]
    # The other direction, from the same folder.
    reverse = TASK.load_data(TASK.config(data=str(tmp_path), source="file", source_lang="de", target_lang="en",
                                         min_count=1))
    assert next(reverse.val.as_numpy_iterator())[0]["source"].decode() == DE[0]


def test_two_parallel_files_and_tsv(tmp_path):
    (tmp_path / "x.en").write_text("\n".join(EN[:3]) + "\n", encoding="utf-8")
    (tmp_path / "x.de").write_text("\n".join(DE[:3]) + "\n", encoding="utf-8")
    cfg = TASK.config(data=f"{tmp_path / 'x.en'},{tmp_path / 'x.de'}", source="file",
                      val_fraction=0.0, test_fraction=0.0)
    data = TASK.load_data(cfg)
    assert data.info["train_size"] == 3
    # Anki/Tatoeba: English<TAB>German<TAB>attribution; German -> English via tsv_order.
    anki = tmp_path / "deu.txt"
    anki.write_text("Go.\tGeh.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\nHi.\tHallo!\tCC-BY\n",
                    encoding="utf-8")
    pairs = data_lib.read_tsv(anki, TASK.config(tsv_order="target_source"))
    assert pairs == [("Geh.", "Go."), ("Hallo!", "Hi.")]
    with_header = tmp_path / "pairs.tsv"
    with_header.write_text("de\ten\nHallo!\tHi.\n", encoding="utf-8")
    assert data_lib.read_tsv(with_header, TASK.config()) == [("Hi.", "Hallo!")]  # en -> de by the header
    broken = tmp_path / "broken.tsv"
    broken.write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 1: expected 'source<TAB>target'"):
        data_lib.read_tsv(broken, TASK.config())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_folder(tmp_path):
    """(folder served at http://127.0.0.1:PORT/, base URL): a throwaway local web server."""
    folder = tmp_path / "www"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_multi30k_download_is_checksummed(http_folder, tmp_path, monkeypatch):
    folder, base = http_folder
    _write_corpus(folder, {"en": EN, "de": DE})
    _write_corpus(folder, {"en": EN[:2], "de": DE[:2]}, split="val")
    sums = {f"{s}.{lang}": hashlib.sha256((folder / f"{s}.{lang}.gz").read_bytes()).hexdigest()
            for s in ("train", "val") for lang in ("en", "de")}
    monkeypatch.setenv("DLAPPS_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(data_lib, "MULTI30K_URL", base + "/{split}.{lang}.gz")
    monkeypatch.setattr(data_lib, "MULTI30K_SHA256", sums)
    data = TASK.load_data(TASK.config(source="multi30k", min_count=1))
    assert data.info["train_size"] == 4 and data.info["val_size"] == 2
    assert "Multi30k" in data.info["source_description"]
    monkeypatch.setattr(data_lib, "MULTI30K_SHA256", {**sums, "val.de": "0" * 64})
    with pytest.raises(UserError, match="checksum mismatch"):
        TASK.load_data(TASK.config(source="multi30k", min_count=1))


def test_ted_talks_from_tfds_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        data = TASK.load_data(TASK.config(source="ted_hrlr", source_lang="pt", target_lang="en", min_count=1))
    assert data.info["train_size"] == 12 and data.info["test_size"] == 12
    assert "ted_hrlr_translate" in data.info["source_description"]


def test_pinned_multi30k_checksums_match_the_shared_files(shared_data):
    from dlapps.data.download import sha256sum

    for name, digest in data_lib.MULTI30K_SHA256.items():
        assert sha256sum(shared_data / "multi30k" / f"{name}.gz") == digest, name


# ----------------------------------------------------------------------------- text helpers
@pytest.mark.parametrize("text", [
    "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
    'Ein Mann sagt "Hallo" zu 3,5 Leuten (heute).',
    "A man's T-Shirt, 2019!",
])
def test_detokenize_inverts_tokenization(text):
    assert detokenize(python_tokens(text)) == text


def test_tensorflow_and_python_tokenization_agree():
    import tensorflow as tf

    from dlapps.tasks.translation.text import standardize

    texts = ['Ein Mann sagt "Hallo" zu 3,5 Leuten (heute).', "  two   spaces , 12:30 ", "Zwei Männer."]
    for text in texts:
        assert standardize(tf.constant(text)).numpy().decode().split(" ") == python_tokens(text)


def test_generated_pairs_are_correct_numbers():
    pairs = generated_pairs(200, seed=3)
    assert number_in_words(0) == "zero" and number_in_words(700_005, None).startswith("seven hundred thousand")
    words_to_number = {w: i for i, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven",
                                                    "eight", "nine"])}
    for words, digits in pairs:
        assert digits.isdigit() and 0 <= int(digits) < 1_000_000 and words
    assert words_to_number[number_in_words(9)] == 9
    assert len({d for _, d in pairs}) > 150  # varied


def test_saved_model_translates(shared_data):
    """The committed Multi30k model (if present) gives a sensible German sentence."""
    saved = REPO / "saved_models" / "translation" / "model.keras"
    if not saved.exists():
        pytest.skip("no saved_models/translation/model.keras")
    model, info = runs.load_model(saved)
    out = translate(model, ["A man is riding a bicycle.", "Two dogs are playing in the snow."])
    assert "Mann" in out[0] and "Fahrrad" in out[0], out
    assert "Hunde" in out[1] and "Schnee" in out[1], out
    metrics = json.loads((saved.parent / "metrics.json").read_text())
    assert metrics["val"]["bleu"] >= 32


# ----------------------------------------------------------------------------- WordPiece tokenizer
WP_TRAIN_DE = ["Ein Mann fährt Fahrrad.", "Zwei Männer tragen Helme.", "Ein Radfahrer trägt einen Helm, 2019!",
               'Die Frau sagt "Hallo" zu 3,5 Kindern (heute).', "Ein Mädchen fährt Rad.", "Große Hunde spielen."]


def test_wordpiece_vocabulary_is_learned_on_the_training_split_only(tmp_path):
    en = ["A man rides a bike.", "Two men wear helmets.", "A cyclist wears a helmet, 2019!",
          'The woman says "hello" to 3.5 children (today).', "A girl rides.", "Big dogs play."]
    _write_corpus(tmp_path, {"en": en, "de": WP_TRAIN_DE})
    _write_corpus(tmp_path, {"en": ["Quiet zebras jump."], "de": ["Qualvolle Yaks jubeln."]}, split="val")
    data = TASK.load_data(TASK.config(data=str(tmp_path), source="file", tokenizer="wordpiece", subword_vocab=300))
    info = data.info
    assert info["tokenizer"] == "wordpiece" and info["val_size"] == 1
    for side, unseen in (("source", "Qzj"), ("target", "QvYj")):
        vocabulary = info[f"{side}_vocabulary"]
        assert 0 < len(vocabulary) <= 300 - 2, side  # padding and [UNK] complete the 300
        # These letters occur only in the validation sentences: no piece may contain them.
        assert not any(c in piece for piece in vocabulary for c in unseen), side
    assert info["target_vocabulary"][:2] == ["[start]", "[end]"] and "##a" in info["target_vocabulary"]
    # Labels are WordPiece ids; the three words with letters never seen in training become [UNK].
    (inputs, labels), = data.val.take(1).as_numpy_iterator()
    vocabulary = ["", "[UNK]"] + info["target_vocabulary"]
    tokens = [vocabulary[i] for i in labels if i]
    assert tokens[-2:] == [".", "[end]"] and tokens.count("[UNK]") == 3, tokens


def test_wordpiece_round_trip_punctuation_digits_umlauts_and_unseen_compounds():
    from dlapps.tasks.translation import subword

    vocabulary = subword.learn_wordpiece(WP_TRAIN_DE * 3, 120, reserved=("[start]", "[end]"))
    layer = subword.vectorizer("wordpiece", vocabulary, 48, target=True)
    id_to_token = layer.get_vocabulary()
    texts = ['Die Frau sagt "Hallo" zu 3,5 Kindern (heute).', "Große Männer, 2019!",
             "Fahrradhelme tragen Mädchen!"]  # "Fahrradhelme" never occurs in training
    ids = np.asarray(layer(np.array(texts, dtype=object)))
    for text, row in zip(texts, ids):
        tokens = [id_to_token[i] for i in row if i]
        assert tokens[0] == "[start]" and tokens[-1] == "[end]"
        assert "[UNK]" not in tokens
        assert subword.tokens_to_text(tokens[1:-1], "wordpiece") == text
    compound = [id_to_token[i] for i in ids[2] if i][1:]
    assert compound[0] == "Fahrrad" and compound[1].startswith("##"), compound  # spelt from known pieces
    assert subword.wordpieces_to_words(["Fahr", "##rad", "##helme", ",", "2", "0"]) == ["Fahrradhelme", ",", "2", "0"]
    # Token counts (for the truncation warning) count pieces, without the markers.
    assert subword.token_counts(layer, texts[1:2]) == [len(ids[1][ids[1] > 0]) - 2]


def test_bad_tokenizer_settings_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="tokenizer 'bpe': choose word .* or wordpiece"):
        TASK.load_data(TASK.config(tokenizer="bpe"))
    _write_corpus(tmp_path, {"en": EN, "de": DE})
    with pytest.raises(UserError, match=r"subword_vocab=20 is too small: .* characters.*--set subword_vocab="):
        TASK.load_data(TASK.config(data=str(tmp_path), source="file", tokenizer="wordpiece", subword_vocab=20))


@pytest.fixture(scope="module")
def trained_wordpiece(tmp_path_factory):
    """A smoke run with tokenizer=wordpiece (a small vocabulary, so longer numbers come in pieces)."""
    import keras

    keras.utils.set_random_seed(7)
    root = tmp_path_factory.mktemp("translation_wordpiece")
    cfg = config.resolve(TASK, "smoke", {"tokenizer": "wordpiece", "subword_vocab": 100, "max_length": 24})
    result = training.train(TASK, cfg, Runtime(), runs_root=root / "runs", saved_models_root=root / "saved",
                            quiet=True)
    return cfg, result


def test_smoke_training_with_wordpiece_learns_the_embedded_task(trained_wordpiece):
    cfg, result = trained_wordpiece
    info = json.loads((result.run_dir / "info.json").read_text())
    assert info["tokenizer"] == "wordpiece" and len(info["source_vocabulary"]) <= 98
    assert any(piece.startswith("##") and len(piece) > 3 for piece in info["source_vocabulary"])  # real subwords
    assert result.metrics["test"]["exact_match"] > 0.5, result.metrics  # guessing whole numbers: ~0
    assert result.history["loss"][-1] < 0.5 * result.history["loss"][0]


def test_wordpiece_model_save_load_round_trip_on_raw_strings(trained_wordpiece, tmp_path):
    from dlapps.tasks.translation.subword import WordPieceVectorizer

    cfg, result = trained_wordpiece
    path = tmp_path / "model.keras"
    result.model.save(path)
    loaded, _ = runs.load_model(path)
    assert isinstance(loaded.get_layer("source_vectorizer"), WordPieceVectorizer)
    sentences = ["forty-two", "seven hundred and five thousand three hundred twelve", "nineteen"]
    greedy_out = translate(loaded, sentences)
    assert greedy_out == translate(result.model, sentences)
    assert translate(loaded, sentences, beam_size=3) == translate(result.model, sentences, beam_size=3)
    assert all(t.isdigit() for t in greedy_out)
    assert TASK.predict(loaded, sentences, {}, cfg, {}) == greedy_out


def test_accelerated_export_uses_the_models_wordpiece_ids(trained_wordpiece, tmp_path):
    from dlapps.tasks.translation import accelerated

    cfg, result = trained_wordpiece
    accelerated.export(tmp_path, "smoke", {"tokenizer": "wordpiece", "subword_vocab": 100, "max_length": 24})
    arrays = np.load(tmp_path / "arrays.npz")
    refs = json.loads((tmp_path / "test.refs.json").read_text())
    model = result.model  # same seed and config: the same data, vocabularies and ids
    expected = np.asarray(model.get_layer("source_vectorizer")(np.array(refs["source"][:50], dtype=object)))
    np.testing.assert_array_equal(arrays["test_source_ids"][:50], expected)
    expected = np.asarray(model.get_layer("target_vectorizer")(np.array(refs["target"][:50], dtype=object)))
    np.testing.assert_array_equal(arrays["test_target_ids"][:50], expected)


# ----------------------------------------------------------------------------- accelerated path
def test_accelerated_fit_keeps_the_best_greedy_weights_and_assemble_writes_a_run(tmp_path):
    """fit: training.fit_phases on token arrays, greedy scores every 2 epochs, the best weights kept;
    assemble: the string-in model with those weights, a normal run directory and a model card."""
    import keras

    from dlapps.tasks.translation import accelerated

    keras.utils.set_random_seed(7)
    exported, out, run_dir, saved = tmp_path / "export", tmp_path / "out", tmp_path / "run", tmp_path / "saved"
    accelerated.export(exported, "smoke", {"embedded_pairs": "1500"})
    fitted = accelerated.fit(exported, out, epochs=4, eval_every=2, sets={})
    history = fitted["history"]
    assert history["phase"] == ["train"] * 4 and history["loss"][-1] < history["loss"][0]
    scored = history["val_greedy_chrf"]
    assert scored[0] is None and scored[2] is None and scored[1] is not None and scored[3] is not None
    assert sorted(p.name for p in out.glob("weights_*.npz")) == ["weights_0.npz"]
    metrics = accelerated.assemble(exported, out, run_dir, save=True, overwrite=False, saved_models_root=saved)
    # The assembled model decodes the validation sentences as the best epoch did (greedy, beam_size 1).
    assert metrics["val"]["chrf"] == pytest.approx(max(scored[1], scored[3]), abs=0.5)
    assert metrics["epochs"] == 4 and metrics["replicas"] == 1
    for name in ("model.keras", "metrics.json", "info.json", "config.json", "history.csv",
                 "plots/learning_curves.png", "plots/attention.png"):
        assert (run_dir / name).exists(), name
    header = (run_dir / "history.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "val_loss", "val_greedy_bleu", "val_greedy_chrf"} <= set(header)
    card = (saved / "translation" / "README.md").read_text()
    assert f"({fitted['hardware']}, Keras {fitted['backend']} backend, by dlapps.tasks.translation.accelerated)" in card
    assert TASK.model_notes in card
    loaded, _ = runs.load_model(saved / "translation")
    assert translate(loaded, ["forty-two"]) == translate(runs.load_model(run_dir)[0], ["forty-two"])
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        accelerated.assemble(exported, out, run_dir, save=False, overwrite=False)


def test_accelerated_fit_runs_on_jax_without_tensorflow(tmp_path):
    """The point of the accelerated path: `fit` on a machine whose Python has JAX but no TensorFlow."""
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    from dlapps.tasks.translation import accelerated

    accelerated.export(tmp_path / "export", "smoke", {"embedded_pairs": "600"})
    code = ("import sys\n"
            "class NoTensorFlow:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('tensorflow', 'tensorflow_text', 'tf_keras'):\n"
            "            raise ImportError(f'{name} is blocked: this machine has no TensorFlow')\n"
            "sys.meta_path.insert(0, NoTensorFlow())\n"
            "from dlapps.tasks.translation import accelerated\n"
            f"sys.exit(accelerated.main(['fit', {str(tmp_path / 'export')!r}, {str(tmp_path / 'out')!r}, "
            "'--epochs', '2', '--eval-every', '1']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "KERAS_BACKEND": "jax"}, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    fitted = json.loads((tmp_path / "out" / "fit.json").read_text())
    assert fitted["backend"] == "jax" and len(fitted["history"]["loss"]) == 2


# ----------------------------------------------------------------------------- beam search on a hand-built model
class _TableModel:
    """A 'transformer' whose next-token distribution is a table over prefixes (ids: 1 [start], 2 [end], 3, 4).

    `decoding` asks it for its encoder, decoder and logits layers; the decoder's hidden state at
    position t encodes the prefix tokens[:t+1], the projection looks its distribution up.
    """

    VOCAB = 5

    def __init__(self, table: dict[tuple[int, ...], dict[int, float]], default: dict[int, float]):
        self.table, self.default = table, default

    def get_layer(self, name):
        return {"encoder": lambda ids, training=False: np.zeros((len(np.asarray(ids)), 1, 1), "float32"),
                "decoder": self._decoder, "logits": self._logits}[name]

    def _decoder(self, inputs, training=False):
        tokens = np.asarray(inputs[0])
        codes = np.zeros(tokens.shape + (1,), "float64")
        for t in range(tokens.shape[1]):  # prefix tokens[:t+1] in base 8
            codes[:, t, 0] = (codes[:, t - 1, 0] * 8 if t else 0) + tokens[:, t]
        return codes

    def _prefix(self, code: float) -> tuple[int, ...]:
        code, prefix = int(code), []
        while code:
            code, token = divmod(code, 8)
            prefix.insert(0, token)
        return tuple(prefix[1:])  # without [start]

    def _logits(self, hidden):
        rows = []
        for code in np.asarray(hidden)[:, 0]:
            probs = self.table.get(self._prefix(code), self.default)
            rows.append([np.log(probs.get(token, 1e-12)) for token in range(self.VOCAB)])
        return np.asarray(rows, "float32")

    def exhaustive(self, max_length: int, length_penalty: float) -> list[int]:
        """The best sequence by log-probability / length**length_penalty over every sequence."""
        import itertools

        best, best_score = None, -np.inf
        for length in range(1, max_length + 1):
            for sequence in itertools.product((2, 3, 4), repeat=length):
                if 2 in sequence[:-1] or (sequence[-1] != 2 and length < max_length):
                    continue  # [end] only last; an unfinished one only when cut at max_length
                log_prob = sum(np.log(self.table.get(sequence[:i], self.default).get(token, 1e-12))
                               for i, token in enumerate(sequence))
                score = log_prob / length ** length_penalty
                if score > best_score:
                    best, best_score = list(sequence), score
        return best + [0] * (max_length - len(best))


FLAT = {2: 0.1, 3: 0.45, 4: 0.45}


def test_beam_search_equals_exhaustive_search_when_the_best_needs_a_second_beam():
    # Greedy takes 3 (0.6) first; the best sentence starts with the runner-up 4 (0.4 x 0.95).
    model = _TableModel({(): {3: 0.6, 4: 0.4}, (3,): {3: 0.35, 4: 0.35, 2: 0.3}, (4,): {2: 0.95, 3: 0.025, 4: 0.025}},
                        default={2: 0.9, 3: 0.05, 4: 0.05})
    source = np.ones((1, 3), "int32")
    assert greedy(model, source, 1, 2, 3)[0].tolist()[0] == 3
    for length_penalty in (0.0, 0.6, 1.0):
        expected = model.exhaustive(3, length_penalty)
        assert expected[:2] == [4, 2]
        for beams in (2, 3):
            found = beam_search(model, np.ones((2, 3), "int32"), 1, 2, 3, beams, length_penalty)
            assert found.tolist() == [expected, expected], (beams, length_penalty)


def test_length_penalty_changes_the_choice_when_it_should():
    # Stop now (0.5) or say two likely words and stop (0.5 x 0.9 x 0.9): raw probability prefers
    # stopping, probability per token (length_penalty=1) prefers the longer sentence.
    model = _TableModel({(): {2: 0.5, 3: 0.5}, (3,): {3: 0.9, 4: 0.05, 2: 0.05}, (3, 3): {2: 0.9, 3: 0.05, 4: 0.05}},
                        default=FLAT)
    source = np.ones((1, 3), "int32")
    assert beam_search(model, source, 1, 2, 3, 2, length_penalty=0.0)[0].tolist() == [2, 0, 0] \
        == model.exhaustive(3, 0.0)
    assert beam_search(model, source, 1, 2, 3, 2, length_penalty=1.0)[0].tolist() == [3, 3, 2] \
        == model.exhaustive(3, 1.0)


class _Always:
    """A random.Random stand-in whose random() is always `value` (0: every optional 'and', 0.99: none)."""

    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


NUMBER_WORDS = [  # (n, without the optional "and", with it), written by hand
    (0, "zero", "zero"), (7, "seven", "seven"), (13, "thirteen", "thirteen"), (20, "twenty", "twenty"),
    (42, "forty-two", "forty-two"), (99, "ninety-nine", "ninety-nine"), (100, "one hundred", "one hundred"),
    (105, "one hundred five", "one hundred and five"), (310, "three hundred ten", "three hundred and ten"),
    (999, "nine hundred ninety-nine", "nine hundred and ninety-nine"), (1000, "one thousand", "one thousand"),
    (1005, "one thousand five", "one thousand and five"), (2020, "two thousand twenty", "two thousand and twenty"),
    (12_019, "twelve thousand nineteen", "twelve thousand and nineteen"),
    (70_000, "seventy thousand", "seventy thousand"),
    (100_100, "one hundred thousand one hundred", "one hundred thousand one hundred"),
    (700_005, "seven hundred thousand five", "seven hundred thousand and five"),
    (999_999, "nine hundred ninety-nine thousand nine hundred ninety-nine",
     "nine hundred and ninety-nine thousand nine hundred and ninety-nine"),
]


@pytest.mark.parametrize("n, plain, with_and", NUMBER_WORDS)
def test_number_words_match_a_hand_written_table(n, plain, with_and):
    assert number_in_words(n, _Always(0.99)) == plain
    assert number_in_words(n, _Always(0.0)) == with_and


# ----------------------------------------------------------------------------- --data pairs.tsv and --data DIR
# A toy language pair the smoke Transformer learns in seconds: word-for-word substitution, same order.
TOY_DICTIONARY = {"one": "eins", "two": "zwei", "three": "drei", "four": "vier", "five": "fünf", "red": "rot",
                  "blue": "blau", "green": "grün", "cat": "Katze", "dog": "Hund", "big": "groß", "small": "klein"}


def toy_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    words = sorted(TOY_DICTIONARY)
    pairs = []
    for _ in range(n):
        sentence = list(rng.choice(words, size=int(rng.integers(4, 7))))
        pairs.append((" ".join(sentence) + " .", " ".join(TOY_DICTIONARY[w] for w in sentence) + " ."))
    return pairs


def _bleu(hypotheses: list[str], references: list[str]) -> float:
    import sacrebleu

    return sacrebleu.corpus_bleu(hypotheses, [references]).score


def _train_toy(tmp_path, data: str, **sets):
    cfg = config.resolve(TASK, "smoke", {"data": data, "source_lang": "en", "target_lang": "de", "epochs": 4,
                                         **sets})
    return cfg, training.train(TASK, cfg, Runtime(), runs_root=tmp_path / "runs", quiet=True)


def test_trained_from_a_tsv_file_reports_the_bleu_of_its_own_translations(tmp_path):
    pairs = toy_pairs(1200, seed=0)
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{en}\t{de}\n" for en, de in pairs), encoding="utf-8")
    cfg, result = _train_toy(tmp_path, str(path))
    # The validation pairs the run held out: some of the file's pairs, as many as val_fraction says.
    val = [(inputs["source"].decode(), inputs["target"].decode()) for inputs, _ in result.data.val.as_numpy_iterator()]
    assert len(val) == round(len(pairs) * cfg.val_fraction) and set(val) <= set(pairs)
    sources, references = [s for s, _ in val], [t for _, t in val]
    hypotheses = translate(result.model, sources, cfg.beam_size, cfg.length_penalty, cfg.decode_batch_size)
    bleu = _bleu(hypotheses, references)
    assert result.metrics["val"]["bleu"] == pytest.approx(bleu, abs=1e-6)
    assert bleu > 50, (bleu, hypotheses[:3], references[:3])  # learned, not just the "." and a word or two
    assert _bleu(sources, references) < 5  # what an untranslated copy would score


def test_trained_from_a_folder_of_parallel_files_reports_the_bleu_of_its_own_translations(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split, pairs in (("train", toy_pairs(1000, seed=1)), ("val", toy_pairs(60, seed=2))):
        for side, lang in ((0, "en"), (1, "de")):
            (corpus / f"{split}.{lang}").write_text("".join(p[side] + "\n" for p in pairs), encoding="utf-8")
    val = toy_pairs(60, seed=2)
    cfg, result = _train_toy(tmp_path, str(corpus))
    assert result.data.info["train_size"] == 1000 and result.data.info["val_size"] == 60
    hypotheses = translate(result.model, [en for en, _ in val], cfg.beam_size, cfg.length_penalty,
                           cfg.decode_batch_size)
    bleu = _bleu(hypotheses, [de for _, de in val])
    assert result.metrics["val"]["bleu"] == pytest.approx(bleu, abs=1e-6)
    assert result.metrics["test"]["bleu"] == pytest.approx(bleu, abs=1e-6)  # no test file: test = validation
    assert bleu > 50, (bleu, hypotheses[:3])
    # The German side is read back as written (umlauts, ß), not as [UNK]s.
    assert any("fünf" in h or "grün" in h or "groß" in h for h in hypotheses)
