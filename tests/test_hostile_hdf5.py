"""Readers never follow an HDF5 file out of itself, however an object is reached.

Each hostile file is built with real h5py from a real mel feature directory (one sample clip
extracted by the stage) or a real ``.csd`` file: ``/clips`` or a clip group that is itself an
external or soft link, members that are links, external raw storage or virtual datasets, a
shard symlinked outside its directory, and, in a ``.csd``, links at the root, ``data``,
entry and metadata level. Every reader (the feature reader, ``pipeline.api.iter_windows``,
the trainer's windows, ``mer inspect``, ``mer verify``, ``export-csd``, ``import-csd``)
refuses each with one line that names the object; the data behind the link is readable, so
a reader that followed it would return it silently."""

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.api import iter_windows
from pipeline.cli import main as mer
from pipeline.inspect import describe
from pipeline.interop.csd import export_csd, import_csd
from pipeline.paths import Layout
from pipeline.store import FeatureReader, ShardError
from pipeline.training.config import InputConfig
from pipeline.training.windowset import WindowSet
from pipeline.verify import verify

NAME = "vids"
SHARD = "shard-00000.h5"

KINDS = {
    # kind: words the one line must hold
    "clips_external": "/clips is an external link",
    "clips_soft": "/clips is a soft link",
    "clip_external": "/clips/c0 is an external link",
    "clip_soft": "/clips/c0 is a soft link",
    "member_external": "mel is an external link",
    "member_soft": "mel is a soft link",
    "external_storage": "mel has external raw storage",
    "virtual": "mel is a virtual dataset",
    "shard_symlink": "outside",
}


@pytest.fixture(scope="module")
def mel_dir(tmp_path_factory, sample_clips) -> Path:
    """A real mel feature directory of one clip, c0."""
    tmp = tmp_path_factory.mktemp("hostile")
    videos = tmp / "videos"
    videos.mkdir()
    shutil.copy2(sample_clips[0], videos / "c0.mp4")
    root = tmp / "p"
    assert mer(["extract", "mel", "--corpus", str(videos), "--adapter", "folder", "--name",
                NAME, "--root", str(root), "--set", "runner.n_jobs=1",
                "--set", f"runner.cache_dir={root / 'cache'}", "-q"]) == 0
    return Layout(NAME, root).features_dir("mel")


def _other(path: Path, shard: Path) -> None:
    """Another file holding a full, readable copy of the shard's clips, with other values."""
    shutil.copy2(shard, path)
    with h5py.File(path, "r+") as f:
        ds = f["clips/c0/mel"]
        ds[...] = ds[()] + 0.5


def _hostile(mel_dir: Path, tmp: Path, kind: str) -> Path:
    fdir = tmp / "mel"
    shutil.copytree(mel_dir, fdir)
    shard = fdir / SHARD
    other = tmp / "other.h5"
    _other(other, shard)
    if kind == "shard_symlink":
        outside = tmp / "outside"
        outside.mkdir()
        shutil.copy2(other, outside / SHARD)
        shard.unlink()
        shard.symlink_to(outside / SHARD)
        return fdir
    with h5py.File(shard, "r+") as f:
        if kind == "clips_external":
            del f["clips"]
            f["clips"] = h5py.ExternalLink(str(other), "/clips")
        elif kind == "clips_soft":
            f.move("clips", "hidden")
            f["clips"] = h5py.SoftLink("/hidden")
        elif kind == "clip_external":
            del f["clips/c0"]
            f["clips/c0"] = h5py.ExternalLink(str(other), "/clips/c0")
        elif kind == "clip_soft":
            f.move("clips/c0", "hidden_c0")
            f["clips/c0"] = h5py.SoftLink("/hidden_c0")
        else:
            g = f["clips/c0"]
            mel = g["mel"][()]
            attrs = dict(g["mel"].attrs)
            del g["mel"]
            if kind == "member_external":
                g["mel"] = h5py.ExternalLink(str(other), "/clips/c0/mel")
            elif kind == "member_soft":
                f["elsewhere"] = mel + 0.5
                g["mel"] = h5py.SoftLink("/elsewhere")
            elif kind == "external_storage":
                raw = tmp / "raw.bin"
                (mel + 0.5).astype(mel.dtype).tofile(raw)
                g.create_dataset("mel", shape=mel.shape, dtype=mel.dtype,
                                 external=[(str(raw), 0, mel.nbytes)])
            elif kind == "virtual":
                layout = h5py.VirtualLayout(shape=mel.shape, dtype=mel.dtype)
                layout[:] = h5py.VirtualSource(str(other), "/clips/c0/mel", shape=mel.shape)
                g.create_virtual_dataset("mel", layout)
            if kind not in ("member_soft",):
                for k, v in attrs.items():
                    g["mel"].attrs[k] = v
    return fdir


def _one_line(err: BaseException, words: str) -> None:
    text = str(err)
    assert "\n" not in text, text
    assert words in text, (words, text)


def _windows(fdir: Path):
    return list(iter_windows({"mel": fdir}, {"mel": {"steps": 8}}, ["c0"], window_seconds=1.0))


def _trainer(fdir: Path):
    ws = WindowSet({"mel": fdir}, {"mel": InputConfig(steps=8)}, ["c0"], window_seconds=1.0)
    try:
        return ws[0]
    finally:
        ws.close()


