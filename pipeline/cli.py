"""The ``mer`` command: every stage outside DVC, plus tools to look at what was written.

Exit codes (:mod:`pipeline.exits`, listed by ``mer --help``): 0 success; 1 some clips failed
and ``--strict`` (or ``runner.strict``) was set, or ``verify`` found a problem; 2 bad
arguments or parameters; 3 missing input (a corpus, clip, file, model or earlier stage), or a
missing optional dependency (one line names the extra to install: ``inspect`` and ``verify``
need none, ``train``/``evaluate`` need ``[train]`` and, to read params.yaml's extractor
sections, ``[extract]``; the stages ``[extract]`` and ``[pipeline]``; see
:mod:`pipeline.extras`); 4 the run itself failed (unreadable shards, a lost cluster, ...);
130 interrupted. An error is one line on stderr (``-v`` shows the traceback); with ``--json``
stdout holds exactly one JSON document, an error's included.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import yaml

from . import __version__
from .config import ConfigError, Params, core_params_from_dict, params_from_dict, read_yaml
from .exits import (
    CODES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_MISSING,
    EXIT_OK,
    MissingInputError,
    exit_code,
    one_line,
)
from .extras import missing_extra, needs
from .kernels import pin_environment


def _set_override(raw: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set takes KEY=VALUE (dotted key), got {assignment!r}")
    key, value = assignment.split("=", 1)
    node = raw
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {p} is not a section")
    node[parts[-1]] = read_yaml(f"--set {key}", value) if value != "" else ""


def load_cli_params(args: argparse.Namespace, core_only: bool = False) -> Params:
    """The parameters with the command line's overrides; ``core_only``: only the core sections
    (no extractor or trainer module is imported)."""
    path = Path(args.params)
    raw: dict[str, Any] = {}
    if path.exists():
        raw = read_yaml(path) or {}
    elif args.params != "params.yaml":
        raise ConfigError(f"parameter file not found: {path}")
    for assignment in args.set or []:
        _set_override(raw, assignment)
    if getattr(args, "corpus", None):
        raw.setdefault("corpus", {})["root"] = args.corpus
    if getattr(args, "adapter", None):
        raw.setdefault("corpus", {})["adapter"] = args.adapter
    if getattr(args, "name", None):
        raw.setdefault("corpus", {})["name"] = args.name
    params = core_params_from_dict(raw) if core_only else params_from_dict(raw)
    if getattr(args, "jobs", None):
        params = dataclasses.replace(
            params, runner=dataclasses.replace(params.runner, n_jobs=args.jobs)
        )
    if getattr(args, "strict", False):  # any failure fails the command: ingest's or a stage's
        params = dataclasses.replace(
            params, runner=dataclasses.replace(params.runner, strict=True),
            ingest=dataclasses.replace(params.ingest, strict=True),
        )
    return params


def _print(text: str) -> None:
    """Print to stdout; a reader that went away (``mer inspect ... | head``) ends the output
    quietly, not with a BrokenPipeError."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _drop_stdout()


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _emit(args: argparse.Namespace, obj: Any, text: str | None) -> None:
    """A command's result: ``obj`` as the one JSON document with ``--json``, else ``text``
    (None: the stage's own summary line, logged once, says it all)."""
    if args.json:
        _print(json.dumps(obj, indent=2, sort_keys=True, default=str))
    elif not args.quiet and text is not None:
        _print(text)


def cmd_ingest(args: argparse.Namespace) -> int:
    with needs("the ingest command", "extract"):
        from .workflow import layout, run_ingest

    params = load_cli_params(args)
    from .clip_warnings import read_warnings

    code = run_ingest(params, args.root)
    lay = layout(params, args.root)
    warned = read_warnings(lay.warnings_csv("ingest"))
    _emit(args, {"manifest": str(lay.clips_csv), "warned": len(warned), "exit": code}, None)
    return code


def cmd_folds(args: argparse.Namespace) -> int:
    with needs("the folds command", "extract"):
        from .workflow import layout, run_folds

    params = load_cli_params(args)
    code = run_folds(params, args.root)
    lay = layout(params, args.root)
    _emit(args, {"folds": str(lay.folds_dir), "exit": code}, None)
    return code


