"""Parallel sentences: Multi30k (download or folder), TED talks (tfds), TSV / Anki pairs, parallel
files, and the embedded number-words task; word or WordPiece vocabularies built on the training split."""

from __future__ import annotations

import csv
import gzip
import io
import random
import re
import sys
from collections import Counter
from pathlib import Path

from dlapps.data import fetch
from dlapps.data.sources import pick, source_of
from dlapps.errors import UserError
from dlapps.task import Data
from dlapps.tasks.translation import subword
from dlapps.tasks.translation.config import Config
from dlapps.tasks.translation.text import END, START, generated_pairs, python_tokens


# Multi30k task 1 (Elliott et al., 2016), raw captions, as the upstream repository stores them.
MULTI30K_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/{split}.{lang}.gz"
MULTI30K_SHA256 = {
    "train.en": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.fr": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.en": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.fr": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
}
MULTI30K_LANGS = ("en", "de", "fr")
# tfds ted_hrlr_translate configs are <lang>_to_en (Qi et al., 2018).
TED_LANGS = ("az", "be", "es", "fr", "gl", "he", "it", "pt", "ru", "tr")
_LANG_CODE = re.compile(r"^[a-z]{2,3}$")

Pairs = list[tuple[str, str]]


def _check_code(code: str, known: tuple[str, ...] | None, where: str) -> None:
    if not _LANG_CODE.match(code or ""):
        raise UserError(f"unknown language code {code!r}; use a 2-3 letter ISO 639 code such as en, de, fr")
    if known is not None and code not in known:
        raise UserError(f"unknown language code {code!r} for {where}; available: {', '.join(known)}")


def read_lines(path: Path) -> list[str]:
    """The lines of a text file (.gz allowed), without line ends."""
    if not path.exists():
        raise UserError(f"file {path} not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return [line.rstrip("\r\n") for line in handle]
    except (UnicodeDecodeError, OSError) as err:
        raise UserError(f"cannot read {path} as UTF-8 text ({err}); give plain or gzipped UTF-8 files") from None


def parallel(source_lines: list[str], target_lines: list[str], source_name: str, target_name: str) -> Pairs:
    """Line-aligned files zipped into pairs; different line counts are an error."""
    if len(source_lines) != len(target_lines):
        raise UserError(f"mismatched line counts: {source_name} has {len(source_lines)} lines, "
                        f"{target_name} has {len(target_lines)}; parallel files must be line-aligned")
    return list(zip(source_lines, target_lines))


def read_tsv(path: Path, cfg: Config) -> Pairs:
    """Pairs from a TSV (Anki/Tatoeba: 'English<TAB>other<TAB>attribution'); extra columns ignored.

    A first row of two language codes (e.g. 'en<TAB>de') names the columns; otherwise `tsv_order`.
    """
    text = "\n".join(read_lines(path))
    rows = [row for row in csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE) if row]
    if not rows:
        raise UserError(f"{path} is empty; expected lines 'source<TAB>target'")
    bad = next((i for i, row in enumerate(rows) if len(row) < 2), None)
    if bad is not None:
        raise UserError(f"{path} line {bad + 1}: expected 'source<TAB>target', found no tab")
    order = cfg.tsv_order
    first = [field.strip().lower() for field in rows[0][:2]]
    if all(_LANG_CODE.match(field) for field in first):
        rows = rows[1:]
        if first == [cfg.source_lang, cfg.target_lang]:
            order = "source_target"
        elif first == [cfg.target_lang, cfg.source_lang]:
            order = "target_source"
        else:
            raise UserError(f"{path} has columns {first[0]}, {first[1]} but source_lang={cfg.source_lang} "
                            f"target_lang={cfg.target_lang}; set them with --set source_lang=.. target_lang=..")
    if order == "source_target":
        return [(row[0], row[1]) for row in rows]
    return [(row[1], row[0]) for row in rows]


def _lang_file(folder: Path, split: str, lang: str) -> Path | None:
    for name in (f"{split}.{lang}.gz", f"{split}.{lang}"):
        if (folder / name).exists():
            return folder / name
    return None


