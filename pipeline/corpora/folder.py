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
  the list is left out and recorded as an ingest failure with the reason. A row that names no
  clip (an empty or ``.`` path, an unsafe id, bytes that are not UTF-8) or names a clip the
  folder does not hold is an ingest failure naming the file and line; the other rows apply.
- A file with a media extension that is not a regular file (a FIFO, a device, a dangling
  link) is not skipped silently: ingest refuses it as a failure row, like a corrupt file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from ..files import read_text
from ..text.alignment import WORD_TIMES_KEY, dump_word_times
from ..text.subtitles import read_sidecar
from .base import Clip, CorpusAdapter, safe_clip_id

MEDIA_SUFFIXES = (
    ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv",
    ".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus", ".aac",
)  # fmt: skip


def clip_id_for(rel: str) -> str:
    """The clip id of a media path relative to the root; ValueError for a path that names no
    file ("", ".", "a/..")."""
    p = Path(rel)
    if not rel.strip() or not p.name or p.name in (".", "..") or ".." in p.parts:
        raise ValueError(f"{rel!r} is not the path of a file under the corpus root")
    return safe_clip_id(str(p.with_suffix("")).replace("/", "_"))


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

    def skipped_id(self, rel: str) -> str:
        """A skipped file's failure row gets the id its clip would have had."""
        try:
            return clip_id_for(rel)
        except ValueError:
            return super().skipped_id(rel)

    def _files(self) -> Iterator[dict[str, str]]:
        if self.csv:
            path = self.root / self.csv
            if not path.is_file():
                raise FileNotFoundError(f"clip list {path} (corpus.options.csv) not found")
            reader = csv.DictReader(io.StringIO(read_text(path, self.csv)))
            if "path" not in (reader.fieldnames or []):
                raise ValueError(f"{path}: needs a 'path' column (media relative to the root)")
            yield from ({k: (v or "").strip() for k, v in row.items() if k} for row in reader)
            return
        for p in sorted(self.root.rglob("*")):
            rel = p.relative_to(self.root)
            if any(part.startswith(".") for part in rel.parts):
                continue
            # not p.is_file(): a FIFO or a dangling link with a media name is reported by
            # ingest (a failure row), not left out in silence
            if p.suffix.lower() in self.extensions and not p.is_dir():
                yield {"path": rel.as_posix()}

    def _labels(self) -> dict[str, str]:
        """``{clip id: label}`` from the labels file; each row that cannot be used goes to
        ``skipped`` naming the file and line (rows naming no clip of the folder are reported
        once the folder has been read, in :meth:`clips`)."""
        self._label_rows: dict[str, int] = {}
        if not self.labels_csv:
            return {}
        path = self.root / self.labels_csv
        if not path.exists() and not path.is_symlink():
            return {}
        name = self.labels_csv
        # undecodable bytes become lone surrogates, so a bad row is found and named by line
        text = read_text(path, name, errors="surrogateescape")
        reader = csv.DictReader(io.StringIO(text))
        cols = reader.fieldnames or []
        if any(_undecodable(c) for c in cols):
            raise ValueError(f"{name}, line 1: the header is not UTF-8 text; save it as UTF-8")
        key = "clip_id" if "clip_id" in cols else "path" if "path" in cols else None
        if key is None or "label" not in cols:
            raise ValueError(f"{path}: needs columns (clip_id or path) and label")
        out: dict[str, str] = {}
        rows = self._label_rows
        for row in reader:
            line = reader.line_num
            ref = (row.get(key) or "").strip()
            label = (row.get("label") or "").strip()
            try:
                if any(_undecodable(v) for v in row.values() if isinstance(v, str)):
                    raise ValueError("not UTF-8 text; save the file as UTF-8")
                if None in row:
                    raise ValueError(f"more fields than the header's {len(cols)}")
                if not ref:
                    raise ValueError(f"empty {key}")
                cid = clip_id_for(ref) if key == "path" else safe_clip_id(ref)
                if key == "clip_id" and cid != ref:
                    raise ValueError(f"clip id {ref!r} is not a safe name (did you mean {cid}?)")
            except ValueError as e:
                self.skip(name, f"line {line}: {e}; the row is ignored",
                          clip_id=f"{safe_clip_id(Path(name).stem)}_line{line}")
                continue
            if cid in out and out[cid] != label:
                self.conflicts[cid] = (
                    f"{path.name} gives clip {cid} two labels: {out[cid]!r} (row "
                    f"{rows[cid]}) and {label!r} (row {line}); fix the file"
                )
                continue
            out[cid], rows[cid] = label, line
        return out

    def _unknown_labels(self, known: set[str]) -> None:
        """Rows of the labels file that name no clip of the folder: reported, not ignored."""
        for cid, line in self._label_rows.items():
            if cid not in known:
                self.skip(self.labels_csv, f"line {line}: names clip {cid}, which is not in "
                          f"the corpus (no such media file); the row is ignored", clip_id=cid)

    def clips(self) -> Iterator[Clip]:
        self.check_root()
        self.skipped = []
        self.conflicts: dict[str, str] = {}
        labels = self._labels()
        known: set[str] = set()
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
            known.add(cid)
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
                try:
                    side = read_sidecar(self.root / rel, self.root)
                except (OSError, ValueError) as e:
                    self.skip(rel, f"its transcript: {e}", clip_id=cid)
                    continue
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
        self._unknown_labels(known)


def _undecodable(text: str) -> bool:
    """Whether text read with ``errors="surrogateescape"`` held bytes that are not UTF-8."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)
