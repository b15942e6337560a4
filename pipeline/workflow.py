"""What each DVC stage does, as library functions (the stage scripts only call these).

Each function takes validated :class:`~pipeline.config.Params`, does the stage's work and
writes its outputs; it returns the process exit code (0, or 1 when ``strict`` is set and some
clip failed).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from .clip_warnings import collect_warnings, write_warnings
from .config import Params
from .corpora import ADAPTERS, get_adapter
from .exits import MissingInputError
from .features import get_extractor_class, make_extractor
from .folds import fold_manifest
from .ingest import ingest
from .locks import output_lock
from .manifest import dump_json, read_manifest, write_failures, write_manifest
from .paths import Layout
from .runner import run_extraction
from .store import FeatureReader

log = logging.getLogger(__name__)


def layout(params: Params, root: str | Path = ".") -> Layout:
    return Layout(params.corpus.name, root=Path(root), cache_root=Path(params.runner.cache_dir))


def run_ingest(params: Params, root: str | Path = ".") -> int:
    lay = layout(params, root)
    adapter = get_adapter(
        params.corpus.adapter, Path(root) / params.corpus.root, params.corpus.options
    )
    result = ingest(adapter)
    roots = _roots(params, root)
    write_failures(lay.failures_csv("ingest"), result.failures, roots)
    write_warnings(lay.warnings_csv("ingest"), result.warnings)
    if not result.entries:  # the previous manifest, if any, is left as it was
        if result.failures:
            raise MissingInputError(
                f"ingest: none of the {len(result.failures)} clip(s) under {adapter.root} "
                f"could be ingested; the reasons are in {lay.failures_csv('ingest')}"
            )
        raise MissingInputError(
            f"ingest: no clips found under {adapter.root} (adapter {adapter.name}: no media "
            f"files of its layout there); check corpus.root and corpus.adapter"
        )
    write_manifest(lay.clips_csv, result.entries)
    log.log(
        logging.WARNING if result.failures or result.warnings else logging.INFO,
        "ingest: %d clips in %s; %d failed (%s), %d with a warning (%s)",
        len(result.entries), lay.clips_csv, len(result.failures), lay.failures_csv("ingest"),
        len(result.warnings), lay.warnings_csv("ingest"),
    )  # fmt: skip
    dump_json(
        lay.metrics_json("ingest"),
        {
            "clips": len(result.entries),
            "failed": len(result.failures),
            "warned": len(result.warnings),
            "hours": round(sum(e.duration for e in result.entries) / 3600, 4),
        },
    )
    return 1 if (params.ingest.strict and result.failures) else 0


def run_folds(params: Params, root: str | Path = ".") -> int:
    lay = layout(params, root)
    entries = read_manifest(lay.clips_csv)
    lay.folds_dir.mkdir(parents=True, exist_ok=True)
    wanted = set()
    # no schemes in params: the corpus's standard ones (docs/corpora.md lists them)
    schemes = params.folds.schemes or ADAPTERS[params.corpus.adapter].fold_schemes
    if not schemes:
        log.warning("folds: no schemes in params.yaml and none standard for %s",
                    params.corpus.adapter)  # fmt: skip
    # Clips the corpus says are one take (RAVDESS paired recordings) share a part in every
    # scheme, whatever params.yaml says. A manifest without that column (written before the
    # adapter named takes, or by other tools) holds one clip per take: nothing to keep together.
    together = getattr(ADAPTERS[params.corpus.adapter], "together", "")
    if together and not any(together in e.meta for e in entries):
        log.info("folds: the manifest has no %s column; each clip is its own take", together)
        together = ""
    shared = together and len({e.meta.get(together) for e in entries}) < len(entries)
    trained = getattr(params.extra.get("train"), "scheme", "")
    for scheme in schemes:
        if scheme.leaky and shared:  # a warning when training will use it (the report says)
            log.log(
                logging.WARNING if scheme.name == trained else logging.INFO,
                "folds: %s is leaky (on purpose): the clips of one %s may fall into different "
                "parts, so test clips can have near-copies in training and its scores are "
                "inflated; use it only to measure that", scheme.name, together)
        elif scheme.leaky:  # each take is one clip: nothing can leak, so nothing to say
            scheme = replace(scheme, leaky=False)
        elif together and not scheme.together:
            scheme = replace(scheme, together=together)
        manifest = fold_manifest(entries, scheme, params.folds.seed)
        dump_json(lay.folds_dir / f"{scheme.name}.json", manifest)
        wanted.add(f"{scheme.name}.json")
        log.info("folds: %s: %d fold(s)", scheme.name, len(manifest["folds"]))
    for old in lay.folds_dir.glob("*.json"):
        if old.name not in wanted:
            old.unlink()
    return 0


def feature_records(
    lay: Layout, feature: str, out_dir: Path | None = None
) -> tuple[Path, Path, Path]:
    """Where a feature run writes its failures CSV, metrics JSON and warnings CSV: the
    corpus's usual places, or beside the shards (``<out>.failures.csv``,
    ``<out>.metrics.json``, ``<out>.warnings.csv``) when the shards go to ``out_dir``, so two
    runs to different places never overwrite each other. The run's own facts (times, clips
    reused) go beside the metrics, in ``*.run.json``."""
    if out_dir is None:
        return lay.failures_csv(feature), lay.metrics_json(feature), lay.warnings_csv(feature)
    out_dir = Path(out_dir)
    return (out_dir.parent / f"{out_dir.name}.failures.csv",
            out_dir.parent / f"{out_dir.name}.metrics.json",
            out_dir.parent / f"{out_dir.name}.warnings.csv")


def run_facts_path(metrics_json: Path) -> Path:
    """``<stage>.run.json`` beside ``<stage>.json``: what differs from run to run, kept out
    of the metrics that DVC hashes so that a rerun on the same inputs changes nothing."""
    return metrics_json.with_name(metrics_json.name.removesuffix(".json") + ".run.json")


def run_feature(
    params: Params,
    feature: str,
    root: str | Path = ".",
    progress: bool = True,
    out_dir: Path | None = None,
) -> int:
    """Run one extraction stage. Before anything is written (no lock file, no output): an
    unknown stage is a ValueError, an ``out_dir`` that overlaps the cache or the corpus is
    refused, and what the stage reads from another stage must be there
    (:class:`~pipeline.exits.MissingInputError`, e.g. landmarks before faces)."""
    get_extractor_class(feature)
    lay = layout(params, root)
    entries = read_manifest(lay.clips_csv)
    corpus = Path(root) / params.corpus.root
    if not corpus.is_dir():
        raise MissingInputError(
            f"corpus root {corpus} does not exist or is not a folder; set corpus.root (or "
            f"--corpus) to where the media of {lay.clips_csv} lie"
        )
    if feature == "landmarks":  # its boxes come from this corpus's faces shards
        from .features.landmarks import with_faces_dir

        params = with_faces_dir(params, root)
    make_extractor(feature, params.section(feature)).check_inputs()
    out = out_dir or lay.features_dir(feature)
    if out_dir is not None:
        _check_out(Path(out_dir), params, root)
    failures_csv, metrics_json, warnings_csv = feature_records(lay, feature, out_dir)
    with output_lock(out, feature):  # shards, failures and metrics: one writer at a time
        summary = run_extraction(
            feature,
            params.section(feature),
            entries,
            corpus_root=Path(root) / params.corpus.root,
            out_dir=out,
            cache_dir=lay.cache_dir,
            runner=params.runner,
            progress=progress,
        )
        write_failures(failures_csv, summary.failures, _roots(params, root))
        warned = collect_warnings(feature, out)
        write_warnings(warnings_csv, warned)
        metrics = summary.metrics()
        metrics["warned"] = len(warned)
        metrics.update(extractor_metrics(feature, out))
        dump_json(metrics_json, metrics)
        dump_json(run_facts_path(metrics_json), summary.run_facts())
    # the stage's one summary line
    log.log(
        logging.WARNING if summary.failures or warned else logging.INFO,
        "%s: %d clips: %d extracted, %d reused from the cache, %d failed (%s), %d with a "
        "warning (%s); shards in %s, metrics in %s (%.1f s)",
        feature, summary.n_clips, summary.n_extracted, summary.n_reused,
        len(summary.failures), failures_csv, len(warned), warnings_csv, out, metrics_json,
        summary.seconds,
    )  # fmt: skip
    # strict: a clip kept with a warning (a face rate under min_face_rate, an unsure speaker
    # choice) fails the stage as a failed clip does
    return 1 if (params.runner.strict and (summary.failures or warned)) else 0


def _roots(params: Params, root: str | Path) -> list[tuple[Path, str]]:
    """The folders a failure reason's paths are written relative to (reasons are stored in
    DVC outputs: no absolute path of this machine may reach them)."""
    return [(Path(root) / params.corpus.root, "the corpus root"), (Path(root), "the project"),
            (Path(root) / params.runner.cache_dir, "the cache")]


def _check_out(out_dir: Path, params: Params, root: str | Path) -> None:
    """Refuse an output directory that overlaps the cache or the corpus: the stage replaces
    its output directory whole, which would delete cached clips or media."""
    out = out_dir.resolve()
    cache = (Path(root) / params.runner.cache_dir).resolve()
    corpus = (Path(root) / params.corpus.root).resolve()
    for what, other in (("the cache (runner.cache_dir)", cache), ("the corpus", corpus)):
        if out == other or out.is_relative_to(other) or other.is_relative_to(out):
            raise ValueError(
                f"--out {out_dir}: the stage's output {out} overlaps {what} at {other}; the "
                f"output directory is replaced whole, so choose one outside it"
            )


def extractor_metrics(feature: str, feature_dir: Path) -> dict:
    """The extractor's own corpus metrics: its ``summed_attrs`` summed over the clips in the
    written shards (cached clips included), through ``corpus_metrics``."""
    cls = get_extractor_class(feature)
    if not cls.summed_attrs:
        return {}
    sums = dict.fromkeys(cls.summed_attrs, 0.0)
    with FeatureReader(feature_dir) as reader:
        for clip_id in reader.clip_ids:
            attrs = reader.group(clip_id, members=False).attrs
            for key in cls.summed_attrs:
                sums[key] += float(attrs.get(key, 0))
    return cls.corpus_metrics(sums)
