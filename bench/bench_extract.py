"""Extraction throughput per stage with 1 and 2 workers, and where each clip's CPU time goes.

    .venv/bin/python bench/bench_extract.py                      # the full run (see below)
    .venv/bin/python bench/bench_extract.py --before /path/to/old/checkout
    .venv/bin/python bench/bench_extract.py --clips 100 --visual-clips 20   # a quick one

1. Corpora (made once under ``--work``, default a temporary folder): ``--clips`` (1,000)
   distinct short clips, the sample's 64 clips of 2.3 s remuxed with a tag each (the same
   decoded media, other bytes, so the per-clip cache deduplicates nothing;
   ``bench/corpus_gen.py``), with a transcript beside each; and ``--ravdess-clips`` (100)
   distinct clips of 3.7 s at 1280 x 720 (a RAVDESS take's length and size) for the mel
   stage's real-time factor.
2. ``stages``: each stage (mel, spectrogram, faces, landmarks, words) over the short clips
   (faces and landmarks over the first ``--visual-clips``, 200), with ``runner.n_jobs`` 1
   and 2, from a cold cache, each run in a fresh process (worker start-up and model loading
   included; landmarks reads faces shards made beforehand, untimed). Per run: wall seconds,
   clips/s, and CPU seconds (user + sys of the process and its reaped workers) per clip.
   The 2-worker speed-up is given in wall time (what the target is stated in) and, for a
   shared machine where wall time says little, as the CPU time per clip of 2 workers against
   1 (a speed-up of 2 needs equal CPU per clip and two free cores).
3. ``mel_ravdess``: the mel stage over the RAVDESS-length clips, 1 worker, in steady state
   (after an untimed run on two other clips in the same process: imports and one-time
   set-up excluded): media seconds per wall second and per CPU second ("x real time per
   worker").
4. ``breakdown``: each stage in one process with ``n_jobs`` 1, warmed up the same way, under
   cProfile with a CPU clock, over ``--profile-clips`` (100): CPU ms per clip in named parts
   (they nest: "of which" rows are inside the row above them).

``--before CHECKOUT`` runs every measurement with that checkout's code too, in the same
invocation (the same load), for a before/after. Prints one JSON line per measurement and
saves them to ``bench/results/extract.json`` with the load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
STAGES = ("mel", "spectrogram", "faces", "landmarks", "words")
VISUAL = ("faces", "landmarks")

# breakdown rows: (label, [(file part, function name, caller's name or "")]); a row's time is
# the cumulative CPU time of its functions, counted only where called from outside the row
# (and from the named caller, when one is named)
PARTS = [
    ("clip in worker (all)", [("runner.py", "_extract_to_cache", "")]),
    ("  of which feature (extract_into)", [("features/", "extract_into", "_extract_to_cache")]),
    ("    of which audio decode", [("media/audio.py", "iter_audio", "")]),
    ("    of which video decode", [("media/video.py", "iter_decoded", "")]),
    ("    of which container open (probe)", [("~", "av.container.core.open", "")]),
    ("  of which media hash", [("source_file.py", "_hash_to", ""), ("source_file.py", "_seen", ""),
                               ("hashing.py", "file_sha256", "")]),
    ("  of which cache file write (h5py, checksums)", [
        ("store/sink.py", "close", "_extract_to_cache"),
        ("h5py/_hl/files.py", "__init__", "_extract_to_cache")]),
    ("  of which thread limits", [("thread_limits.py", "one_thread", ""),
                                  ("threadpoolctl.py", "__init__", ""),
                                  ("threadpoolctl.py", "__exit__", "")]),
    ("  of which fsync (in the extracting thread)", [("store/writer.py", "fsync_file", "")]),
    ("parent: assemble shards", [("runner.py", "_assemble", "")]),
    ("parent: cache keys", [("runner.py", "cache_key", "")]),
]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- child: one measurement in its own process -----------------------------------------------


def _params(root: Path, n_jobs: int, cache: Path):
    import dataclasses

    from pipeline.config import load_params

    params = load_params(root / "params.yaml")
    runner = dataclasses.replace(params.runner, n_jobs=n_jobs, cache_dir=str(cache))
    return dataclasses.replace(params, runner=runner)


def _reap() -> None:
    """Stop loky's reusable workers and wait for them, so their CPU time is counted."""
    with contextlib.suppress(Exception):
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)


