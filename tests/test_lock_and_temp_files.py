"""Lock and temporary files never write through what is planted at their names (a symbolic
link, a hard link, a FIFO), and a filesystem without locks is said in one line."""

import errno
import fcntl
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline import locks
from pipeline.cli import main as mer
from pipeline.locks import lock_path, output_lock
from pipeline.store import ClipFeatures, ShardWriter
from pipeline.store.writer import atomic_write_text
from tests.conftest import make_project

SECRET = "a file the run must never touch\n"


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "elsewhere" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text(SECRET)
    return victim


@pytest.mark.parametrize("plant", ["symlink", "hardlink", "fifo", "directory"])
def test_lock_file_is_opened_as_a_plain_file_of_its_own(tmp_path, plant):
    victim = _victim(tmp_path)
    out = tmp_path / "data" / "mel"
    out.parent.mkdir()
    lock = lock_path(out)
    if plant == "symlink":
        lock.symlink_to(victim)
    elif plant == "hardlink":
        os.link(victim, lock)
    elif plant == "fifo":
        os.mkfifo(lock)
    else:
        lock.mkdir()
    with pytest.raises(locks.LockFileError, match=str(lock)), output_lock(out, "mel"):
        pass
    assert victim.read_text() == SECRET


def test_planted_lock_link_stops_the_stage_in_one_line(tmp_path, sample_clips, capsys):
    root = make_project(tmp_path / "p", sample_clips[:1], {"runner": {"n_jobs": 1}})
    victim = _victim(tmp_path)
    lock = lock_path(root / "data/features/sample/spectrogram")
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim)
    capsys.readouterr()
    assert mer(["extract", "spectrogram", "--root", str(root), "--params",
                str(root / "params.yaml"), "-q"]) == 4
    err = capsys.readouterr().err
    assert "symbolic link" in err and str(lock) in err and err.count("\n") == 1
    assert victim.read_text() == SECRET
    assert not (root / "data/features/sample/spectrogram").exists()


def test_no_locks_on_the_filesystem_is_one_line_naming_the_lock_and_the_remedy(
        tmp_path, sample_clips, capsys, monkeypatch):
    """A filesystem without flock (Lustre, NFS without lockd) answers ENOLCK, "No locks
    available". No such filesystem can be mounted here, so the error is injected at the one
    call that meets it, ``fcntl.flock`` in pipeline.locks: what is under test is the message
    and the exit path, with the real stage, lock file and CLI around it."""
    root = make_project(tmp_path, sample_clips[:1], {"runner": {"n_jobs": 1}})
    real_flock = fcntl.flock

    def flock(fd, op):
        if op & fcntl.LOCK_EX:
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
        return real_flock(fd, op)

    monkeypatch.setattr("pipeline.locks.fcntl.flock", flock)
    capsys.readouterr()
    assert mer(["extract", "spectrogram", "--root", str(root), "--params",
                str(root / "params.yaml"), "-q"]) == 4
    err = capsys.readouterr().err
    lock = lock_path(root / "data/features/sample/spectrogram")
    assert err.count("\n") == 1 and str(lock) in err, err
    assert "No locks available" in err and "local disk" in err and "Errno" not in err


def test_temporary_text_file_is_created_new_not_through_a_planted_link(tmp_path):
    victim = _victim(tmp_path)
    target = tmp_path / "metrics.json"
    # the temporary name atomic_write_text uses in this process and thread
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.symlink_to(victim)
    atomic_write_text(target, '{"ok": true}\n')
    assert victim.read_text() == SECRET
    assert target.read_text() == '{"ok": true}\n' and not target.is_symlink()


def test_shard_writer_does_not_write_into_a_planted_directory_link(tmp_path):
    victim_dir = tmp_path / "elsewhere"
    victim_dir.mkdir()
    (victim_dir / "keep.txt").write_text(SECRET)
    out = tmp_path / "feats" / "mel"
    out.parent.mkdir()
    (out.parent / f".mel.writing-{os.getpid()}").symlink_to(victim_dir)
    feats = ClipFeatures({"mel": np.ones((3, 2), np.float32)}, np.arange(3) * 0.1,
                         np.ones(3, bool))
    with ShardWriter(out, feature="mel", params={}, provenance={}, primary="mel") as w:
        w.add("c0", feats, "ab" * 32)
    assert sorted(p.name for p in victim_dir.iterdir()) == ["keep.txt"]
    assert (out / "index.json").is_file()


def test_checkpoint_temporary_file_is_created_new(tmp_path):
    import torch

    from pipeline.training.checkpoint import atomic_save, load

    victim = _victim(tmp_path)
    path = tmp_path / "fold-0.pt"
    path.with_name(path.name + ".tmp").symlink_to(victim)
    atomic_save({"w": torch.arange(3)}, path)
    assert victim.read_text() == SECRET
    assert load(path)["w"].tolist() == [0, 1, 2]


def test_csd_export_temporary_file_is_created_new(tmp_path):
    from pipeline.interop.csd import export_csd, read_csd

    victim = _victim(tmp_path)
    fdir = tmp_path / "feats" / "mel"
    feats = ClipFeatures({"mel": np.ones((3, 2), np.float32)}, np.arange(3) * 0.1,
                         np.ones(3, bool))
    with ShardWriter(fdir, feature="mel", params={}, provenance={}, primary="mel") as w:
        w.add("c0", feats, "ab" * 32)
    out = tmp_path / "mel.csd"
    for name in (f"{out.name}.tmp.csd", f".{out.name}.{os.getpid()}.tmp.csd"):
        out.with_name(name).symlink_to(victim)
    export_csd(fdir, out)
    assert victim.read_text() == SECRET
    _, entries, _ = read_csd(out)
    assert entries["c0"][0].shape == (3, 2)