def read_folder(folder: Path, cfg: Config) -> tuple[Pairs, Pairs | None, Pairs | None]:
    """(train, val or None, test or None) from train.<lang>[.gz], val.<lang>[.gz], test*.<lang>[.gz]."""
    available = sorted({p.name.split(".")[1] for p in folder.glob("train.*") if len(p.name.split(".")) >= 2})
    for code in (cfg.source_lang, cfg.target_lang):
        _check_code(code, tuple(available) or None, f"folder {folder}")
    splits = []
    for split in ("train", "val", "test"):
        src, tgt = _lang_file(folder, split, cfg.source_lang), _lang_file(folder, split, cfg.target_lang)
        if src is None and split == "test":  # Multi30k names its test sets test_2016_flickr.<lang>.gz etc.
            candidates = sorted(folder.glob(f"test*.{cfg.source_lang}*"))
            if candidates:
                src = candidates[0]
                tgt = Path(str(src).replace(f".{cfg.source_lang}", f".{cfg.target_lang}"))
        if src is None or tgt is None or not tgt.exists():
            if split == "train":
                raise UserError(f"{folder} has no train.{cfg.source_lang}[.gz] and train.{cfg.target_lang}[.gz]")
            splits.append(None)
            continue
        splits.append(parallel(read_lines(src), read_lines(tgt), src.name, tgt.name))
    return splits[0], splits[1], splits[2]


def read_file_source(cfg: Config) -> tuple[Pairs, Pairs | None, Pairs | None, str]:
    """(train, val, test, description) from `--data`: folder, 'a.src,b.tgt' or a TSV file."""
    spec = cfg.data
    if "," in spec:
        parts = [Path(p.strip()) for p in spec.split(",")]
        if len(parts) != 2:
            raise UserError(f"--data {spec}: give exactly two parallel files, 'source_file,target_file'")
        pairs = parallel(read_lines(parts[0]), read_lines(parts[1]), parts[0].name, parts[1].name)
        return pairs, None, None, f"parallel files {parts[0]} and {parts[1]}"
    path = Path(spec)
    if path.is_dir():
        train, val, test = read_folder(path, cfg)
        return train, val, test, f"folder {path} ({cfg.source_lang} -> {cfg.target_lang})"
    if not path.exists():
        raise UserError(f"--data {spec}: file or folder not found")
    return read_tsv(path, cfg), None, None, f"tab-separated pairs {path}"


def read_multi30k(cfg: Config) -> tuple[Pairs, Pairs]:
    """Multi30k train and val, downloaded once from the upstream repository (sha256-checked)."""
    for code in (cfg.source_lang, cfg.target_lang):
        _check_code(code, MULTI30K_LANGS, "multi30k")
    splits = []
    for split in ("train", "val"):
        sides = []
        for lang in (cfg.source_lang, cfg.target_lang):
            path = fetch(MULTI30K_URL.format(split=split, lang=lang), MULTI30K_SHA256[f"{split}.{lang}"],
                         filename=f"multi30k_{split}.{lang}.gz",
                         hint="pass a folder holding train.<lang>.gz and val.<lang>.gz with --data DIR")
            sides.append(read_lines(path))
        splits.append(parallel(sides[0], sides[1], f"{split}.{cfg.source_lang}", f"{split}.{cfg.target_lang}"))
    return splits[0], splits[1]


def read_ted(cfg: Config) -> tuple[Pairs, Pairs, Pairs]:
    """TED talk transcripts from tfds `ted_hrlr_translate/<xx>_to_en` (either direction)."""
    langs = {cfg.source_lang, cfg.target_lang}
    if "en" not in langs or len(langs) != 2:
        raise UserError(f"ted_hrlr pairs English with another language; got {cfg.source_lang} -> {cfg.target_lang}")
    other = (langs - {"en"}).pop()
    _check_code(other, TED_LANGS, "ted_hrlr_translate")
    import tensorflow_datasets as tfds

    try:
        splits = tfds.load(f"ted_hrlr_translate/{other}_to_en", split=["train", "validation", "test"])
    except Exception as err:  # noqa: BLE001  (tfds raises many kinds: network, missing files, ...)
        raise UserError(f"cannot load tfds ted_hrlr_translate/{other}_to_en ({type(err).__name__}); "
                        "offline? pass local files with --data") from None
    out = []
    for split in splits:
        pairs = [(row[other].decode("utf-8"), row["en"].decode("utf-8")) for row in tfds.as_numpy(split)]
        out.append(pairs if cfg.source_lang == other else [(b, a) for a, b in pairs])
    return out[0], out[1], out[2]


