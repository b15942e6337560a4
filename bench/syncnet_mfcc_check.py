"""SyncNet's MFCCs here against ``python_speech_features.mfcc`` (what the authors call).

Not a dependency of the project: install python_speech_features 0.6 somewhere apart (e.g.
``pip download python_speech_features==0.6 --no-deps`` and unpack it) and put it on
``PYTHONPATH``. On the speech of the committed test clips (16 kHz) it prints the largest
absolute difference of :func:`pipeline.vision.syncnet_inputs.syncnet_mfcc` from theirs, and
the same with librosa's own mel filters instead of the bin-rounded ones, per coefficient and
relative to the coefficient's spread.

    PYTHONPATH=/path/to/python_speech_features-0.6 .venv/bin/python bench/syncnet_mfcc_check.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.media.audio import decode_audio  # noqa: E402
from pipeline.vision import syncnet_inputs  # noqa: E402


def librosa_filters() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=16000, n_fft=512, n_mels=26, fmin=0.0, fmax=8000.0,
                               htk=True, norm=None, dtype=np.float64)  # fmt: skip


def main() -> None:
    try:
        import python_speech_features as psf
    except ImportError:
        sys.exit("python_speech_features is not importable: see this script's docstring")
    out = {}
    for clip in sorted((REPO / "tests/data/speaker").glob("*.mp4")):
        audio = decode_audio(clip, 16000)
        ref = psf.mfcc(np.clip(np.round(audio * 32768), -32768, 32767), 16000).T
        ours = syncnet_inputs.syncnet_mfcc(audio)
        plain = syncnet_inputs.syncnet_mfcc(audio, filters=librosa_filters())
        spread = ref.std(axis=1)
        out[clip.name] = {
            "frames": int(ref.shape[1]),
            "max_abs_diff": float(np.abs(ours - ref).max()),
            "librosa_filters_max_abs_diff": float(np.abs(plain - ref).max()),
            "librosa_filters_mean_abs_diff_over_spread": [
                round(float(v), 3) for v in np.abs(plain - ref).mean(axis=1) / spread
            ],
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