def cmd_extract(args: argparse.Namespace) -> int:
    from .clip_warnings import read_warnings
    from .manifest import read_failures

    with needs(", ".join(args.features), "extract"):
        from .features import get_extractor_class
        from .workflow import feature_records, layout, run_feature, run_ingest

    for feature in args.features:  # a mistyped stage stops here, before anything is written
        get_extractor_class(feature)
    params = load_cli_params(args)
    lay = layout(params, args.root)
    if args.ingest or not lay.clips_csv.exists():
        run_ingest(params, args.root)
    code = 0
    stages = []
    for feature in args.features:
        out = Path(args.out) / feature if args.out else None
        code = max(code, run_feature(params, feature, args.root, progress=not args.quiet,
                                     out_dir=out))
        failures_csv, metrics_json, warnings_csv = feature_records(lay, feature, out)
        stages.append({"feature": feature, "out": str(out or lay.features_dir(feature)),
                       "failed": len(read_failures(failures_csv)),
                       "warned": len(read_warnings(warnings_csv)),
                       "failures": str(failures_csv), "warnings": str(warnings_csv),
                       "metrics": str(metrics_json)})
    _emit(args, {"stages": stages, "exit": code}, None)
    return code


def cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect import describe

    info = describe(Path(args.path))
    _emit(args, info, yaml.safe_dump(info, sort_keys=False, width=100).rstrip())
    return EXIT_OK


def _feature_dirs(paths: list[str]) -> list[Path]:
    """Feature directories named on the command line; a folder of them (data/features/<corpus>)
    stands for each of its feature directories."""
    from .store.format import INDEX_NAME

    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        subdirs = _subdirs(path) if not (path / INDEX_NAME).exists() else []
        if any((p / INDEX_NAME).exists() for p in subdirs):
            out += subdirs
        else:
            out.append(path)
    return out


def _subdirs(path: Path) -> list[Path]:
    """Visible subfolders (a writer's hidden ``.<name>.writing-<pid>`` ones are not features)."""
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def cmd_verify(args: argparse.Namespace) -> int:
    from .paths import Layout
    from .verify import verify_features

    if args.tolerance < 0:
        raise ValueError(f"--tolerance must be >= 0 seconds, got {args.tolerance}")
    manifest = Path(args.manifest) if args.manifest else None
    missing: list[str] = []
    if args.paths:
        dirs = _feature_dirs(args.paths)
    else:  # the corpus of the parameters (--name): all its features, against its manifest
        lay = Layout(load_cli_params(args, core_only=True).corpus.name, root=Path(args.root))
        base = lay.features_dir("mel").parent  # data/features/<corpus>
        dirs = _subdirs(base)
        ran = sorted(p.stem for p in (lay.manifest_dir / "failures").glob("*.csv")
                     if p.stem != "ingest")
        missing = [
            f"{lay.features_dir(f)}: missing, but its stage ran (it wrote "
            f"{lay.failures_csv(f)}); rerun {f}"
            for f in ran if not lay.features_dir(f).is_dir()
        ]
        if not dirs and not missing:
            raise FileNotFoundError(f"no feature directories under {base}; run mer extract")
        manifest = manifest or lay.clips_csv
    if manifest is not None and not manifest.exists():
        raise FileNotFoundError(f"clip manifest {manifest} not found; run mer ingest first")
    problems = missing + verify_features(dirs, manifest=manifest, tolerance=args.tolerance)
    checked = ", ".join(str(d) for d in dirs)
    _emit(args, {"ok": not problems, "problems": problems, "checked": [str(d) for d in dirs],
                 "manifest": str(manifest) if manifest else None},
          f"OK: {checked}" if not problems else "\n".join(problems))
    return EXIT_OK if not problems else EXIT_FAILED


def cmd_export_csd(args: argparse.Namespace) -> int:
    with needs("the export-csd command", "extract"):
        from .interop.csd import export_csd

    out = export_csd(args.path, args.out, array=args.array or "", dataset=args.dataset or "")
    _emit(args, {"csd": str(out)}, f"wrote {out}")
    return EXIT_OK