def _clean(pairs: Pairs) -> tuple[Pairs, int]:
    """Whitespace-normalised pairs without empty sides, and how many were dropped."""
    kept = [(" ".join(a.split()), " ".join(b.split())) for a, b in pairs]
    kept = [(a, b) for a, b in kept if a and b]
    return kept, len(pairs) - len(kept)


def _split(pairs: Pairs, fraction: float, seed: int) -> tuple[Pairs, Pairs]:
    """(rest, held-out fraction) with a seeded shuffle."""
    if fraction <= 0:
        return pairs, []
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n = max(1, round(len(pairs) * fraction))
    return [pairs[i] for i in order[n:]], [pairs[i] for i in order[:n]]


def build_vocabulary(sentences: list[str], max_vocab: int, min_count: int, extra: tuple[str, ...] = ()) -> list[str]:
    """Words by frequency (ties alphabetical) after the model's standardization, without ''/[UNK]."""
    counts = Counter(word for line in subword.words(sentences) for word in line)
    words = [w for w, c in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0])) if c >= min_count
             and w not in extra and w != "[UNK]"]
    return list(extra) + words[: max(0, max_vocab - len(extra))]


def target_ids(sentences: list[str], vocabulary: list[str], max_length: int, tokenizer: str = "word"):
    """(n, max_length + 1) int ids of '[start] sentence [end]' (the model's target vectorizer)."""
    import numpy as np

    vectorizer = subword.vectorizer(tokenizer, vocabulary, max_length + 1, target=True)
    if not sentences:
        return np.zeros((0, max_length + 1), "int64")
    return np.concatenate([np.asarray(vectorizer(np.array(sentences[i:i + 4096], dtype=object)))
                           for i in range(0, len(sentences), 4096)]).astype("int64")


def to_dataset(pairs: Pairs, vocabulary: list[str], max_length: int, tokenizer: str = "word"):
    """({"source": str, "target": str}, next-token ids (max_length,)) examples, unbatched."""
    import numpy as np
    import tensorflow as tf

    sources = [a for a, _ in pairs]
    targets = [b for _, b in pairs]
    labels = (target_ids(targets, vocabulary, max_length, tokenizer)[:, 1:] if pairs
              else np.zeros((0, max_length), "int64"))
    return tf.data.Dataset.from_tensor_slices(
        ({"source": tf.constant(sources, tf.string), "target": tf.constant(targets, tf.string)}, labels))


def _embedded(cfg: Config) -> tuple[Pairs, None, None, str, dict]:
    pairs = generated_pairs(cfg.embedded_pairs, cfg.seed)
    return (pairs, None, None, f"number words -> digits, {len(pairs)} pairs generated by dlapps (embedded)",
            {"source_lang": "en-words", "target_lang": "digits"})


def _multi30k(cfg: Config) -> tuple[Pairs, Pairs, None, str, dict]:
    train, val = read_multi30k(cfg)
    return train, val, None, f"Multi30k task 1 (downloaded), {cfg.source_lang} -> {cfg.target_lang}", _langs(cfg)


def _ted(cfg: Config) -> tuple[Pairs, Pairs, Pairs, str, dict]:
    train, val, test = read_ted(cfg)
    return (train, val, test, f"TED talks, tfds ted_hrlr_translate, {cfg.source_lang} -> {cfg.target_lang}",
            _langs(cfg))


def _file(cfg: Config) -> tuple[Pairs, Pairs | None, Pairs | None, str, dict]:
    return (*read_file_source(cfg), _langs(cfg))


def _langs(cfg: Config) -> dict:
    return {"source_lang": cfg.source_lang, "target_lang": cfg.target_lang}


LOADERS = {"embedded": _embedded, "multi30k": _multi30k, "ted_hrlr": _ted, "file": _file}


