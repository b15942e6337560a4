"""The picture of docs/visual.md: which face the faces stage keeps, and why.

Makes a clip of two people side by side (the astronaut photograph twice): the right one's
mouth opens with the energy of a sample clip's espeak-ng speech, the left one's stays still.
Runs the faces tracker over it and draws (top) frames with every track's box, the kept one in
green, and (bottom) each track's mouth signal against the audio's energy envelope, with the
correlation ``select: speaker`` compares (both band-passed to 2-8 Hz).

    .venv/bin/python scripts/faces_figure.py [--out docs/img/faces_speaker.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.kernels import pin_environment  # noqa: E402

pin_environment()  # before torch runs: the kernels the stages use (pipeline/kernels.py)

from pipeline.config import load_params, to_dict  # noqa: E402
from pipeline.features import ClipSource, make_extractor  # noqa: E402
from pipeline.media.audio import decode_audio  # noqa: E402
from pipeline.media.synthetic import encode_video, people_frames, speech_envelope  # noqa: E402
from pipeline.media.video import iter_decoded  # noqa: E402
from pipeline.vision.lip_motion import MouthMeter  # noqa: E402
from pipeline.vision.speaker import (  # noqa: E402
    SpeakerConfig,
    frame_interval,
    score_tracks,
    speech_energy,
    syllable_band,
)
from pipeline.vision.track_choice import TrackLog  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "docs/img/faces_speaker.png"))
    ap.add_argument("--clip", default="Actor_01/01-01-01-01-01-01-01.mp4")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    torch.set_num_threads(1)
    sr = 48000
    audio = decode_audio(REPO / "data/sample" / args.clip, sr)
    n = int(len(audio) / sr * 30)
    env = speech_envelope(audio, sr, n)
    cfg = to_dict(load_params(REPO / "params.yaml").section("faces"))
    ex = make_extractor("faces", {**cfg, "select": "speaker"})
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "speaker_right.mp4"
        encode_video(clip, people_frames(n, 400, 200, mouth=(None, env)), fps=30, audio=audio,
                     sample_rate=sr)  # fmt: skip
        feats = ex.extract(ClipSource(clip_id=clip.stem, path=clip))
        tracker = ex.tracker()
        log, shown = None, {}
        picks = set(np.linspace(5, n - 5, 4).round().astype(int).tolist())
        for ff in tracker.run(iter_decoded(clip)):
            if log is None:
                log = TrackLog(tracker.frame_size, mouth=MouthMeter())
            log.add(ff)
            if ff.index in picks:
                shown[ff.index] = (ff.rgb.copy(), {k: f.box for k, f in ff.faces.items()})
        sp = SpeakerConfig(**cfg["speaker"])
        loud = speech_energy(decode_audio(clip, 16000), 16000, np.asarray(log.times), sp.band_hz)
    kept = feats.attrs["track"]
    fig = plt.figure(figsize=(10, 5.6))
    for i, idx in enumerate(sorted(shown)):
        ax = fig.add_subplot(2, 4, i + 1)
        rgb, boxes = shown[idx]
        ax.imshow(rgb)
        for tid, b in boxes.items():
            colour = "#2ca02c" if tid == kept else "#aaaaaa"
            ax.add_patch(plt.Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False,
                                       lw=2, ec=colour))  # fmt: skip
            ax.text(b[0], b[1] - 4, f"track {tid}", color=colour, fontsize=7)
        ax.set_title(f"frame {idx} ({idx / 30:.2f} s)", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(2, 1, 2)
    t = np.asarray(log.times)
    fps = 1 / frame_interval(t)
    z = syllable_band(loud, fps, sp.modulation_hz)
    ax.plot(t, z / np.nanstd(z), color="k", lw=1, label="speech-band energy, 2-8 Hz")
    mouths = log.mouth_series()
    scored = score_tracks(mouths, loud, 1 / fps, sp)
    for tid in sorted(mouths):
        m = syllable_band(mouths[tid], fps, sp.modulation_hz)
        r = scored.get(tid, (float("nan"), 0))[0]
        m = m / (np.nanstd(m) + 1e-9)
        colour = "#2ca02c" if tid == kept else "#999999"
        ax.plot(t, m, color=colour, lw=1.5, label=f"track {tid} lip opening, 2-8 Hz, r = {r:.2f}")
    ax.set_xlabel("seconds")
    ax.set_ylabel("standardised")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(
        f"select: speaker keeps track {kept} for the whole clip "
        f"(r = {feats.attrs['select_score']:.2f} against {feats.attrs['select_runner_up']:.2f})",
        fontsize=9,
    )
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
