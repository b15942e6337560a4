"""`mer verify` on real extracted features (mel, spectrogram, faces, landmarks of 3 sample
clips): a sound corpus verifies clean; each kind of damage, made for real in a copy of the
files, is reported as a sentence naming the clip and the feature."""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from pipeline.config import load_params
from pipeline.manifest import Failure, read_manifest, write_failures
from pipeline.store import dataset_checksum
from pipeline.store.format import attrs_checksum
from pipeline.verify import verify, verify_features
from pipeline.workflow import run_feature, run_ingest
from tests.conftest import make_project

BIN = Path(sys.executable).parent
FEATURES = ("mel", "spectrogram", "faces", "landmarks")
MANIFEST = Path("manifests/sample/clips.csv")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, sample_clips) -> Path:
    """A project whose four features were extracted once for the module (left untouched)."""
    root = make_project(tmp_path_factory.mktemp("verify"), sample_clips[:3],
                        {"runner": {"n_jobs": 1}})
    params = load_params(root / "params.yaml")
    assert run_ingest(params, root) == 0
    for feature in FEATURES:
        assert run_feature(params, feature, root, progress=False) == 0
    return root


@pytest.fixture
def project(extracted, tmp_path) -> Path:
    """A writable copy of the extracted project, to damage."""
    root = tmp_path / "copy"
    shutil.copytree(extracted, root)
    for shard in root.glob("data/features/sample/*/*.h5"):
        shard.chmod(shard.stat().st_mode | stat.S_IWUSR)
    return root


def _dir(root: Path, feature: str) -> Path:
    return root / "data/features/sample" / feature


def _check(root: Path, *features: str, manifest: bool = True) -> list[str]:
    return verify_features([_dir(root, f) for f in features or FEATURES],
                           root / MANIFEST if manifest else None)


def _mer(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mer"), *args], cwd=root, text=True,
                          capture_output=True, timeout=120)


def _shard_of(root: Path, feature: str, cid: str) -> Path:
    index = json.loads((_dir(root, feature) / "index.json").read_text())
    return _dir(root, feature) / index["clips"][cid]


def _clip_ids(root: Path) -> list[str]:
    return [e.clip_id for e in read_manifest(root / MANIFEST)]


def _about(problems: list[str], *words: str) -> list[str]:
    return [p for p in problems if all(w in p for w in words)]


def _reseal(group: h5py.Group) -> None:
    """Recompute a clip group's checksums after an edit: what a writer with a bug (rather
    than damage on disk) would leave, so only verify's cross-checks can find it."""
    for ds in group.values():
        ds.attrs["sha256"] = dataset_checksum(ds)
    group.attrs["attrs_sha256"] = attrs_checksum(dict(group.attrs))


def test_sound_corpus_verifies_clean(extracted):
    # mel (paper variant) pads every clip to 128 rows reaching ~25 s: padding rows are not
    # valid and must not count against the clips' ~2.3 s
    assert _check(extracted) == []
    assert verify(_dir(extracted, "mel"), extracted / MANIFEST) == []
    p = _mer(extracted, "verify", "--json")  # the corpus of params.yaml, all its features
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["ok"] and out["problems"] == []
    assert sorted(Path(d).name for d in out["checked"]) == sorted(FEATURES)
    assert out["manifest"] == str(MANIFEST)
    p = _mer(extracted, "verify", "data/features/sample", "--manifest", str(MANIFEST))
    assert p.returncode == 0 and p.stdout.startswith("OK"), p.stdout


