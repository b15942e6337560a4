"""Whether feature directories are sound, alone and against each other and the manifest
(``verify``, ``verify_features``). Backs ``mer verify``.

Two parts, one idea each: :mod:`.directory` checks one directory alone, :mod:`.across`
compares directories with each other and with the clip manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..manifest import read_manifest
from ..store import FeatureReader, ShardError
from ..store.format import INDEX_NAME
from .across import (
    check_audio_files,
    check_clip_sets,
    check_same_rows,
    check_sources,
    check_times,
)
from .directory import FeatureDir, scan, track_problems

__all__ = ["track_problems", "verify", "verify_features"]


def verify(feature_dir: Path, manifest: Path | None = None, tolerance: float = 0.5) -> list[str]:
    """Every problem found in one feature directory, as sentences (empty: it is sound).
    See :func:`verify_features`."""
    return verify_features([feature_dir], manifest, tolerance)


def verify_features(
    feature_dirs: Sequence[Path], manifest: Path | None = None, tolerance: float = 0.5
) -> list[str]:
    """Every problem found in feature directories, alone and against each other, as one
    sentence each naming the clip, the feature and the numbers; an empty list means sound.

    Each directory: index readable, shards complete and listed, every clip's group present,
    each array as long as its timestamps and matching its checksum (read in blocks, never
    whole), one per-step shape per array, no leftover temporary files.

    Across them (and against ``manifest``, the corpus's clips.csv, when given): the same clip
    set, less the clips each stage recorded as failed (``failures/<feature>.csv`` beside the
    manifest); each clip's ``source_sha256`` the same everywhere (the manifest's when given),
    and its sound from the audio file the manifest names (``audio_sha256``) or, when it
    names none, from the media's own track; valid timestamps inside the clip's duration, the
    audio features' and visual features' data reaching its end and ending together, within
    ``tolerance`` seconds (or a feature's row spacing when wider); derived features
    (landmarks) on exactly their source's rows (faces).
    """
    entries = read_manifest(manifest) if manifest is not None else None
    problems: list[str] = []
    readers: list[tuple[Path, FeatureReader]] = []
    for path in feature_dirs:
        path = Path(path)
        try:
            readers.append((path, FeatureReader(path)))
        except ShardError as e:
            problems.append(str(e))
        except (KeyError, TypeError, AttributeError) as e:
            problems.append(f"{path / INDEX_NAME}: not a feature index ({e!r})")
    names = [r.feature for _, r in readers]
    dirs: list[FeatureDir] = []
    for path, reader in readers:
        label = reader.feature if names.count(reader.feature) == 1 else str(path)
        d = FeatureDir(path, label, reader.feature, reader.clip_ids, reader.primary)
        problems += scan(d, reader, tolerance)
        dirs.append(d)
    problems += check_clip_sets(dirs, entries, manifest)
    problems += check_sources(dirs, entries, manifest)
    problems += check_audio_files(dirs, entries, manifest)
    problems += check_times(dirs, entries, manifest)
    problems += check_same_rows(dirs)
    return problems