def _dataset(fdir: Path):
    from pipeline.training.dataset import WindowDataset

    ds = WindowDataset({"mel": fdir}, {"mel": InputConfig(steps=8)}, ["c0"], np.zeros(1),
                       window_seconds=1.0)
    try:
        return ds[0]
    finally:
        ds.close()


READERS = {
    "read": lambda d: FeatureReader(d).read("c0"),
    "rows": lambda d: FeatureReader(d).rows("c0"),
    "iter_windows": _windows,
    "trainer_windows": _trainer,
    "WindowDataset": _dataset,
    "inspect": describe,
    "export_csd": lambda d: export_csd(d, d.parent / "out.csd"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_reader_refuses_a_shard_that_reaches_out(mel_dir, tmp_path, kind):
    fdir = _hostile(mel_dir, tmp_path, kind)
    for name, read in READERS.items():
        with pytest.raises(ShardError) as err:
            read(fdir)
        _one_line(err.value, KINDS[kind])
        assert name and not (fdir.parent / "out.csd").exists()
    # a reader of a clip's attributes only: the group must be reached through hard links
    # (its members, never read, may be anything)
    if kind.startswith(("clip", "shard")):
        with pytest.raises(ShardError) as err:
            FeatureReader(fdir).clip_attrs("c0")
        _one_line(err.value, KINDS[kind])
    else:
        assert FeatureReader(fdir).clip_attrs("c0")["n_steps"] == 128
    problems = verify(fdir)  # findings, member by member: "array 'mel' ...: is ..."
    words = KINDS[kind].removeprefix("mel ")
    assert any(words in p and "\n" not in p for p in problems), problems


def test_mer_inspect_says_it_in_one_line(mel_dir, tmp_path, capsys):
    fdir = _hostile(mel_dir, tmp_path, "clips_external")
    capsys.readouterr()
    assert mer(["inspect", str(fdir)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "/clips is an external link" in err, err
    assert mer(["inspect", str(fdir / SHARD)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "/clips is an external link" in err, err


def test_sound_shards_are_read_by_every_reader(mel_dir):
    """The same readers on the untouched directory: nothing above is refused for another
    reason."""
    for read in READERS.values():
        read(mel_dir)
    assert verify(mel_dir) == []


# -- .csd files ------------------------------------------------------------------------------

CSD_KINDS = {
    "root_external": "/covarep is an external link",
    "data_external": "/covarep/data is an external link",
    "data_soft": "/covarep/data is a soft link",
    "entry_external": "/covarep/data/vid1 is an external link",
    "entry_soft": "/covarep/data/vid1 is a soft link",
    "member_external": "features is an external link",
    "member_virtual": "features is a virtual dataset",
    "metadata_external": "/covarep/metadata is an external link",
}


def _csd(path: Path, scale: float = 1.0) -> None:
    with h5py.File(path, "w") as f:
        g = f.create_group("covarep/data/vid1")
        g["features"] = np.ones((4, 3), np.float32) * scale
        g["intervals"] = np.stack([np.arange(4.0), np.arange(1.0, 5.0)], axis=1)
        m = f.create_group("covarep/metadata")
        m["root name"] = np.array([b"covarep"])


@pytest.mark.parametrize("kind", list(CSD_KINDS))
def test_import_csd_refuses_links_at_every_level(tmp_path, kind):
    other = tmp_path / "other.csd"
    _csd(other, scale=7.0)  # readable: a reader that followed the link would import it
    csd = tmp_path / "x.csd"
    _csd(csd)
    with h5py.File(csd, "r+") as f:
        if kind == "root_external":
            del f["covarep"]
            f["covarep"] = h5py.ExternalLink(str(other), "/covarep")
        elif kind == "data_external":
            del f["covarep/data"]
            f["covarep/data"] = h5py.ExternalLink(str(other), "/covarep/data")
        elif kind == "data_soft":
            f.move("covarep/data", "hidden")
            f["covarep/data"] = h5py.SoftLink("/hidden")
        elif kind == "entry_external":
            del f["covarep/data/vid1"]
            f["covarep/data/vid1"] = h5py.ExternalLink(str(other), "/covarep/data/vid1")
        elif kind == "entry_soft":
            f.move("covarep/data/vid1", "hidden")
            f["covarep/data/vid1"] = h5py.SoftLink("/hidden")
        elif kind == "member_external":
            del f["covarep/data/vid1/features"]
            f["covarep/data/vid1/features"] = h5py.ExternalLink(
                str(other), "/covarep/data/vid1/features")
        elif kind == "member_virtual":
            del f["covarep/data/vid1/features"]
            layout = h5py.VirtualLayout(shape=(4, 3), dtype=np.float32)
            layout[:] = h5py.VirtualSource(str(other), "/covarep/data/vid1/features",
                                           shape=(4, 3))
            f["covarep/data/vid1"].create_virtual_dataset("features", layout)
        elif kind == "metadata_external":
            del f["covarep/metadata"]
            f["covarep/metadata"] = h5py.ExternalLink(str(other), "/covarep/metadata")
    with pytest.raises(OSError) as err:
        import_csd(csd, tmp_path / "out")
    _one_line(err.value, CSD_KINDS[kind])
    assert not (tmp_path / "out").exists()
    good = tmp_path / "good.csd"
    _csd(good)
    with FeatureReader(import_csd(good, tmp_path / "good")) as r:
        np.testing.assert_array_equal(r.read("vid1").arrays["covarep"], np.ones((4, 3)))
