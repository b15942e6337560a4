"""Run one extractor over a clip manifest: cache, fan out, record failures, write shards.

1. Each clip gets a cache key: sha256 of (source hash, cut, extractor name/version/params,
   model token, schema version). Clips whose key is already in the per-clip cache
   (``<cache_dir>/<corpus>/<feature>/<key[:2]>/<key>.h5``, outside the DVC outs) are reused.
2. The rest go to joblib workers in small batches (loky processes by default, Dask for a
   cluster). A worker builds its extractor and loads its models once, then writes each
   clip's features to its cache file under a temporary name and renames it when complete.
3. A clip that raises is recorded (clip id, stage, reason, exception type); the rest go on.
4. The shards are assembled from the cache in manifest order, each written atomically, and
   the index written last.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py

from .config import RunnerConfig
from .extras import needs
from .features import ClipSource, Extractor, make_extractor
from .hashing import params_hash
from .manifest import Failure, ManifestEntry
from .store import SCHEMA_VERSION, ClipSink, ShardWriter
from .store.reader import ShardError
from .store.writer import fsync_file

with needs("running a stage", "pipeline"):
    from joblib import Parallel, delayed, parallel_config
    from tqdm import tqdm

log = logging.getLogger(__name__)

CACHE_GROUP = "clip"  # the one group of a per-clip cache file

# Worker-process state: extractors already set up, keyed by (name, params hash).
_WORKER_EXTRACTORS: dict[tuple[str, str], Extractor] = {}


@dataclass
class Task:
    clip_id: str
    source: ClipSource
    cache_path: str
    cache_key: str


@dataclass
class ClipOutcome:
    clip_id: str
    ok: bool
    seconds: float
    reason: str = ""
    exception_type: str = ""
    audio_seconds: float = 0.0


@dataclass
class RunSummary:
    feature: str
    n_clips: int
    n_extracted: int
    n_reused: int
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    extract_seconds: float = 0.0  # summed over clips, in workers
    audio_seconds: float = 0.0  # media seconds extracted this run
    n_workers: int = 1

    def metrics(self) -> dict[str, Any]:
        return {
            "clips": self.n_clips,
            "extracted": self.n_extracted,
            "reused_from_cache": self.n_reused,
            "failed": len(self.failures),
            "seconds": round(self.seconds, 3),
            "media_seconds_per_second": round(self.audio_seconds / self.seconds, 2)
            if self.seconds and self.audio_seconds
            else 0.0,
        }


def source_for(entry: ManifestEntry, root: str | Path) -> ClipSource:
    return ClipSource(
        clip_id=entry.clip_id,
        path=entry.media_path(root),
        sha256=entry.sha256,
        start=entry.start,
        end=entry.end,
        fps=entry.fps,
        duration=entry.duration,
        has_audio=entry.has_audio,
        has_video=entry.has_video,
        transcript=entry.transcript,
        speaker=entry.speaker,
        meta=dict(entry.meta),
    )


def cache_key(extractor: Extractor, entry: ManifestEntry) -> str:
    return params_hash(
        {
            "schema": SCHEMA_VERSION,
            "extractor": extractor.cache_token(),
            "source": entry.sha256,
            "cut": [entry.start, entry.end],
        }
    )


def _worker_extractor(name: str, config: Any, n_threads: int) -> Extractor:
    key = (name, params_hash(config))
    ex = _WORKER_EXTRACTORS.get(key)
    if ex is None:
        ex = make_extractor(name, config)
        ex.ensure_setup()
        # Only when the extractor loaded torch: importing it just to set its threads costs a
        # worker of an audio stage about 400 MB.
        torch = sys.modules.get("torch")
        if n_threads and torch is not None:
            torch.set_num_threads(n_threads)
        _WORKER_EXTRACTORS[key] = ex
    return ex


def _run_batch(
    name: str, config: dict[str, Any], tasks: list[Task], runner: RunnerConfig, n_threads: int
) -> list[ClipOutcome]:
    """Executed in a worker: extract each clip of the batch into its cache file."""
    outcomes = []
    try:
        extractor = _worker_extractor(name, config, n_threads)
    except Exception as e:  # noqa: BLE001 - a model that cannot load fails every clip
        return [
            ClipOutcome(t.clip_id, False, 0.0, f"setup failed: {e}", type(e).__name__)
            for t in tasks
        ]
    for t in tasks:
        t0 = time.perf_counter()
        try:
            attrs = _extract_to_cache(extractor, t, runner)
            outcomes.append(
                ClipOutcome(
                    t.clip_id,
                    True,
                    time.perf_counter() - t0,
                    audio_seconds=float(attrs.get("audio_seconds", t.source.duration)),
                )
            )
        except Exception as e:  # noqa: BLE001 - every per-clip failure is recorded, not raised
            reason = str(e) or type(e).__name__
            outcomes.append(
                ClipOutcome(t.clip_id, False, time.perf_counter() - t0, reason, type(e).__name__)
            )
    return outcomes


def _extract_to_cache(extractor: Extractor, task: Task, runner: RunnerConfig) -> dict[str, Any]:
    """Extract one clip straight into its cache file: written under a temporary name (rows
    stream there once they pass ``runner.spill_mb``), marked complete, renamed into place.
    A failure or a kill leaves no file under the final name."""
    path = Path(task.cache_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            sink = ClipSink(
                f.create_group(CACHE_GROUP),
                spill_bytes=int(runner.spill_mb * 2**20),
                compression=runner.compression,
            )
            attrs = extractor.extract_into(task.source, sink)
            sink.close(attrs, task.source.sha256, task.cache_key)
            f.attrs["complete"] = True
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return attrs


def _remove_leftovers(cache_root: Path) -> None:
    """Delete the temporary files that killed workers left for clips now complete (a worker
    that dies mid-clip leaves ``<key>.h5.<pid>...tmp``; the clip is extracted again)."""
    for tmp in cache_root.glob("*/*.h5.*.tmp"):
        final = tmp.with_name(tmp.name.split(".h5.", 1)[0] + ".h5")
        if final.exists():
            tmp.unlink(missing_ok=True)


def _batches(tasks: list[Task], size: int) -> Iterator[list[Task]]:
    for i in range(0, len(tasks), max(1, size)):
        yield tasks[i : i + size]


@contextlib.contextmanager
def _backend(cfg: RunnerConfig) -> Iterator[dict[str, Any]]:
    if cfg.backend == "dask":
        with needs("runner.backend dask", "pipeline"):
            from distributed import Client, LocalCluster

        if cfg.scheduler:
            client = Client(cfg.scheduler)
        else:
            cluster = LocalCluster(
                n_workers=cfg.n_jobs, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
        try:
            with parallel_config(backend="dask"):
                yield {"n_jobs": -1}
        finally:
            client.close()
            if not cfg.scheduler:
                cluster.close()
    elif cfg.backend == "sequential" or cfg.n_jobs == 1:
        yield {"n_jobs": 1, "backend": "sequential"}
    else:
        yield {"n_jobs": cfg.n_jobs, "backend": cfg.backend}


def _read_cached(path: Path) -> h5py.File | None:
    try:
        f = h5py.File(path, "r")
    except OSError:
        return None
    if not f.attrs.get("complete", False):
        f.close()
        return None
    return f


def run_extraction(
    feature: str,
    config: Any,
    entries: Sequence[ManifestEntry],
    corpus_root: str | Path,
    out_dir: str | Path,
    cache_dir: str | Path,
    runner: RunnerConfig,
    progress: bool = True,
) -> RunSummary:
    """Extract ``feature`` for every entry into shards under ``out_dir``."""
    t_start = time.perf_counter()
    extractor = make_extractor(feature, config)
    from .config import to_dict

    config_dict = to_dict(extractor.config)
    # Absolute paths: workers on a cluster need not share the driver's working directory.
    corpus_root = Path(corpus_root).absolute()
    cache_root = Path(cache_dir).absolute() / feature
    tasks: list[Task] = []
    reused = 0
    failures: list[Failure] = []
    keys: dict[str, str] = {}
    for e in entries:
        try:
            src = source_for(e, corpus_root)
        except ValueError as err:
            failures.append(Failure(e.clip_id, feature, str(err), type(err).__name__))
            continue
        key = cache_key(extractor, e)
        keys[e.clip_id] = key
        path = cache_root / key[:2] / f"{key}.h5"
        cached = _read_cached(path) if path.exists() else None
        if cached is not None:
            cached.close()
            reused += 1
            continue
        tasks.append(Task(e.clip_id, src, str(path), key))
    log.info(
        "%s: %d clips, extracting %d, reusing %d from cache (%s)",
        feature,
        len(entries),
        len(tasks),
        reused,
        cache_root,
    )
    outcomes: list[ClipOutcome] = []
    n_threads = 1 if (runner.n_jobs > 1 or runner.backend == "dask") else 0
    if tasks:
        with _backend(runner) as pkw:
            par = Parallel(return_as="generator_unordered", **pkw)
            jobs = (
                delayed(_run_batch)(feature, config_dict, b, runner, n_threads)
                for b in _batches(tasks, runner.batch_clips)
            )
            with tqdm(total=len(tasks), desc=feature, unit="clip", disable=not progress) as bar:
                for batch in par(jobs):
                    outcomes.extend(batch)
                    bar.update(len(batch))
    _remove_leftovers(cache_root)
    for o in outcomes:
        if not o.ok:
            failures.append(Failure(o.clip_id, feature, o.reason, o.exception_type))
            log.warning("%s: %s failed: %s (%s)", feature, o.clip_id, o.reason, o.exception_type)
    failed = {f.clip_id for f in failures}
    _assemble(extractor, entries, keys, failed, cache_root, Path(out_dir), runner)
    summary = RunSummary(
        feature=feature,
        n_clips=len(entries),
        n_extracted=sum(o.ok for o in outcomes),
        n_reused=reused,
        failures=failures,
        seconds=time.perf_counter() - t_start,
        extract_seconds=sum(o.seconds for o in outcomes),
        audio_seconds=sum(o.audio_seconds for o in outcomes if o.ok),
        n_workers=runner.n_jobs,
    )
    log.info(
        "%s: extracted %d clip(s), reused %d from cache, %d failed, in %.1f s",
        feature,
        summary.n_extracted,
        reused,
        len(failures),
        summary.seconds,
    )
    return summary


def _assemble(
    extractor: Extractor,
    entries: Sequence[ManifestEntry],
    keys: dict[str, str],
    failed: set[str],
    cache_root: Path,
    out_dir: Path,
    runner: RunnerConfig,
) -> None:
    params = {"feature": extractor.name, **extractor.cache_token()}
    with ShardWriter(
        out_dir,
        feature=extractor.name,
        params=params,
        provenance=extractor.provenance(),
        primary=extractor.primary,
        max_bytes=int(runner.shard_max_mb * 2**20),
        compression=runner.compression,
    ) as writer:
        for e in entries:
            if e.clip_id in failed or e.clip_id not in keys:
                continue
            key = keys[e.clip_id]
            path = cache_root / key[:2] / f"{key}.h5"
            f = _read_cached(path)
            if f is None:
                raise ShardError(f"cache file for {e.clip_id} vanished or is incomplete: {path}")
            with f:
                writer.add_from(e.clip_id, f[CACHE_GROUP])


def summary_json(summary: RunSummary) -> str:
    return json.dumps(summary.metrics(), indent=2, sort_keys=True)