def _faces_first(stage: str, root: Path) -> None:
    from pipeline.workflow import layout, run_feature

    params = _params(root, 2, root / "cache-faces-pre")
    if stage == "landmarks" and not (layout(params, root).features_dir("faces") /
                                     "index.json").exists():
        run_feature(params, "faces", root, progress=False)
        _reap()


def child_run(stage: str, n_jobs: int, root: Path, profile: bool,
              warm: Path | None = None) -> dict:
    """One stage over ``root``'s corpus; with ``warm``, that small project's run of the same
    stage first, in this process and untimed, so that imports and one-time set-up (librosa's
    first use costs about 2 s of CPU) are out of the figures (n_jobs 1 only: workers of a
    later run start afresh)."""
    from pipeline.manifest import read_manifest
    from pipeline.workflow import layout, run_feature

    cache = root / f"cache-{stage}-{n_jobs}-{'p' if profile else 'r'}-{os.getpid()}"
    params = _params(root, n_jobs, cache)
    lay = layout(params, root)
    entries = read_manifest(lay.clips_csv)
    _faces_first(stage, root)
    if warm is not None:
        _faces_first(stage, warm)
        run_feature(_params(warm, 1, warm / f"cache-warm-{os.getpid()}"), stage, warm,
                    progress=False)
        shutil.rmtree(warm / f"cache-warm-{os.getpid()}", ignore_errors=True)
    before_self = resource.getrusage(resource.RUSAGE_SELF)
    before_kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile(time.process_time)
        prof.enable()
    t0 = time.perf_counter()
    run_feature(params, stage, root, progress=False)
    wall = time.perf_counter() - t0
    if prof is not None:
        prof.disable()
    _reap()
    after_self = resource.getrusage(resource.RUSAGE_SELF)
    after_kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(a, f) - getattr(b, f) for a, b in ((after_self, before_self),
              (after_kids, before_kids)) for f in ("ru_utime", "ru_stime"))
    facts = json.loads(lay.metrics_json(stage).with_suffix(".run.json").read_text())
    n = len(entries)
    media = sum(e.duration for e in entries)
    out = {
        "stage": stage, "n_jobs": n_jobs, "clips": n, "extracted": facts["extracted"],
        "failed": facts["failed"], "media_seconds": round(media, 1),
        "wall_seconds": round(wall, 3), "clips_per_second": round(n / wall, 2),
        "cpu_seconds": round(cpu, 3), "cpu_ms_per_clip": round(1000 * cpu / n, 2),
        "media_seconds_per_wall_second_per_worker": round(media / wall / n_jobs, 1),
        "media_seconds_per_cpu_second": round(media / cpu, 1) if cpu else 0.0,
    }
    if prof is not None:
        out["breakdown_cpu_ms_per_clip"] = _parts(prof, n)
    shutil.rmtree(cache, ignore_errors=True)
    return out


def _parts(prof, n: int) -> dict[str, float]:
    import pstats

    stats = pstats.Stats(prof).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = sum(v[2] for v in stats.values())
    out = {"total (profiled thread)": round(1000 * total / n, 2)}

    def matches(key: tuple, file_part: str, name: str) -> bool:
        file, _, func = key
        return file_part in file and (func == name or (file == "~" and name in func))

    for label, funcs in PARTS:
        ct = 0.0
        for key, (_, _, _, _, callers) in stats.items():
            for file_part, name, caller in funcs:
                if not matches(key, file_part, name):
                    continue
                for ckey, cstat in callers.items():
                    inside = any(matches(ckey, f, nm) for f, nm, _ in funcs)
                    if not inside and (not caller or ckey[2] == caller):
                        ct += cstat[3]
        out[label] = round(1000 * ct / n, 2)
    return out


# -- parent -----------------------------------------------------------------------------------


def _subset(clips: list[Path], folder: Path, n: int) -> Path:
    """A folder of hard links to the first ``n`` of ``clips`` and their transcripts."""
    folder.mkdir(parents=True, exist_ok=True)
    for c in clips[:n]:
        for f in (c, c.with_suffix(".txt")):
            if f.exists() and not (folder / f.name).exists():
                os.link(f, folder / f.name)
    return folder


