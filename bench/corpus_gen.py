"""Corpora for the extraction benchmarks: many distinct short clips, and clips of RAVDESS
length, made on the fly with PyAV (no ffmpeg binary needed).

- :func:`distinct_clips`: N clips from a few source clips, each remuxed (packets copied, not
  re-encoded) with its own container tag. Every clip decodes to its source's frames and
  samples, but its bytes differ, so its sha256 and cache keys are its own and nothing is
  deduplicated by the per-clip cache. A transcript beside each (``.txt``) for words.
- :func:`ravdess_length_clips`: M clips of 3.7 s (a RAVDESS take's length) at 1280 x 720,
  30 fps, 48 kHz: a moving real face and the sample's speech looped; each base clip encoded
  once and remuxed into distinct copies.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

STATEMENTS = ("kids are talking by the door", "dogs are sitting by the door")


def remux(src: Path, dst: Path, tag: str) -> Path:
    """``src``'s streams copied packet by packet into ``dst``, with ``tag`` as its comment."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        out.metadata["comment"] = tag
        streams = {}
        for s in inp.streams:
            if s.type in ("audio", "video"):
                streams[s.index] = out.add_stream_from_template(s)
        for pkt in inp.demux(*[inp.streams[i] for i in streams]):
            if pkt.dts is None:
                continue
            pkt.stream = streams[pkt.stream.index]
            out.mux(pkt)
    return dst


def distinct_clips(sources: list[Path], out: Path, n: int) -> list[Path]:
    """``n`` distinct clips ``c0000.mp4`` ... in ``out`` (folder-adapter layout), cycling
    through ``sources``; existing ones are kept."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(n):
        dst = out / f"c{i:04d}.mp4"
        if not dst.exists():
            remux(sources[i % len(sources)], dst, f"benchmark clip {i}")
            (out / f"c{i:04d}.txt").write_text(STATEMENTS[i % 2])
        made.append(dst)
    return made


def ravdess_length_clips(speech_from: list[Path], out: Path, n: int, bases: int = 4,
                         seconds: float = 3.7, size: tuple[int, int] = (1280, 720)) -> list[Path]:
    """``n`` distinct clips of ``seconds`` at ``size``, from ``bases`` encoded clips."""
    from pipeline.media import decode_audio
    from pipeline.media.synthetic import encode_video, talking_head_frames

    base_dir = out / "bases"
    base_dir.mkdir(parents=True, exist_ok=True)
    base_clips = []
    for b in range(bases):
        dst = base_dir / f"base{b}.mp4"
        if not dst.exists():
            speech = decode_audio(speech_from[b % len(speech_from)], 48000)
            k = int(seconds * 48000)
            audio = np.tile(speech, k // len(speech) + 1)[:k]
            frames = talking_head_frames(int(seconds * 30), width=size[0], height=size[1],
                                         seed=b)
            encode_video(dst, frames, fps=30.0, audio=audio, sample_rate=48000)
        base_clips.append(dst)
    return distinct_clips(base_clips, out / "clips", n)
