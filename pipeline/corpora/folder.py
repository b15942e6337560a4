"""Any folder of videos (or audio files): a user's own corpus, no naming rules.

- Media: every file under ``corpus.root`` (recursively; hidden files and folders skipped)
  whose extension is a known video/audio one, or the files listed in a CSV (option
  ``csv``: a file in the root with a ``path`` column, relative to the root, and optional
  ``clip_id, label, speaker, session, transcript, start, end, audio_path`` columns;
  ``audio_path``, relative to the root, names a separate file the clip's sound is read
  from, on the same time axis as the media).
- Clip id: the path relative to the root without its extension, ``/`` and unsafe characters
  turned into ``_`` (``alice/take 1.mp4`` -> ``alice_take_1``).
- Speaker: the folder holding the file, relative to the root ("" at the top level), so a
  folder per person gives speaker-disjoint folds.
- Transcript: a sidecar beside the media with the same name: ``.txt`` (plain text), ``.srt`` or
  ``.vtt`` (cue numbers, timing lines and markup stripped; cue times give word times).
- Labels: ``labels.csv`` in the root if present (option ``labels_csv``), with columns
  ``clip_id`` or ``path``, and ``label``. With ``allowed_labels``, a clip whose label is not in
  the list is left out and recorded as an ingest failure with the reason.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from ..text.alignment import WORD_TIMES_KEY, dump_word_times
from ..text.subtitles import read_sidecar
from .base import Clip, CorpusAdapter, safe_clip_id

MEDIA_SUFFIXES = (
    ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv",
    ".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus", ".aac",
)  # fmt: skip


def clip_id_for(rel: str) -> str:
    return safe_clip_id(str(Path(rel).with_suffix("")).replace("/", "_"))


class Folder(CorpusAdapter):
    """A folder (or CSV) of media files; see the module docstring."""

    name = "folder"
    title = "a folder of media files"
    has_transcripts = True  # from sidecar .txt/.srt/.vtt files where they exist
    layout = """<any folders>/<name>.<video or audio extension>   (hidden files and folders skipped)
<same folder>/<name>.txt|.srt|.vtt                 optional transcript
labels.csv                                         optional: path (or clip_id), label"""
    # no corpus-defined split; a folder per person makes group_kfold on speaker disjoint

    def __init__(
        self,
        root: str | Path,
        csv: str = "",
        labels_csv: str = "labels.csv",
        allowed_labels: list[str] | tuple[str, ...] = (),
        extensions: list[str] | tuple[str, ...] = MEDIA_SUFFIXES,
    ) -> None:
        super().__init__(root)
        self.csv = csv
        self.labels_csv = labels_csv
        self.allowed = tuple(allowed_labels)
        self.labels = self.allowed
        self.extensions = tuple(
            e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions
        )

    def check_root(self) -> None:
        if self.root.is_file() and self.root.suffix.lower() == ".csv":
            raise FileNotFoundError(
                f"corpus.root {self.root} is a CSV file; set corpus.root to the folder the paths "
                f"are relative to and corpus.options.csv to {self.root.name!r}"
            )
        super().check_root()

    def _files(self) -> Iterator[dict[str, str]]:
        if self.csv:
            path = self.root / self.csv
            if not path.is_file():
                raise FileNotFoundError(f"clip list {path} (corpus.options.csv) not found")
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                if "path" not in (reader.fieldnames or []):
                    raise ValueError(f"{path}: needs a 'path' column (media relative to the root)")
                yield from ({k: (v or "").strip() for k, v in row.items() if k} for row in reader)
            return
        for p in sorted(self.root.rglob("*")):
            rel = p.relative_to(self.root)
            if any(part.startswith(".") for part in rel.parts):
                continue
            if p.is_file() and p.suffix.lower() in self.extensions:
                yield {"path": rel.as_posix()}

    def _labels(self) -> dict[str, str]:
        if not self.labels_csv:
            return {}
        path = self.root / self.labels_csv
        if not path.is_file():
            return {}
        out: dict[str, str] = {}
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            key = "clip_id" if "clip_id" in cols else "path" if "path" in cols else None
            if key is None or "label" not in cols:
                raise ValueError(f"{path}: needs columns (clip_id or path) and label")
            rows: dict[str, int] = {}
            for line, row in enumerate(reader, start=2):
                ref = (row[key] or "").strip()
                cid = clip_id_for(ref) if key == "path" else ref
                label = (row["label"] or "").strip()
                if cid in out and out[cid] != label:
                    self.conflicts[cid] = (
                        f"{path.name} gives clip {cid} two labels: {out[cid]!r} (row "
                        f"{rows[cid]}) and {label!r} (row {line}); fix the file"
                    )
                    continue
                out[cid], rows[cid] = label, line
        return out

    def clips(self) -> Iterator[Clip]:
        self.check_root()
        self.skipped = []
        self.conflicts: dict[str, str] = {}
        labels = self._labels()
        for row in self._files():
            rel = row["path"]
            p = Path(rel)
            if p.is_absolute():
                try:
                    rel = p.resolve().relative_to(self.root.resolve()).as_posix()
                except ValueError:
                    self.skipped.append((rel, f"outside the corpus root {self.root}"))
                    continue
            try:
                cid = row.get("clip_id") or clip_id_for(rel)
                cid = safe_clip_id(cid)
            except ValueError as e:
                self.skipped.append((rel, str(e)))
                continue
            if cid in self.conflicts and not row.get("label"):
                self.skipped.append((rel, self.conflicts[cid]))
                continue
            label = row.get("label") or labels.get(cid, "")
            if self.allowed and label and label not in self.allowed:
                why = f"clip {cid}: label {label!r} is not one of {', '.join(self.allowed)}"
                self.skipped.append((rel, why))
                continue
            meta: dict[str, str] = {}
            transcript = row.get("transcript", "")
            if not transcript:
                side = read_sidecar(self.root / rel)
                if side is not None:
                    transcript = side.text
                    meta["transcript_file"] = side.path.relative_to(self.root).as_posix()
                    if side.words:
                        meta[WORD_TIMES_KEY] = dump_word_times(side.words)
            parent = Path(rel).parent.as_posix()
            try:
                start, end = float(row.get("start") or 0), float(row.get("end") or 0)
                clip = Clip(
                    clip_id=cid,
                    path=rel,
                    speaker=row.get("speaker") or ("" if parent == "." else parent),
                    session=row.get("session", ""),
                    label=label,
                    transcript=transcript,
                    start=start,
                    end=end,
                    meta=meta,
                    audio_path=(row.get("audio_path") or "").strip(),
                )
            except ValueError as e:
                self.skipped.append((rel, str(e)))
                continue
            yield clip