def test_clip_missing_from_one_feature(project):
    cid = _clip_ids(project)[1]
    fdir = _dir(project, "spectrogram")
    shard = _shard_of(project, "spectrogram", cid)
    # rewrite the shard without the clip, the index still listing it
    tmp = shard.with_name("rewrite.h5")
    with h5py.File(shard, "r") as src, h5py.File(tmp, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        clips = dst.create_group("clips")
        for name in src["clips"]:
            if name != cid:
                src.copy(src["clips"][name], clips, name=name)
        dst.attrs["n_clips"] = len(clips)
    os.replace(tmp, shard)
    problems = _check(project)
    assert len(problems) == 1 and f"clip {cid}: spectrogram: listed in" in problems[0], problems
    assert "has no such clip" in problems[0]

    # the index made to agree: now the clip is simply absent from one modality
    index = json.loads((fdir / "index.json").read_text())
    del index["clips"][cid]
    index["n_clips"] -= 1
    index["shards"][shard.name]["n_clips"] -= 1
    (fdir / "index.json").write_text(json.dumps(index))
    problems = _check(project)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"clip {cid}: in {project / MANIFEST} but missing from "
                                  f"spectrogram ({fdir})")
    assert "failures/spectrogram.csv" in problems[0]
    assert "present in mel, faces, landmarks" in problems[0]
    # without a manifest the other feature directories say what is expected
    problems = _check(project, "mel", "spectrogram", manifest=False)
    assert problems == [f"clip {cid}: in mel but missing from spectrogram ({fdir})"]
    p = _mer(project, "verify", "--json")
    assert p.returncode == 1
    [line] = json.loads(p.stdout)["problems"]
    assert line.startswith(f"clip {cid}: in {MANIFEST} but missing from spectrogram")

    # recorded as a failure of the stage, the gap is expected
    write_failures(project / "manifests/sample/failures/spectrogram.csv",
                   [Failure(cid, "spectrogram", "no audio track", "ExtractionError")])
    assert _check(project) == []


def _flip_stored_byte(shard: Path, cid: str, array: str) -> None:
    """Invert one byte of an array's data where it lies in the file (its checksum attribute
    is left as written)."""
    with h5py.File(shard, "r") as f:
        ds = f["clips"][cid][array]
        if ds.chunks:
            info = ds.id.get_chunk_info(0)
            offset, size = info.byte_offset, info.size
        else:
            offset, size = ds.id.get_offset(), ds.id.get_storage_size()
    with open(shard, "r+b") as fh:
        fh.seek(offset + size // 2)
        byte = fh.read(1)[0]
        fh.seek(offset + size // 2)
        fh.write(bytes([byte ^ 0xFF]))


def test_flipped_bytes_are_found_in_the_array_they_hit(project):
    a, b = _clip_ids(project)[:2]
    # an uncompressed small array (3 int32): the data reads back changed
    _flip_stored_byte(_shard_of(project, "spectrogram", a), a, "real_frames")
    # a gzip chunk of crops: inflating fails or gives other bytes
    _flip_stored_byte(_shard_of(project, "faces", b), b, "crops")
    problems = _check(project)
    hit = _about(problems, f"clip {a}: spectrogram array 'real_frames'", "checksum mismatch")
    assert len(hit) == 1, problems
    assert str(_shard_of(project, "spectrogram", a)) in hit[0]
    hit = _about(problems, f"clip {b}: faces array 'crops'")
    assert len(hit) == 1 and ("checksum mismatch" in hit[0] or "cannot be read" in hit[0])
    assert not _about(problems, "'mel'") and not _about(problems, "landmarks array")


def test_source_hash_that_disagrees(project):
    cid = _clip_ids(project)[2]
    with h5py.File(_shard_of(project, "faces", cid), "r+") as f:
        f["clips"][cid].attrs["source_sha256"] = "0" * 64
    problems = _check(project)
    assert f"clip {cid}: faces in {_shard_of(project, 'faces', cid)}: attributes changed " \
        f"since written (attrs_sha256 mismatch)" in problems and len(problems) == 2, problems
    with h5py.File(_shard_of(project, "faces", cid), "r+") as f:
        _reseal(f["clips"][cid])
    problems = _check(project)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"clip {cid}: source_sha256 differs from the media's sha256")
    assert "faces has 000000000000" in problems[0] and problems[0].endswith("rerun faces")
    problems = _check(project, "mel", "faces", manifest=False)
    assert len(problems) == 1 and f"clip {cid}: source_sha256 differs across features" in \
        problems[0] and "000000000000 in faces" in problems[0], problems


def test_shifted_or_cut_rows(project):
    a, b = _clip_ids(project)[:2]
    durations = {e.clip_id: e.duration for e in read_manifest(project / MANIFEST)}
    # faces of clip a one second late: past the clip's end, off the landmarks' rows, and
    # (without a manifest) ending a second after the audio
    with h5py.File(_shard_of(project, "faces", a), "r+") as f:
        ts = f["clips"][a]["timestamps"]
        ts[...] = ts[()] + 1.0
    # a timestamp moved on disk no longer matches its checksum
    hit = _about(_check(project, "faces"), f"clip {a}: faces array 'timestamps'",
                 "checksum mismatch")
    assert len(hit) == 1
    with h5py.File(_shard_of(project, "faces", a), "r+") as f:
        _reseal(f["clips"][a])
    # mel of clip b marked valid only for its first second: its data stops short
    with h5py.File(_shard_of(project, "mel", b), "r+") as f:
        g = f["clips"][b]
        valid, times = g["valid"][()], g["timestamps"][()]
        valid[times > 1.0] = 0
        g["valid"][...] = valid
        mel_end = times[valid.astype(bool)].max()
        _reseal(g)
    problems = _check(project)
    assert len(problems) == 3, problems
    hit = _about(problems, f"clip {a}: faces: valid rows reach")
    assert len(hit) == 1 and f"clip duration {durations[a]:.3f} s" in hit[0]
    hit = _about(problems, f"clip {a}: landmarks rows differ from faces rows")
    assert len(hit) == 1 and "first row 0: landmarks has 0.000 s, faces 1.000 s" in hit[0]
    hit = _about(problems, f"clip {b}: mel: its data ends at {mel_end:.3f} s")
    assert len(hit) == 1 and f"{durations[b] - mel_end:.3f} s before the clip's end" in hit[0]

    problems = _check(project, "spectrogram", "faces", manifest=False)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"clip {a}: spectrogram data ends at ")
    assert "but faces data at " in problems[0] and "apart (tolerance 0.50 s)" in problems[0]