def _project(root: Path, corpus: Path, code: Path = REPO) -> Path:
    """A project in ``root`` over ``corpus`` (folder adapter) with the parameters of the
    checkout ``code`` (another checkout's code may not know this one's keys), ingested by
    that checkout's code."""
    import yaml

    if (root / "params.yaml").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((code / "params.yaml").read_text())
    params["corpus"].update(name="bench", adapter="folder", root=str(corpus))
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    ingest = ("import sys; from pathlib import Path; from pipeline.config import load_params; "
              "from pipeline.workflow import run_ingest; root = Path(sys.argv[1]); "
              "sys.exit(run_ingest(load_params(root / 'params.yaml'), root))")
    subprocess.run([sys.executable, "-c", ingest, str(root)], cwd=code, check=True,
                   env=dict(os.environ, PYTHONPATH=str(code)), capture_output=True)
    return root


def _measure(code: Path, stage: str, n_jobs: int, root: Path, profile: bool = False,
             warm: Path | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code), TQDM_DISABLE="1")
    cmd = [sys.executable, __file__, "--child", stage, str(n_jobs), str(root)]
    if profile:
        cmd.append("--profile")
    if warm is not None:
        cmd += ["--warm", str(warm)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=code,
                          timeout=6 * 3600)
    if proc.returncode != 0:
        return {"stage": stage, "n_jobs": n_jobs, "error": proc.stderr[-1500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=1000, help="distinct short clips")
    ap.add_argument("--visual-clips", type=int, default=200,
                    help="of them, for faces and landmarks")
    ap.add_argument("--ravdess-clips", type=int, default=100, help="3.7 s 1280x720 clips")
    ap.add_argument("--profile-clips", type=int, default=100)
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--before", type=Path, help="another checkout to measure too")
    ap.add_argument("--work", type=Path, help="keep corpora here (default: a temp folder)")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/extract.json")
    ap.add_argument("--child", nargs=3, metavar=("STAGE", "N_JOBS", "ROOT"))
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--warm", type=Path)
    args = ap.parse_args()
    if args.child:
        stage, n_jobs, root = args.child
        print(json.dumps(child_run(stage, int(n_jobs), Path(root), args.profile, args.warm)))
        return

    from corpus_gen import distinct_clips, ravdess_length_clips

    codes = {"now": REPO, **({"before": args.before.resolve()} if args.before else {})}
    result: dict = {"benchmark": "extract", "load_before": _load(), "cpus": os.cpu_count(),
                    "args": {k: str(v) for k, v in vars(args).items() if k != "child"},
                    "stages": [], "mel_ravdess": [], "breakdown": []}

    def emit(section: str, row: dict) -> None:
        result[section].append(row)
        print(json.dumps(row), flush=True)

    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        sample = sorted((REPO / "data/sample").glob("Actor_*/*.mp4"))
        short = distinct_clips(sample, work / "short", args.clips)
        visual = _subset(short, work / "visual", args.visual_clips)
        corpora = {"short": work / "short", "visual": visual,
                   "profiled": _subset(short, work / "profiled", args.profile_clips),
                   "warm": _subset(short[-4:], work / "warm", 4)}
        if args.ravdess_clips and "mel" in args.stages:
            long = ravdess_length_clips(sample, work / "ravdess", args.ravdess_clips + 2)
            corpora["ravdess"] = _subset(long[:-2], work / "ravdess-run", args.ravdess_clips)
            corpora["ravdess-warm"] = _subset(long[-2:], work / "ravdess-warm", 2)
        for label, code in codes.items():
            # one project per corpus and checkout; each measurement its own cache
            proj = {k: _project(work / f"proj-{label}-{k}", v, code) for k, v in corpora.items()}
            for stage in args.stages:
                root = proj["visual" if stage in VISUAL else "short"]
                rows = {}
                for n_jobs in args.jobs:
                    row = {"code": label, **_measure(code, stage, n_jobs, root)}
                    rows[n_jobs] = row
                    emit("stages", row)
                if 1 in rows and 2 in rows and "error" not in rows[1] | rows[2]:
                    one, two = rows[1], rows[2]
                    emit("stages", {
                        "code": label, "stage": stage, "speedup_2_workers_wall":
                        round(two["clips_per_second"] / one["clips_per_second"], 2),
                        "cpu_ms_per_clip_2_vs_1": round(
                            two["cpu_ms_per_clip"] / one["cpu_ms_per_clip"], 2),
                    })
            if "ravdess" in proj:
                emit("mel_ravdess", {"code": label, "steady_state": True, **_measure(
                    code, "mel", 1, proj["ravdess"], warm=proj["ravdess-warm"])})
            for stage in args.stages:
                row = _measure(code, stage, 1, proj["profiled"], profile=True,
                               warm=proj["warm"])
                emit("breakdown", {"code": label, **row})
    result["load_after"] = _load()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
