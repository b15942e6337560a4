"""Miniature copies of each corpus's real on-disk layout, made of the shipped sample clips.

One entry per registered adapter (``MINIATURES[name]``): a function that lays the corpus out
under a folder and returns a :class:`Miniature` saying what the adapter must find there. The
media are hard links to the sample MP4s (a copy where linking is not possible) under the
corpus's own names and extensions: the probe reads the container, not the extension.
Each miniature also plants files the adapter must refuse (a name that does not parse, a row it
cannot read), so the contract test checks that they are reported and the rest ingested.

Adding a corpus: one adapter module, and one builder here.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.corpora.mosei_shaped import write_csd


@dataclass
class Miniature:
    n_clips: int  # clips the adapter must yield
    options: dict = field(default_factory=dict)
    bad: tuple[str, ...] = ()  # relative paths the adapter must report in ``skipped``
    adapter: str = ""  # the registry name, when the entry is an option of another adapter


def place(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (a copy across file systems)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)




# -- RAVDESS ----------------------------------------------------------------------------------
def ravdess(root: Path, clips: list[Path]) -> Miniature:
    by_actor = [c for c in clips if c.parent.name in ("Actor_01", "Actor_02", "Actor_03")]
    chosen = [c for i, c in enumerate(by_actor) if i % 8 < 2]  # two clips per actor
    for c in chosen:
        place(c, root / c.parent.name / c.name)
    place(clips[0], root / "Actor_01" / "01-01-09-01-01-01-01.mp4")  # emotion code 09
    return Miniature(len(chosen), bad=("Actor_01/01-01-09-01-01-01-01.mp4",))


def ravdess_paired(root: Path, clips: list[Path]) -> Miniature:
    """``recordings: paired``: each take as a full-AV MP4, a video-only MP4 (no sound) and
    an audio-only WAV (another sample clip's sound, so it is plain which file was read)."""
    from pipeline.media import probe
    from tests.media import strip_audio, write_wav

    by_actor = [c for c in clips if c.parent.name in ("Actor_01", "Actor_02", "Actor_03")]
    chosen = [c for i, c in enumerate(by_actor) if i % 8 < 2]  # two takes per actor
    for i, c in enumerate(chosen):
        take = c.stem[3:]
        place(c, root / c.parent.name / c.name)
        strip_audio(c, root / c.parent.name / f"02-{take}.mp4")
        write_wav(chosen[(i + 1) % len(chosen)], root / c.parent.name / f"03-{take}.wav",
                  seconds=probe(c).duration)  # another take's sound, the video's length
    lonely = root / "Actor_01" / "02-01-01-01-02-02-01.mp4"  # its WAV is not there
    strip_audio(chosen[0], lonely)
    return Miniature(2 * len(chosen), options={"recordings": "paired"}, adapter="ravdess",
                     bad=(lonely.relative_to(root).as_posix(),))


# -- IEMOCAP ----------------------------------------------------------------------------------
def iemocap(root: Path, clips: list[Path]) -> Miniature:
    dialogs = {
        "Ses01F_impro01": [("F000", 0.1, 0.8, "neu", "Excuse me."),
                           ("M000", 0.9, 1.5, "ang", "Do you have your forms?")],
        "Ses02M_script01_1": [("M000", 0.2, 1.0, "exc", "I'm so glad you came.")],
        "Ses03F_impro02": [("F000", 0.1, 1.0, "sad", "He's gone."),
                           ("M000", 1.1, 1.6, "fru", "I know.")],  # frustrated: not 4-class
    }  # fmt: skip
    for i, (dialog, utts) in enumerate(dialogs.items()):
        session = root / f"Session{int(dialog[3:5])}"
        blocks, lines = [], []
        for suffix, start, end, code, text in utts:
            utt = f"{dialog}_{suffix}"
            blocks.append(f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 2.0000]\n")
            lines.append(f"{utt} [{start:08.4f}-{end:08.4f}]: {text}")
        if i == 0:  # an utterance id that does not parse
            blocks.append("[1.6000 - 2.0000]\tSes01X_weird\tneu\t[2.0000, 2.0000, 2.0000]\n")
        (session / "dialog/EmoEvaluation").mkdir(parents=True)
        (session / "dialog/EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(blocks))
        (session / "dialog/transcriptions").mkdir(parents=True)
        (session / "dialog/transcriptions" / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
        place(clips[i], session / "dialog/avi/DivX" / f"{dialog}.avi")
    return Miniature(4, bad=("Session1/Ses01X_weird",))


# -- CMU-MOSEI and CMU-MOSI (SDK computational sequences) ---------------------------------------
WORDS = [("sp", 0.0, 0.2), ("dogs", 0.2, 0.6), ("bark", 0.6, 1.0), ("sp", 1.0, 1.1),
         ("cats", 1.1, 1.5), ("purr", 1.5, 2.0)]  # fmt: skip


def _words(videos: list[str]) -> dict:
    return {v: {"intervals": np.array([[a, b] for _, a, b in WORDS]),
                "features": np.array([[w.encode()] for w, _, _ in WORDS])}
            for v in videos}  # fmt: skip


def _sdk_videos(folds_module) -> list[str]:
    return [*folds_module.standard_train_fold[:2], folds_module.standard_valid_fold[0],
            folds_module.standard_test_fold[0]]  # fmt: skip


def mosei(root: Path, clips: list[Path]) -> Miniature:
    from mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSEI import cmu_mosei_std_folds as f

    videos = _sdk_videos(f)
    rows = [[1.0, 2.0, 0, 0, 0.33, 0, 0], [-1.5, 0, 0, 1.66, 0, 0.33, 0]]
    labels = {v: {"intervals": np.array([[0.0, 1.05], [1.05, 2.0]]),
                  "features": np.array(rows, np.float32)} for v in videos}  # fmt: skip
    write_csd(root / "CMU_MOSEI_Labels.csd", "All Labels", labels)
    write_csd(root / "CMU_MOSEI_TimestampedWords.csd", "words", _words(videos))
    for i, v in enumerate(videos):
        place(clips[i], root / "Raw/Videos/Full/Combined" / f"{v}.mp4")
    return Miniature(2 * len(videos))


def mosi(root: Path, clips: list[Path]) -> Miniature:
    from mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSI import cmu_mosi_std_folds as f

    videos = _sdk_videos(f)
    labels = {v: {"intervals": np.array([[1.05, 2.0], [0.0, 1.05]]),  # out of time order
                  "features": np.array([[-1.4], [2.6]], np.float32)} for v in videos}  # fmt: skip
    write_csd(root / "CMU_MOSI_Opinion_Labels.csd", "Opinion Segment Labels", labels)
    write_csd(root / "CMU_MOSI_TimestampedWords.csd", "words", _words(videos))
    for i, v in enumerate(videos):
        for seg in (1, 2):
            place(clips[2 * i + seg - 1], root / "Raw/Video/Segmented" / f"{v}_{seg}.mp4")
    return Miniature(2 * len(videos))


# -- a folder of videos -----------------------------------------------------------------------
def folder(root: Path, clips: list[Path]) -> Miniature:
    for i, person in enumerate(("alice", "bob", "carol")):
        place(clips[2 * i], root / person / "take1.mp4")
        place(clips[2 * i + 1], root / person / "take2.mp4")
        (root / person / "take1.txt").write_text("Kids are talking by the door.\n")
    (root / "labels.csv").write_text("path,label\nalice/take1.mp4,happy\nbob/take1.mp4,sad\n"
                                     "carol/take2.mp4,bored\n")  # fmt: skip
    return Miniature(5, options={"allowed_labels": ["happy", "sad"]}, bad=("carol/take2.mp4",))


# -- CREMA-D ----------------------------------------------------------------------------------
def crema_d(root: Path, clips: list[Path]) -> Miniature:
    names = ["1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1002_TIE_NEU_XX", "1002_IEO_SAD_LO",
             "1003_WSI_FEA_XX", "1003_IEO_DIS_MD"]  # fmt: skip
    for i, n in enumerate(names):
        place(clips[i], root / "VideoFlash" / f"{n}.flv")
        place(clips[i], root / "AudioWAV" / f"{n}.wav")
    place(clips[0], root / "VideoFlash" / "1001_XYZ_ANG_XX.flv")  # unknown sentence code
    votes = ["A", "H", "N", "N:S", "F", "D"]
    write_csv(root / "processedResults/summaryTable.csv",
              ["", "FileName", "VoiceVote", "VoiceLevel", "FaceVote", "FaceLevel",
               "MultiModalVote", "MultiModalLevel"],
              [[i + 1, n, v, "60", v, "70", v, "65.5"] for i, (n, v) in enumerate(zip(names, votes,
                                                                                    strict=True))])
    write_csv(root / "VideoDemographics.csv", ["ActorID", "Age", "Sex", "Race", "Ethnicity"],
              [[1001, 51, "Male", "Caucasian", "Not Hispanic"],
               [1002, 21, "Female", "Caucasian", "Not Hispanic"]])  # fmt: skip
    return Miniature(len(names), bad=("VideoFlash/1001_XYZ_ANG_XX.flv",))


# -- SAVEE ------------------------------------------------------------------------------------
def savee(root: Path, clips: list[Path]) -> Miniature:
    codes = ["a01", "sa02", "su15", "n30"]
    for i, speaker in enumerate(("DC", "JE", "JK", "KL")):
        for j, code in enumerate(codes[i % 2 :: 2]):
            place(clips[2 * i + j], root / "AudioVisualClip" / speaker / f"{code}.avi")
    place(clips[0], root / "AudioVisualClip" / "DC" / "x01.avi")  # no such emotion letter
    return Miniature(8, bad=("AudioVisualClip/DC/x01.avi",))


# -- eNTERFACE'05 -----------------------------------------------------------------------------
def enterface(root: Path, clips: list[Path]) -> Miniature:
    k = 0
    for subject in (1, 2, 3):
        for emotion, code, sentence in (("anger", "an", 1), ("happiness", "ha", 5)):
            rel = f"subject {subject}/{emotion}/sentence {sentence}"
            place(clips[k], root / rel / f"s{subject}_{code}_{sentence}.avi")
            k += 1
    # a subject whose files lie directly in the emotion folder (as in some releases)
    place(clips[k], root / "subject 4/sadness/s4_sa_2.avi")
    place(clips[0], root / "subject 1/anger/sentence 1/s1_zz_1.avi")  # unknown emotion code
    place(clips[1], root / "subject 2/fear/sentence 1/s2_an_1.avi")  # anger file in fear/
    return Miniature(7, bad=("subject 1/anger/sentence 1/s1_zz_1.avi",
                             "subject 2/fear/sentence 1/s2_an_1.avi"))  # fmt: skip


# -- MELD -------------------------------------------------------------------------------------
MELD_HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
               "Utterance_ID", "Season", "Episode", "StartTime", "EndTime"]  # fmt: skip


def meld(root: Path, clips: list[Path]) -> Miniature:
    rows = {
        "train": [("Oh my God!", "Rachel", "surprise", "positive", 0, 0),
                  ("You’re kidding.", "Ross", "joy", "positive", 0, 1),
                  ("No.", "Joey", "anger", "negative", 1, 0),
                  ("Bad row", "Joey", "anger", "negative", "x", 0)],  # not a dialogue id
        "dev": [("Hi.", "Monica", "neutral", "neutral", 0, 0)],
        "test": [("Why?", "Chandler", "sadness", "negative", 0, 0),
                 ("Because.", "Phoebe", "fear", "negative", 0, 1)],
    }  # fmt: skip
    folders = {"train": "train_splits", "dev": "dev/dev_splits_complete",
               "test": "output_repeated_splits_test"}  # fmt: skip
    k = 0
    for split, utts in rows.items():
        table = []
        for n, (text, who, emo, sent, dia, utt) in enumerate(utts, start=1):
            table.append([n, text, who, emo, sent, dia, utt, 8, 21, "00:16:16,059", "00:16:21,731"])
            if dia != "x":
                place(clips[k], root / folders[split] / f"dia{dia}_utt{utt}.mp4")
                k += 1
        # the dev CSV beside its clip folder, as some copies unpack it
        write_csv(root / ("dev/" if split == "dev" else "") / f"{split}_sent_emo.csv",
                  MELD_HEADER, table)  # fmt: skip
    return Miniature(6, bad=("train_sent_emo.csv:5",))


MINIATURES: dict[str, Callable[[Path, list[Path]], Miniature]] = {
    "ravdess": ravdess,
    "ravdess-paired": ravdess_paired,
    "sample": ravdess,
    "iemocap": iemocap,
    "mosei": mosei,
    "folder": folder,
    "crema-d": crema_d,
    "savee": savee,
    "enterface": enterface,
    "meld": meld,
    "mosi": mosi,
}