def read_pairs(cfg: Config) -> tuple[Pairs, Pairs | None, Pairs | None, str, dict]:
    """(train, val, test, description, language facts) of the configured source (splits may be None).

    The loader is chosen by `dlapps.data.sources.pick`. Raises UserError for an unknown source,
    source=file without --data, a language code that is not a 2-3 letter code (or that the source
    does not have), or unreadable files.
    """
    loader = pick("translation", cfg, LOADERS,
                  "a folder with train.<lang>[.gz], two parallel files 'a.en,a.de', or a .tsv file")
    if loader is not _embedded:
        for code in (cfg.source_lang, cfg.target_lang):
            _check_code(code, None, source_of(cfg))
    return loader(cfg)


def load_data(cfg: Config) -> Data:
    """Train/val/test pairs, word vocabularies of the training split, next-token labels."""
    if cfg.max_length < 2:
        raise UserError(f"max_length={cfg.max_length}: need at least 2 tokens")
    subword.check_tokenizer(cfg.tokenizer)
    train, val, test, description, langs = read_pairs(cfg)
    train, dropped = _clean(train)
    if cfg.max_pairs > 0:
        train = train[: cfg.max_pairs]
    val_given = val is not None
    if val is None:
        train, val = _split(train, cfg.val_fraction, cfg.seed)
    if test is None:
        if val_given and val and cfg.test_fraction > 0:
            test = val  # a corpus with a fixed validation file and no test file: report on validation
            description += " (no test file: test = validation)"
        else:
            train, test = _split(train, cfg.test_fraction, cfg.seed + 1)
    val, _ = _clean(val or [])
    test, _ = _clean(test or [])
    if not train and not test:
        raise UserError("no sentence pairs with text on both sides were found in the data")
    if not test:
        test = train  # evaluation of a whole file (val_fraction = test_fraction = 0)
    fit_pairs = train or test
    if cfg.tokenizer == "wordpiece":  # learned on the training split only, source and target separately
        source_vocab = subword.learn_wordpiece([a for a, _ in fit_pairs], cfg.subword_vocab)
        target_vocab = subword.learn_wordpiece([b for _, b in fit_pairs], cfg.subword_vocab, reserved=(START, END))
        source_layer = subword.vectorizer(cfg.tokenizer, source_vocab, cfg.max_length)
        target_layer = subword.vectorizer(cfg.tokenizer, target_vocab, cfg.max_length + 1, target=True)
        lengths = zip(subword.token_counts(source_layer, [a for a, _ in train]),
                      subword.token_counts(target_layer, [b for _, b in train]))
    else:
        source_vocab = build_vocabulary([a for a, _ in fit_pairs], cfg.max_vocab, cfg.min_count)
        target_vocab = build_vocabulary([b for _, b in fit_pairs], cfg.max_vocab, cfg.min_count, extra=(START, END))
        lengths = ((len(python_tokens(a)), len(python_tokens(b))) for a, b in train)
    too_long = sum(a > cfg.max_length or b + 1 > cfg.max_length for a, b in lengths)
    if too_long:
        print(f"dlapps: warning: {too_long} of {len(train)} training pairs are longer than max_length="
              f"{cfg.max_length} tokens and are truncated", file=sys.stderr)
    info = {
        **langs,
        "source_description": description,
        "train_size": len(train),
        "val_size": len(val),
        "test_size": len(test),
        "dropped_empty_pairs": dropped,
        "truncated_training_pairs": too_long,
        "max_length": cfg.max_length,
        "tokenizer": cfg.tokenizer,
        "source_vocab_size": len(source_vocab) + 2,
        "target_vocab_size": len(target_vocab) + 2,
        "source_vocabulary": source_vocab,
        "target_vocabulary": target_vocab,
        "embedded": source_of(cfg) == "embedded",
    }
    return Data(to_dataset(train, target_vocab, cfg.max_length, cfg.tokenizer) if train else None,
                to_dataset(val, target_vocab, cfg.max_length, cfg.tokenizer) if val else None,
                to_dataset(test, target_vocab, cfg.max_length, cfg.tokenizer), info)
