"""Run one extractor over a clip manifest: cache, fan out, record failures, write shards.

1. Each clip gets a cache key: sha256 of everything that defines its output: the media's
   content hash and probe facts, the cut, the clip fields the extractor declares it reads
   (transcript, word times, ... as text hashes), its per-clip inputs (e.g. the faces rows
   under landmarks), the extractor's name, version and params, the model's content hash and
   the schema version. Never a path or a time. Clips whose key is in the per-clip cache
   (``<cache_dir>/<corpus>/<feature>/<key[:2]>/<key>.h5``, outside the DVC outs) and whose
   checksums hold are reused; a media file that changed since ingest is a failure, never
   features under the old hash (a memo keyed on each file's device, inode, size, mtime and
   ctime spares re-hashing unchanged files).
2. The rest go to joblib workers in small batches (loky processes by default, Dask for a
   cluster; :mod:`pipeline.execution`, which also retries the clips of a worker that died).
   A worker builds its extractor and loads its models once, opens each clip's media (and
   audio) file once and decodes it through that descriptor while hashing what is read
   (:mod:`pipeline.media.source_file`): a file that is not the ingested one, or that
   changed while it was read, fails the clip. It writes the features to the clip's cache
   file under a temporary name unique to the process; a second thread fsyncs each finished
   file and renames it into place while the next clip is extracted, and the batch is
   reported done only when all of its files are durable in place.
3. A clip that raises is recorded (clip id, stage, reason, exception type); the rest go on.
   A model that cannot load fails the whole stage and leaves the previous output in place.
4. The shards are assembled from the cache in manifest order, each written atomically, and
   the index written last. The whole run holds the output's lock (:mod:`pipeline.locks`).

Per-clip costs that went, and how what they guarded is kept:
- the second read of the media to hash it: the bytes are hashed as the decoders read them,
  through the one descriptor, so what is decoded is provably what was hashed;
- the cache file's fsync on the clip's path: done by a second thread before the rename
  (:mod:`pipeline.cache_commit`); a file under its final name was synced whole first, and a
  batch is reported only when its files are in place, so a killed run loses only clips in
  flight and no partial cache file looks complete;
- ``threadpool_limits`` rescanning the loaded libraries per clip: the scan is kept and
  redone only after an import (:mod:`pipeline.thread_limits`); every clip still runs with
  one BLAS thread, lifted after it;
- probing a file's video frames before decoding only its sound: skipped (the samples are
  the same, bit for bit).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import h5py

from . import progress as live
from .cache_commit import CacheCommitter
from .config import RunnerConfig
from .devices import place_worker, worker_config
from .execution import run_batches, watch_parent
from .features import ClipSource, Extractor, make_extractor
from .features.base import restrict_source, source_key_inputs
from .hashing import FileIdentity, MediaHashMemo, params_hash
from .locks import output_lock
from .manifest import Failure, ManifestEntry
from .media.source_file import ClipFiles, known_sha256, reuse_problem
from .store import SCHEMA_VERSION, ClipSink, ShardWriter
from .store.integrity import UnsafeObjectError, clip_group_problems, member_problems, reach
from .store.reader import ShardError
from .thread_limits import one_thread

log = logging.getLogger(__name__)

CACHE_GROUP = "clip"  # the one group of a per-clip cache file
HOST = socket.gethostname().replace(".", "_")

# Worker-process state: extractors already set up, keyed by (name, params hash).
_WORKER_EXTRACTORS: dict[tuple[str, str], Extractor] = {}


class StageError(RuntimeError):
    """The stage as a whole cannot run (a model that does not load): nothing is written."""


@dataclass
class Task:
    clip_id: str
    source: ClipSource
    cache_path: str
    cache_key: str
    slot: int = 0  # the number of its batch: which GPU a worker's models go to


@dataclass
class ClipOutcome:
    clip_id: str
    ok: bool
    seconds: float
    reason: str = ""
    exception_type: str = ""
    audio_seconds: float = 0.0
    setup_failed: bool = False  # the extractor's models did not load: the stage fails
    media_sha256: str = ""  # the media bytes' hash as read in the worker
    media_identity: FileIdentity | None = None  # the open file those bytes were read from
    reused: bool = False  # a complete cache file was already there (a retried batch)


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
        """Facts about the output: the same for the same inputs, whatever the cache held
        (DVC records this file's hash in dvc.lock)."""
        return {"clips": self.n_clips, "failed": len(self.failures)}

    def run_facts(self) -> dict[str, Any]:
        """Facts about this run (times, what the cache supplied): they differ run to run."""
        return {
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
        audio_path=entry.audio_file(root),
        audio_name=entry.audio_path,
        audio_sha256=entry.audio_sha256,
    )


def cache_key(extractor: Extractor, source: ClipSource) -> str:
    """The clip's cache key (see the module docstring): a hash of content, never of paths."""
    return params_hash(
        {
            "schema": SCHEMA_VERSION,
            "extractor": extractor.cache_token(),
            "source": source_key_inputs(source, extractor.source_fields),
            "inputs": extractor.clip_inputs(source),
        }
    )


def _worker_extractor(name: str, config: Any, n_threads: int, slot: int = 0) -> Extractor:
    key = (name, params_hash(config))
    ex = _WORKER_EXTRACTORS.get(key)
    if ex is None:
        ex = make_extractor(name, config)
        place_worker(getattr(ex, "device", "cpu"), slot)  # worker k on GPU k mod n
        ex.ensure_setup()
        # Only when the extractor loaded torch: importing it just to set its threads costs a
        # worker of an audio stage about 400 MB.
        torch = sys.modules.get("torch")
        if n_threads and torch is not None:
            torch.set_num_threads(n_threads)
        _WORKER_EXTRACTORS[key] = ex
    return ex


def _run_batch(
    name: str,
    config: dict[str, Any],
    runner: RunnerConfig,
    n_threads: int,
    parent_pid: int,
    tasks: list[Task],
    channel: Any = None,
) -> list[ClipOutcome]:
    """Executed in a worker: extract each clip of the batch into its cache file. The first
    task's ``slot`` (its batch's number) places a worker's models on a GPU (see
    pipeline.devices). ``channel``: where the clips' progress goes (:mod:`pipeline.progress`).
    Returns when every file of the batch is durable in place."""
    watch_parent(parent_pid)
    outcomes = []
    try:
        extractor = _worker_extractor(name, config, n_threads, tasks[0].slot if tasks else 0)
    except Exception as e:  # noqa: BLE001 - a model that cannot load fails the stage
        return [
            ClipOutcome(t.clip_id, False, 0.0, f"setup failed: {e}", type(e).__name__,
                        setup_failed=True)
            for t in tasks
        ]
    committer = CacheCommitter()
    for t in tasks:
        t0 = time.perf_counter()
        report = live.clip_reporter(channel, t.clip_id)
        try:
            attrs, sha, identity, reused = _extract_to_cache(
                extractor, t, runner, committer, report
            )
            outcomes.append(
                ClipOutcome(
                    t.clip_id,
                    True,
                    time.perf_counter() - t0,
                    audio_seconds=float(attrs.get("audio_seconds", t.source.duration)),
                    media_sha256=sha,
                    media_identity=identity,
                    reused=reused,
                )
            )
        except Exception as e:  # noqa: BLE001 - every per-clip failure is recorded, not raised
            reason = str(e) or type(e).__name__
            outcomes.append(
                ClipOutcome(t.clip_id, False, time.perf_counter() - t0, reason, type(e).__name__)
            )
        if report is not None:
            report.done()
    committer.wait()  # every file of the batch synced and in place
    for o in outcomes:  # a file that could not be made durable in place fails its clip
        if o.ok and (err := committer.errors.get(o.clip_id)) is not None:
            o.ok, o.reason, o.exception_type = False, f"cache write failed: {err}", type(
                err).__name__
    return outcomes


def _extract_to_cache(
    extractor: Extractor, task: Task, runner: RunnerConfig, committer: CacheCommitter,
    report: Any = None,
) -> tuple[dict[str, Any], str, FileIdentity | None, bool]:
    """Extract one clip straight into its cache file: written under a temporary name unique to
    this host, process and thread (rows stream there once they pass ``runner.spill_mb``),
    marked complete, handed to ``committer`` to be synced and renamed into place. A failure
    or a kill leaves no file under the final name. The media is read through the one open
    file that is hashed (:class:`~pipeline.media.source_file.ClipFiles`). Returns the
    clip's attrs, its media hash and the identity of the file hashed, and whether the cache
    file was already there."""
    path = Path(task.cache_path)
    committer.settle(path)  # an earlier clip of the batch with the same key
    done = _read_cached(path) if path.exists() else None
    if done is not None:  # a batch retried after its worker died, or a clip of the same
        # key earlier in the batch, had finished this clip
        with done:
            attrs = dict(reach(done, CACHE_GROUP).attrs)
        with ClipFiles(task.source) as files:  # its own files must be the ingested ones too
            return attrs, files.finish(), files.media.identity, True
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{HOST}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with ClipFiles(task.source) as files:
            tmp.unlink(missing_ok=True)  # "w-": created new (O_EXCL), never through a link
            with h5py.File(tmp, "w-") as f:
                sink = ClipSink(
                    f.create_group(CACHE_GROUP),
                    spill_bytes=int(runner.spill_mb * 2**20),
                    compression=runner.compression,
                    on_rows=report.rows if report is not None else None,  # live progress
                )
                try:
                    with one_thread():
                        attrs = extractor.extract_into(files.source, sink)
                except Exception:
                    files.finish()  # a file that changed: that is the reason, whatever broke
                    raise
                sha = files.finish()
                sink.close(attrs, sha, task.cache_key)
                f.attrs["complete"] = True
            identity = files.media.identity
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    committer.commit(task.clip_id, tmp, path)
    return attrs, sha, identity, False


def _remove_leftovers(cache_root: Path) -> None:
    """Delete the temporary files that dead workers of this host left (``<key>.h5.<host>.
    <pid>.<thread>.tmp``); another live run's files, or another host's, are left alone."""
    from .store.writer import _pid_alive

    for tmp in cache_root.glob("*/*.h5.*.tmp"):
        parts = tmp.name.split(".h5.", 1)[-1].split(".")
        if len(parts) == 4 and parts[0] == HOST and not _pid_alive(parts[1]):
            tmp.unlink(missing_ok=True)


def _batches(tasks: list[Task], size: int) -> list[list[Task]]:
    """Batches of ``size`` tasks, each task told its batch's number (its GPU slot)."""
    out = []
    for slot, i in enumerate(range(0, len(tasks), max(1, size))):
        batch = tasks[i : i + size]
        for t in batch:
            t.slot = slot
        out.append(batch)
    return out


def _read_cached(path: Path) -> h5py.File | None:
    try:
        f = h5py.File(path, "r")
    except OSError:
        return None
    if not f.attrs.get("complete", False):
        f.close()
        return None
    return f


def _cache_entry_problems(path: Path, key: str, checksums: bool = True) -> list[str]:
    """Why a complete cache file must not be reused (checksums unless ``checksums`` is
    False, confinement, its key)."""
    f = _read_cached(path)
    if f is None:
        return ["unreadable or incomplete"]
    with f:
        try:
            group = reach(f, CACHE_GROUP)
        except (UnsafeObjectError, KeyError) as e:
            return [f"no /{CACHE_GROUP} group of its own ({e})"]
        if not isinstance(group, h5py.Group):
            return [f"no /{CACHE_GROUP} group"]
        if checksums:
            problems = [f"{name} {why}".strip() for name, why in clip_group_problems(group)]
        else:
            problems = [f"{name} {why}" for name, why in member_problems(group).items()]
        stored = group.attrs.get("cache_key", "")
        if isinstance(stored, bytes):
            stored = stored.decode()
        if stored != key:
            problems.append(f"holds key {str(stored)[:12]}, not {key[:12]}")
        return problems


def live_channel(runner: RunnerConfig) -> str:
    """How workers send live progress: a Manager queue to processes of this host, a plain
    queue to threads or this process, nothing to a remote cluster's workers."""
    if runner.backend == "dask":
        return "none" if runner.scheduler else "process"
    if runner.backend in ("sequential", "threading") or runner.n_jobs == 1:
        return "local"
    return "process"


def _fail(feature: str, clip_id: str, reason: str, exc: str) -> Failure:
    return Failure(clip_id, feature, reason, exc)


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
    """Extract ``feature`` for every entry into shards under ``out_dir`` (holding its lock)."""
    with output_lock(out_dir, feature):
        t_start = time.perf_counter()
        extractor = make_extractor(feature, config)
        from .config import to_dict

        config_dict = worker_config(to_dict(extractor.config), getattr(extractor, "device", None))
        # Absolute paths: workers on a cluster need not share the driver's working directory.
        corpus_root = Path(corpus_root).absolute()
        cache_root = Path(cache_dir).absolute() / feature
        memo = MediaHashMemo(Path(cache_dir).absolute() / "media-sha256.json")
        tasks: list[Task] = []
        reused = 0
        failures: list[Failure] = []
        keys: dict[str, str] = {}
        for e in entries:
            try:
                full = source_for(e, corpus_root)
            except ValueError as err:
                failures.append(_fail(feature, e.clip_id, str(err), type(err).__name__))
                continue
            if not full.sha256:  # a manifest without hashes: hash now
                full = replace(full, sha256=known_sha256(full.path, memo))
            src = restrict_source(full, extractor.source_fields)
            if src.audio_path is not None and not src.audio_sha256:
                src = replace(src, audio_sha256=known_sha256(src.audio_path, memo))
            key = cache_key(extractor, src)
            path = cache_root / key[:2] / f"{key}.h5"
            if path.exists():
                if why := reuse_problem(src, memo):
                    failures.append(_fail(feature, e.clip_id, why, "MediaChangedError"))
                    continue
                problems = _cache_entry_problems(path, key, runner.verify_cache)
                if not problems:
                    keys[e.clip_id] = key
                    reused += 1
                    continue
                log.warning("%s: %s: cache entry %s is damaged (%s); extracting it again",
                            feature, e.clip_id, path, "; ".join(problems[:3]))
                path.unlink(missing_ok=True)
            keys[e.clip_id] = key
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
        by_id = {t.clip_id: t for t in tasks}
        n_threads = 1 if (runner.n_jobs > 1 or runner.backend == "dask") else 0
        if tasks:
            with live.ExtractionProgress(
                feature, [(t.clip_id, t.source.duration) for t in tasks],
                unit=extractor.row_unit, channel_kind=live_channel(runner), show=progress,
            ) as bar:

                def done(batch: list[ClipOutcome]) -> None:
                    outcomes.extend(batch)
                    bar.finished([o.clip_id for o in batch])

                def lost(task: Task, reason: str) -> None:
                    done([ClipOutcome(task.clip_id, False, 0.0, reason, "WorkerDied")])

                run_batches(
                    partial(_run_batch, channel=bar.channel),
                    _batches(tasks, runner.batch_clips),
                    (feature, config_dict, runner, n_threads, os.getpid()),
                    runner,
                    key=lambda t: t.clip_id,
                    on_done=done,
                    on_lost=lost,
                )
        _remove_leftovers(cache_root)
        setup = [o for o in outcomes if o.setup_failed]
        if setup:
            raise StageError(
                f"{feature}: the extractor could not load its model, so no clip was extracted and "
                f"the previous output is left as it was: {setup[0].reason}"
            )
        for o in outcomes:
            if o.ok and o.media_sha256 and o.media_identity is not None:
                memo.put(by_id[o.clip_id].source.path, o.media_sha256, o.media_identity)
            if not o.ok:
                failures.append(_fail(feature, o.clip_id, o.reason, o.exception_type))
                log.warning("%s: %s failed: %s (%s)", feature, o.clip_id, o.reason,
                            o.exception_type)
        memo.save()
        failed = {f.clip_id for f in failures}
        _assemble(extractor, entries, keys, failed, cache_root, Path(out_dir), runner)
        summary = RunSummary(
            feature=feature,
            n_clips=len(entries),
            n_extracted=sum(o.ok and not o.reused for o in outcomes),
            n_reused=reused + sum(o.ok and o.reused for o in outcomes),
            failures=failures,
            seconds=time.perf_counter() - t_start,
            extract_seconds=sum(o.seconds for o in outcomes),
            audio_seconds=sum(o.audio_seconds for o in outcomes if o.ok),
            n_workers=runner.n_jobs,
        )
        log.debug(  # the stage logs its one summary line (workflow.run_feature)
            "%s: extracted %d clip(s), reused %d from cache, %d failed, in %.1f s",
            feature,
            summary.n_extracted,
            summary.n_reused,
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
                writer.add_from(e.clip_id, reach(f, CACHE_GROUP))


def summary_json(summary: RunSummary) -> str:
    return json.dumps({**summary.metrics(), **summary.run_facts()}, indent=2, sort_keys=True)