def test_landmarks_one_frame_off_faces(project):
    """A drift of one frame lies within every time tolerance but not on the faces' rows."""
    cid = _clip_ids(project)[0]
    with h5py.File(_shard_of(project, "landmarks", cid), "r+") as f:
        ts = f["clips"][cid]["timestamps"]
        ts[...] = ts[()] + 1 / 30
        _reseal(f["clips"][cid])
    problems = _check(project)
    assert problems == [_about(problems, f"clip {cid}: landmarks rows differ from faces rows",
                               "timestamps differ", "rerun landmarks")[0]]


def test_impossible_face_choice_attributes(project):
    """The kept track, the speaker status and turns are values readers act on: sealed but
    impossible ones (a writer's bug, an edit) are findings naming the attribute."""
    cid, other = _clip_ids(project)[:2]
    with h5py.File(_shard_of(project, "faces", cid), "r+") as f:
        g = f["clips"][cid]
        assert "track" in g.attrs and "n_tracks" in g.attrs  # what the faces stage writes
        g.attrs["track"] = int(g.attrs["n_tracks"]) + 2
        g.attrs["speaker_status"] = "maybe"
        g.attrs["speaker_turns"] = '[[0.0,1.2,0,"sure"],[1.5,1.0,-3,"sure"]]'
        _reseal(g)
    with h5py.File(_shard_of(project, "faces", other), "r+") as f:
        g = f["clips"][other]
        g.attrs.update(speaker_backend="lips", speaker_status="unsure", speaker_lag_s=0.04,
                       speaker_turns='[[0.0,1.0,0,"unsure"],[1.2,2.0,-1,"no_match"]]')
        _reseal(g)  # possible values: no finding
    problems = _check(project)
    mine = _about(problems, f"clip {cid}: faces")
    assert len(mine) == 4 and problems == mine, problems
    assert _about(mine, "kept track", "track(s)")
    assert _about(mine, "speaker_status 'maybe'")
    assert _about(mine, "speaker turn 1: from 1.5 s to 1.0 s")
    assert _about(mine, "speaker turn 1: track -3")


def test_missing_inputs_and_unfinished_directory(project):
    p = _mer(project, "verify", "--name", "nope")
    assert p.returncode == 3 and "no feature directories" in p.stderr
    p = _mer(project, "verify", "--tolerance", "-1")
    assert p.returncode == 2 and "--tolerance" in p.stderr
    p = _mer(project, "verify", "data/features/sample/mel", "--manifest", "nowhere.csv")
    assert p.returncode == 3 and "nowhere.csv" in p.stderr
    (_dir(project, "faces") / "index.json").unlink()  # as an interrupted write leaves it
    problems = _check(project)
    assert any("faces: no index.json" in p for p in problems), problems
    # faces cannot be read, so only landmarks' own problems remain: none
    assert len(problems) == 1