def cmd_import_csd(args: argparse.Namespace) -> int:
    with needs("the import-csd command", "extract"):
        from .interop.csd import import_csd, import_failures_csv
        from .manifest import read_failures

    out = import_csd(args.csd, args.out, feature=args.feature or "")
    refused = import_failures_csv(out)
    n = len(read_failures(refused))
    _emit(args, {"features": str(out), "failed": n, "failures": str(refused)},
          f"wrote {out}" + (f"; {n} entr(ies) not imported, see {refused}" if n else ""))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """``mer export hf|lhotse OUT``: the corpus's features in another toolkit's format."""
    params = load_cli_params(args, core_only=True)
    from .paths import Layout

    lay = Layout(params.corpus.name, root=Path(args.root))
    feature_root = lay.features_dir("mel").parent
    folds = lay.folds_dir / f"{args.scheme}.json" if args.scheme else None
    if folds is not None and not folds.exists():
        raise FileNotFoundError(f"fold manifest {folds} not found; run mer folds first")
    if not lay.clips_csv.exists():
        raise FileNotFoundError(f"clip manifest {lay.clips_csv} not found; run mer ingest first")
    features = args.features.split(",") if args.features else ()
    if args.format == "hf":
        from .interop.hf_datasets import export_hf

        out = export_hf(feature_root, lay.clips_csv, args.out, features, folds, args.fold)
    else:
        from .interop.lhotse_cuts import export_lhotse

        if args.fold is not None:
            raise ValueError("--fold splits the hf export; lhotse cuts carry custom['fold']")
        out = export_lhotse(feature_root, lay.clips_csv, Path(args.root) / params.corpus.root,
                            args.out, features, args.cut_features, folds)
    _emit(args, {"format": args.format, "out": str(out)}, f"wrote {out}")
    return EXIT_OK


def _optional(module: str, attr: str, what: str, extra: str):
    """``module.attr``; a missing optional dependency names ``extra``."""
    with needs(what, extra):
        return getattr(importlib.import_module(module), attr)


def cmd_show(args: argparse.Namespace) -> int:
    montage = _optional("pipeline.qa.montage", "montage", "the show command", "extract")
    params = load_cli_params(args)
    with needs("the show command", "extract"):
        from .workflow import layout

    lay = layout(params, args.root)
    from .ids import check_name
    from .store import FeatureReader
    from .store.format import INDEX_NAME

    check_name(args.clip, "clip id", "the command line")
    out = Path(args.out or f"{args.what}-{args.clip}.png")
    faces = lay.features_dir("faces")
    marks = lay.features_dir("landmarks") if args.what == "landmarks" else None
    for stage, where in (("faces", faces), ("landmarks", marks)):
        if where is None:
            continue
        if not (where / INDEX_NAME).is_file():
            raise MissingInputError(f"no {stage} features in {where}: run mer extract {stage}")
        with FeatureReader(where) as reader:
            if args.clip not in reader:
                raise MissingInputError(
                    f"clip {args.clip} is not in {where} (its {reader.feature} has "
                    f"{len(reader)} clips, e.g. {', '.join(reader.clip_ids[:3])}); see "
                    f"{lay.failures_csv(stage)} for clips that failed"
                )
    montage(faces, args.clip, out, landmarks_dir=marks)
    _emit(args, {"png": str(out)}, f"wrote {out}")
    return EXIT_OK


def _run_with_params(args: argparse.Namespace, module: str, attr: str, what: str,
                     extra: str) -> int:
    """``module.attr(params, root)``. Reading params.yaml imports the modules that own its
    sections (the extractors too), so a missing extra can show up there as well."""
    with needs(what, extra):
        run = _optional(module, attr, what, extra)
        params = load_cli_params(args)
    code = int(run(params, args.root) or 0)
    _emit(args, {"command": args.command, "exit": code}, None)
    return code


def cmd_train(args: argparse.Namespace) -> int:
    return _run_with_params(args, "pipeline.training.workflow", "run_pretrain",
                            "the train command", "train")


def cmd_evaluate(args: argparse.Namespace) -> int:
    return _run_with_params(args, "pipeline.training.workflow", "run_evaluate",
                            "the evaluate command", "train")


