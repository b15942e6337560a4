"""`mer verify` on a real shard damaged one bit at a time: never a crash, and a finding for
every flip that changes what a reader gets; a schema version that disagrees with its
evidence is a finding too."""

import json
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.cli import main as mer
from pipeline.store.format import CLIPS_GROUP
from pipeline.verify import verify
from tests.conftest import REPO, make_project

FEATURE = "spectrogram"


@pytest.fixture(scope="module")
def small(tmp_path_factory, sample_clips) -> Path:
    """The spectrogram directory of two sample clips, as the stage wrote it."""
    root = make_project(tmp_path_factory.mktemp("small"), sample_clips[:2],
                        {"runner": {"n_jobs": 1}})
    assert mer(["extract", FEATURE, "--root", str(root), "--params", str(root / "params.yaml"),
                "-q"]) == 0
    return root / "data/features/sample" / FEATURE


@pytest.fixture
def fdir(small, tmp_path) -> Path:
    out = tmp_path / FEATURE
    shutil.copytree(small, out)
    for p in out.iterdir():
        p.chmod(0o644)
    return out


def _headers(shard: Path) -> list[tuple[str, int, int]]:
    """(object, first byte, size) of the object headers of ``/clips`` and its first clip
    group."""
    out = []
    with h5py.File(shard, "r") as f:
        clips = f[CLIPS_GROUP]
        first = clips[sorted(clips)[0]]
        for obj in (clips, first):
            info = h5py.h5o.get_info(obj.id)
            out.append((obj.name, info.addr, info.hdr.space.total))
    return out


def _read_all(shard: Path) -> object:
    """Everything a reader gets from the shard's clips: attributes and values."""
    out = {}
    with h5py.File(shard, "r") as f:
        out["file"] = {k: str(v) for k, v in f.attrs.items()}
        for cid, g in f[CLIPS_GROUP].items():
            out[cid] = ({k: str(v) for k, v in g.attrs.items()},
                        {k: (ds[()].tobytes(), ds.dtype.str, ds.shape,
                             {a: str(v) for a, v in ds.attrs.items()}) for k, ds in g.items()})
    return out


def flip_all(fdir: Path) -> dict:
    """Flip bytes of the object headers in turn and verify: every byte of ``/clips``'s at
    its low, middle and high bit; every byte of the first clip group's at one bit, rotating
    through the eight. Returns the counts and the flips that went unnoticed (runs in a small
    process of its own: see the test)."""
    shard = fdir / "shard-00000.h5"
    good = shard.read_bytes()
    want = _read_all(shard)
    flips, damaging, unnoticed = 0, 0, []
    for i, (name, start, size) in enumerate(_headers(shard)):
        for at in range(start, start + size):
            bits = (0, 3, 7) if i == 0 else ((at - start) % 8,)
            for bit in bits:
                data = bytearray(good)
                data[at] ^= 1 << bit
                shard.write_bytes(bytes(data))
                flips += 1
                problems = verify(fdir)  # must not raise (nor die), whatever the flip
                try:  # in a child: some flips make HDF5 itself crash
                    with ProcessPoolExecutor(1, mp_context=get_context("fork")) as pool:
                        harmful = pool.submit(_read_all, shard).result() != want
                except Exception:  # noqa: BLE001 - unreadable, or a crash, is harmful
                    harmful = True
                damaging += harmful
                if harmful and not problems:
                    unnoticed.append(f"{name}: bit {bit} of byte {at}")
    shard.write_bytes(good)
    return {"flips": flips, "damaging": damaging, "unnoticed": unnoticed}


def test_every_bit_flip_in_the_clips_headers_is_found_not_crashed_on(fdir):
    """The headers of ``/clips`` and of a clip group, every byte flipped. Some flips in a
    clip group's header (which HDF5 does not checksum) make the HDF5
    library read out of bounds and die with SIGSEGV; verify reads each shard in a child
    process and reports that as a finding. The flips run in a fresh small process (no torch
    loaded), where each child process starts in a few milliseconds."""
    assert verify(fdir) == []
    code = ("import json, sys; from pathlib import Path; "
            "from tests.test_verify_damage import flip_all; "
            "print(json.dumps(flip_all(Path(sys.argv[1]))))")
    p = subprocess.run([sys.executable, "-c", code, str(fdir)], cwd=REPO, capture_output=True,
                       text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-2000:]  # verify itself never died
    result = json.loads(p.stdout)
    assert result["unnoticed"] == [], result["unnoticed"]
    assert result["damaging"] > result["flips"] // 2, result
    assert verify(fdir) == []  # the shard is back as it was


def test_a_shard_that_claims_an_older_schema_is_a_finding(fdir):
    shard = fdir / "shard-00000.h5"
    with h5py.File(shard, "r+") as f:
        f.attrs["schema_version"] = 1  # schema 1: timestamps and attributes not checksummed
        g = f[CLIPS_GROUP][sorted(f[CLIPS_GROUP])[0]]
        ts = g["timestamps"]
        ts[0] = ts[0] + 0.5  # damage where schema 1 has no checksum ...
        del ts.attrs["sha256"]  # ... and hide it
    problems = verify(fdir)
    assert any("claims schema version 1" in p and "index.json says 2" in p for p in problems)
    assert any("'timestamps'" in p and "no sha256" in p for p in problems), problems
    # the index agrees with the shard, but the clips carry schema 2 checksums
    index = json.loads((fdir / "index.json").read_text())
    index["schema_version"] = 1
    (fdir / "index.json").write_text(json.dumps(index))
    problems = verify(fdir)
    assert any("carries schema 2 checksums" in p for p in problems), problems
    assert any("'timestamps'" in p and "no sha256" in p for p in problems), problems


def test_damaged_shard_through_the_cli_is_exit_1_not_4(fdir, capsys):
    shard = fdir / "shard-00000.h5"
    data = bytearray(shard.read_bytes())
    name, start, size = _headers(shard)[0]
    data[start + size // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    capsys.readouterr()
    assert mer(["verify", str(fdir)]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err and out.out.strip()
    assert np.all([line.startswith(str(fdir)) or line.startswith("clip ")
                   for line in out.out.splitlines()])
