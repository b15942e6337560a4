"""The common adapter contract, checked over every registered adapter on a miniature of its
real layout (tests/miniatures.py), like scikit-learn's estimator checks.

Each adapter must: yield safe, unique clip ids and paths inside the root; labels from its
documented set; speakers; transcripts where the corpus has them; report the planted bad files
and still yield the rest; go through ``mer ingest``; give fold schemes whose folds are
disjoint in the column the corpus says (speakers, videos, dialogues); and, pointed at a folder
that is not its corpus, fail with a message naming the folder and the layout it expected.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from pipeline.cli import main as mer
from pipeline.corpora import ADAPTERS, get_adapter, safe_clip_id
from pipeline.folds import fold_manifest
from pipeline.manifest import read_failures, read_manifest
from pipeline.paths import Layout
from tests.conftest import REPO
from tests.miniatures import MINIATURES, Miniature, place


def _column(entry, column: str) -> str:
    return str(getattr(entry, column)) if column in ("speaker", "session", "label") else (
        entry.meta[column])  # fmt: skip


def fitted(scheme, entries):
    """The scheme scaled down to a miniature's few groups or clips (same kind and column)."""
    if scheme.kind == "group_kfold":
        n = len({_column(e, scheme.group_by) for e in entries})
        return dataclasses.replace(scheme, n_folds=min(scheme.n_folds, n))
    if scheme.kind == "stratified_kfold":
        units = len({_column(e, scheme.together) for e in entries}) if scheme.together else len(
            entries)  # fmt: skip
        return dataclasses.replace(scheme, n_folds=min(scheme.n_folds, units))
    if scheme.kind == "group_holdout":
        n = len({_column(e, scheme.group_by) for e in entries})
        if scheme.n_train + scheme.n_val + scheme.n_test > n:
            return dataclasses.replace(scheme, n_train=n - 2, n_val=1, n_test=1)
    return scheme


@pytest.fixture(scope="module")
def miniature(tmp_path_factory, sample_clips):
    """name -> (root, Miniature), each built once per module."""
    built: dict[str, tuple] = {}

    def get(name: str):
        if name not in built:
            root = tmp_path_factory.mktemp(safe_clip_id(name)) / "corpus"
            root.mkdir()
            built[name] = (root, MINIATURES[name](root, sample_clips))
        return built[name]

    return get


def test_every_adapter_has_a_miniature():
    missing = sorted(set(ADAPTERS) - set(MINIATURES))
    assert not missing, f"add a miniature of its layout to tests/miniatures.py for: {missing}"


def test_every_adapter_is_documented():
    """docs/corpora.md has a section for each adapter (layout, labels, folds, where to get it)."""
    headings = [ln for ln in (REPO / "docs/corpora.md").read_text().splitlines()
                if ln.startswith("## ")]  # fmt: skip
    missing = [n for n in ADAPTERS if not any(f"`{n}`" in h for h in headings)]
    assert not missing, f"docs/corpora.md has no section for: {missing}"


@pytest.mark.parametrize("entry", sorted(MINIATURES))
def test_adapter_contract(entry, miniature, tmp_path):
    """``entry``: an adapter's name, or a miniature of one of its options (``ravdess-paired``)."""
    root, mini = miniature(entry)
    assert isinstance(mini, Miniature)
    name = mini.adapter or entry
    adapter = get_adapter(name, root, mini.options)
    clips = list(adapter.clips())

    ids = [c.clip_id for c in clips]
    assert len(ids) == mini.n_clips, ids
    assert len(set(ids)) == len(ids), "clip ids are not unique"
    for c in clips:
        assert safe_clip_id(c.clip_id) == c.clip_id
        assert (root / c.path).is_file(), f"{c.clip_id}: {c.path} is not in the miniature"
        assert c.label == "" or c.label in adapter.labels, (c.clip_id, c.label, adapter.labels)
        assert c.speaker, f"{c.clip_id}: no speaker"
        if c.audio_path:  # a separate file for the sound: inside the root, there
            assert (root / c.audio_path).is_file(), f"{c.clip_id}: {c.audio_path} missing"
    assert any(c.label or c.scores for c in clips), "no clip has a label"
    if adapter.has_transcripts:
        assert any(c.transcript for c in clips), "the corpus has transcripts; no clip got one"
    skipped = {s[0]: s[1] for s in adapter.skipped}  # (path, reason[, clip id])
    for rel in mini.bad:
        assert rel in skipped and skipped[rel], (rel, adapter.skipped)

    # one command from the corpus folder to the manifest
    proj = tmp_path / "project"
    options = f"corpus.options={json.dumps(mini.options)}"
    args = ["ingest", "--corpus", str(root), "--adapter", name, "--name", "mini",
            "--root", str(proj), "-q", "--set", options]  # fmt: skip
    assert mer(args) == 0
    lay = Layout("mini", proj)
    entries = read_manifest(lay.clips_csv)
    assert sorted(e.clip_id for e in entries) == sorted(ids)
    assert all(e.duration > 0 and e.sha256 for e in entries)
    assert all(e.audio_sha256 for e in entries if e.audio_path)
    reasons = [f.reason for f in read_failures(lay.failures_csv("ingest"))]
    for rel in mini.bad:
        assert any(rel in r for r in reasons), (rel, reasons)

    # the corpus's fold schemes, and the disjointness it promises
    names = {s.name for s in adapter.fold_schemes}
    assert set(adapter.disjoint) <= names, "disjoint names a scheme the adapter does not have"
    for scheme in adapter.fold_schemes:
        manifest = fold_manifest(entries, fitted(scheme, entries), seed=0)  # checks the folds
        by_id = {e.clip_id: e for e in entries}
        column = adapter.disjoint.get(scheme.name)
        for fold in manifest["folds"]:
            assert fold["train"] and fold["test"], (scheme.name, fold)
            if column:
                parts = [{_column(by_id[c], column) for c in fold[p]} for p in ("train", "val",
                                                                               "test")]  # fmt: skip
                assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]), (
                    f"{name} {scheme.name}: a {column} is in two parts"
                )


@pytest.mark.parametrize("name", sorted(set(ADAPTERS) - {"folder"}))
def test_a_root_that_is_not_the_corpus_says_what_is_expected(name, tmp_path, sample_clips):
    """``--adapter X`` on another corpus's folder: an error naming the folder and what the
    adapter looked for, never an empty manifest."""
    other = tmp_path / "other"
    if ADAPTERS[name] is ADAPTERS["ravdess"]:
        place(sample_clips[0], other / "VideoFlash" / "1001_DFA_ANG_XX.flv")  # CREMA-D
    else:
        place(sample_clips[0], other / "Actor_01" / sample_clips[0].name)  # RAVDESS
    adapter = get_adapter(name, other)
    with pytest.raises(FileNotFoundError) as err:
        list(adapter.clips())
    msg = str(err.value)
    assert str(other) in msg
    if type(adapter).layout:
        assert "Expected layout" in msg and type(adapter).layout.splitlines()[0] in msg