def cmd_report(args: argparse.Namespace) -> int:
    return _run_with_params(args, "pipeline.qa.report", "run_report", "the report command",
                            "pipeline")


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import markdown, reproduce

    over: dict[str, Any] = {}
    for assignment in args.set or []:
        _set_override(over, assignment)
    for key in ("adapter", "name"):
        if getattr(args, key, None):
            over.setdefault("corpus", {})[key] = getattr(args, key)
    doc = reproduce(args.preset, args.corpus, args.root, smoke=args.smoke, base=args.params,
                    overrides=[over], extract=not args.no_extract)  # fmt: skip
    _emit(args, doc, markdown(doc) + f"\nwritten to {doc['written']}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default="params.yaml", help="parameter file")
    common.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a parameter, e.g. --set mel.variant=code (repeatable)")
    common.add_argument("--root", default=".", help="project root for manifests/ and data/")
    common.add_argument("--corpus", help="corpus folder (sets corpus.root)")
    common.add_argument("--adapter", help="corpus adapter (sets corpus.adapter)")
    common.add_argument("--name", help="corpus name used in output paths (sets corpus.name)")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress, no output")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    ap = _TopParser(
        prog="mer", description="Multimodal emotion recognition feature pipeline.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes:\n" + "\n".join(f"  {code:<4}{what}" for code, what in CODES.items()),
    )
    ap.add_argument("--version", action="version", version=version_line())
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", parents=[common], help="corpus -> manifests/<corpus>/clips.csv")
    p.add_argument("--strict", action="store_true", help="exit 1 if any clip failed")
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("folds", parents=[common], help="fold manifests from clips.csv")
    p.set_defaults(func=cmd_folds)
    p = sub.add_parser("extract", parents=[common], help="run extraction stage(s) outside DVC")
    p.add_argument("features", nargs="+", metavar="STAGE",
                   help="extraction stage(s): mel, spectrogram, ... (mer --help lists them)")
    p.add_argument("--out", help="write STAGE's shards to OUT/STAGE instead of data/features")
    p.add_argument("--ingest", action="store_true", help="re-ingest the corpus first")
    p.add_argument("-j", "--jobs", type=int, help="worker processes (runner.n_jobs)")
    p.add_argument("--strict", action="store_true", help="exit 1 if any clip failed")
    p.set_defaults(func=cmd_extract)
    p = sub.add_parser("inspect", parents=[common], help="what a shard or feature dir holds")
    p.add_argument("path")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser(
        "verify", parents=[common],
        help="check feature directories, each alone and against each other",
        description="Check feature directories: each one's files, clips and checksums, and "
        "across them (with a manifest) the clip set, source hashes and time spans. "
        "Exit 0 when sound, 1 when a problem was found (one line each).",
    )
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="feature directories, or a folder of them (data/features/CORPUS); "
                   "none: every feature of the corpus (corpus.name, --name) against its "
                   "manifests/CORPUS/clips.csv")
    p.add_argument("--manifest", help="clips.csv whose clips must all be present (failures "
                   "recorded beside it excepted) and whose durations and hashes they must fit")
    p.add_argument("--tolerance", type=float, default=0.5, metavar="SECONDS",
                   help="time by which a feature's data may miss the clip's span (default 0.5; "
                   "a feature whose rows lie further apart gets its row spacing)")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("export-csd", parents=[common],
                       help="feature directory -> CMU Multimodal SDK .csd file")
    p.add_argument("path", help="feature directory, e.g. data/features/sample/mel")
    p.add_argument("out", help="the .csd file to write")
    p.add_argument("--array", help="which array (default: the feature's primary array)")
    p.add_argument("--dataset", help="dataset name recorded in the .csd metadata")
    p.set_defaults(func=cmd_export_csd)
    p = sub.add_parser("import-csd", parents=[common],
                       help="CMU Multimodal SDK .csd file -> feature directory")
    p.add_argument("csd")
    p.add_argument("out", help="feature directory to write")
    p.add_argument("--feature", help="feature/array name (default: the .csd root name)")
    p.set_defaults(func=cmd_import_csd)
    p = sub.add_parser(
        "export", parents=[common], help="features -> HuggingFace datasets or lhotse manifests",
        description="Write the corpus's features (data/features/<corpus>/) for another toolkit: "
        "hf = Parquet files that datasets.load_dataset(OUT) loads, one row per clip; lhotse = "
        "recordings, supervisions and a CutSet whose cuts carry the features. What maps and "
        "what does not: docs/export.md. Needs pip install mer-pipeline[export].",
    )
    p.add_argument("format", choices=["hf", "lhotse"])
    p.add_argument("out", help="output folder")
    p.add_argument("--features", help="comma-separated features (default: every one there)")
    p.add_argument("--scheme", help="fold scheme (folds/SCHEME.json): each clip's test fold")
    p.add_argument("--fold", type=int, help="hf: train/validation/test splits of this fold")
    p.add_argument("--cut-features", default="mel",
                   help="lhotse: the feature that becomes cut.features (default mel)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("show", parents=[common], help="PNG montage of a clip's crops",
                       description="A PNG montage of one clip's face crops (with landmarks "
                       "drawn). Exit 3 when the clip, or the features, are not there.")
    p.add_argument("what", choices=["faces", "landmarks"])
    p.add_argument("clip")
    p.add_argument("--out", help="PNG path (default WHAT-CLIP.png)")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("train", parents=[common], help="contrastive pretraining")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", parents=[common], help="k-fold evaluation")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("report", parents=[common], help="HTML QA report")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser(
        "reproduce", parents=[common], help="run a paper table's preset; ours beside the paper's",
        description="Run preset PRESET (params/PRESET.yaml, over --params) on the corpus at "
        "--corpus: ingest, folds, features, pretrain, evaluate; then a table of our numbers "
        "beside the paper's (data/reports/<corpus>/reproduce/PRESET/reproduce.md).",
    )
    p.add_argument("preset", help="ravdess-mpuc, mosei-mpuc, iemocap-qianhan, ... or a .yaml")
    p.add_argument("--smoke", action="store_true",
                   help="the preset's smoke settings: one fold, a couple of epochs")
    p.add_argument("--no-extract", action="store_true",
                   help="use the clip manifest and features already under --root")
    p.set_defaults(func=cmd_reproduce)
    return ap


