"""Small real media derived from the sample corpus for bad-input tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def strip_audio(src: Path, dst: Path) -> Path:
    """Copy ``src``'s video stream (no re-encode) into ``dst`` with no audio track."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for packet in inp.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            out.mux(packet)
    return dst


def truncate(src: Path, dst: Path, fraction: float = 0.4) -> Path:
    """The first ``fraction`` of ``src``'s bytes: a download cut short."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def write_wav(src: Path, dst: Path, seconds: float = 0.0, rate: int = 48000) -> Path:
    """``src``'s sound as a 16-bit mono WAV (``seconds`` long when given: cut, or padded with
    silence)."""
    import soundfile as sf

    from pipeline.media import decode_audio

    y = decode_audio(src, rate)
    if seconds:
        n = int(round(seconds * rate))
        y = np.pad(y, (0, max(0, n - len(y))))[:n]
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, y, rate, subtype="PCM_16")
    return dst
