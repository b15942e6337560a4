"""SIGKILL a real extraction part-way; the rerun reuses finished clips and writes shards
identical to an uninterrupted run. Readers never see a half-written directory."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pipeline.config import load_params
from pipeline.runner import HOST
from pipeline.store import FeatureReader
from pipeline.workflow import run_feature, run_ingest

REPO = Path(__file__).resolve().parents[1]


def _shard_arrays(d: Path) -> dict:
    with FeatureReader(d) as r:
        return {cid: {k: v.tobytes() for k, v in r.read(cid).arrays.items()} for cid in r.clip_ids}


def test_kill_mid_stage_then_resume(project_factory, sample_clips, caplog):
    root = project_factory(sample_clips[:24], runner={"n_jobs": 1, "batch_clips": 1})
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    out = root / "data/features/sample/mel"
    cache = root / "cache/sample/mel"

    # an uninterrupted reference run, with its own cache
    ref_params = yaml.safe_load((root / "params.yaml").read_text())
    ref_params["runner"]["cache_dir"] = str(root / "refcache")
    (root / "ref.yaml").write_text(yaml.safe_dump(ref_params))
    run_feature(load_params(root / "ref.yaml"), "mel", root, progress=False,
                out_dir=root / "reference")

    # a first complete run, so a reader has an old directory to look at during the rerun
    run_feature(params, "mel", root, progress=False)
    old = _shard_arrays(out)
    shutil.rmtree(cache)  # the rerun must extract everything again

    proc = subprocess.Popen(
        [sys.executable, str(REPO / "stages" / "mel.py"), "--params", "params.yaml", "--quiet"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        done = list(cache.glob("*/*.h5")) if cache.exists() else []
        if len(done) >= 4:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(cache.glob("*/*.h5")))
    assert 4 <= done < 24, f"kill came too late to test anything ({done} clips done)"

    # the old directory is still whole; nothing half-written is visible under the out path
    assert _shard_arrays(out) == old
    assert not list(out.glob("*.tmp"))

    # What a worker killed mid-clip leaves: a temporary file beside a clip's final name.
    finished = next(cache.glob("*/*.h5"))
    leftover = finished.with_name(f"{finished.name}.{HOST}.424242.1.tmp")
    leftover.write_bytes(b"partial")

    caplog.set_level("INFO", logger="pipeline.runner")
    t0 = time.perf_counter()
    assert run_feature(params, "mel", root, progress=False) == 0
    resume_s = time.perf_counter() - t0
    assert f"extracting {24 - done}, reusing {done}" in caplog.text
    assert _shard_arrays(out) == _shard_arrays(root / "reference")
    assert not [p for p in out.parent.glob(".mel.*") if p.name != ".mel.lock"], \
        "leftover working directories"
    assert not list(cache.glob("*/*.tmp")), "leftover temporary cache files"
    print(f"resumed {24 - done} clips in {resume_s:.2f} s")