class _TopParser(argparse.ArgumentParser):
    """``mer --help`` ends with the stages and corpus adapters, read from their registries
    when the help is shown (the registries import the extraction stack)."""

    def format_help(self) -> str:
        return super().format_help() + "\n" + registries_help()


def registries_help() -> str:
    """The extraction stages and corpus adapters this installation knows, from their
    registries (or the extra that brings them)."""
    lines = []
    for what, module, attr, extra in (
        ("extraction stages (mer extract STAGE)", "pipeline.features", "EXTRACTORS", "extract"),
        ("corpus adapters (--adapter NAME)", "pipeline.corpora", "ADAPTERS", "extract"),
    ):
        try:
            names = ", ".join(sorted(getattr(importlib.import_module(module), attr)))
        except ImportError:
            names = f"(pip install mer-pipeline[{extra}] to list them)"
        lines.append(f"{what}:\n  {names}")
    return "\n".join(lines) + "\n"


def version_line() -> str:
    from .store.format import READABLE_SCHEMAS, SCHEMA_VERSION

    return (f"mer-pipeline {__version__} (writes feature schema {SCHEMA_VERSION}, reads "
            f"{', '.join(map(str, READABLE_SCHEMAS))})")


def main(argv: list[str] | None = None) -> int:
    pin_environment()  # before anything runs torch: the same numbers on every CPU
    args = build_parser().parse_args(argv)
    from . import progress

    progress.configure(enabled=not (args.quiet or args.json))  # live lines: stderr, humans
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except BrokenPipeError:  # stdout closed by its reader: nothing left to say
        _drop_stdout()
        return EXIT_OK
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - one clear line, one code
        return _failed(args, e)


def _failed(args: argparse.Namespace, e: BaseException) -> int:
    """Report ``e`` in one line (stderr; with ``--json`` also as the JSON document on
    stdout) and return its exit code; ``-v`` prints the traceback first."""
    if isinstance(e, ModuleNotFoundError) and exit_code(e) == EXIT_MISSING:
        e = missing_extra(f"the {args.command} command", e)
    code = exit_code(e)
    shown = args.verbose and code not in (EXIT_MISSING, EXIT_INTERRUPTED)
    if shown:
        traceback.print_exception(e)
    line = one_line(e, shown)
    if args.json:
        _print(json.dumps({"ok": False, "exit": code, "error": line}, indent=2))
    with contextlib.suppress(BrokenPipeError):
        print(f"mer: {line}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
