"""What SyncNet reads, prepared as the authors prepared it: the face crop and the MFCCs.

Face crop (``joonson/syncnet_python``, ``run_pipeline.py`` lines 121-147, ``crop_video``):
with ``s`` half the face box's longer side and the box centre (cx, cy), the crop spans x in
``cx +- 1.4 s`` and y from ``cy - s`` to ``cy + 1.8 s`` (``crop_scale`` 0.4: the face in the
upper part, chin and mouth well inside), parts outside the frame grey (110), resized to
224 x 224 by OpenCV's default bilinear resize, in BGR order. Two differences: the box is
MTCNN's (the authors' is S3FD's, a little larger around the forehead), and it is not
median-filtered over 13 frames (the crops are cut while the clip streams).

MFCC (``SyncNetInstance.py`` line 84: ``python_speech_features.mfcc`` with its defaults on
16 kHz int16 samples): pre-emphasis 0.97; 25 ms frames (400 samples, rectangular window)
every 10 ms, the last one zero-padded; power spectrum ``|rfft_512|^2 / 512``; 26 triangular
mel filters over 0-8 kHz (HTK mel scale), natural log; DCT-II (orthonormal), 13 coefficients;
cepstral lifter 22 (``1 + 11 sin(pi n / 22)``, n = 0..12); the first coefficient replaced by
the log of the frame's total power. Computed here with librosa's STFT, mel scale and DCT.
The mel filters are python_speech_features' kind, not librosa's: their edges (27 points
evenly spaced in mel) are rounded down to whole FFT bins (``floor(513 f / 16000)``) and
each filter rises linearly from its lower edge bin to its centre bin and falls to its upper
edge bin. librosa's own filters (exact triangles sampled at the bin frequencies) move the
higher coefficients by up to a fifth of their spread over speech (docs/visual.md), an input
the network was not trained on.
"""

from __future__ import annotations

import math

import numpy as np

from ..extras import needs

SAMPLE_RATE = 16000
CROP = 224
CROP_SCALE = 0.4  # run_pipeline.py --crop_scale
PAD_VALUE = 110  # the grey outside the frame
WIN, HOP, N_FFT = 400, 160, 512  # 25 ms, 10 ms, python_speech_features' nfft
N_MELS, N_MFCC, LIFTER, PREEMPH = 26, 13, 22, 0.97
INT16 = 32768.0  # the authors read 16-bit samples as integers (scipy.io.wavfile)


def face_crop(rgb: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The 224 x 224 BGR uint8 crop SyncNet reads of the face in ``box`` (x1, y1, x2, y2 in
    pixels of ``rgb``); None for an empty or non-finite box."""
    import cv2

    b = np.asarray(box, np.float64)
    if not np.isfinite(b).all() or b[2] - b[0] < 1 or b[3] - b[1] < 1:
        return None
    s = max(b[2] - b[0], b[3] - b[1]) / 2
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    x1, x2 = math.floor(cx - s * (1 + CROP_SCALE)), math.floor(cx + s * (1 + CROP_SCALE))
    y1, y2 = math.floor(cy - s), math.floor(cy + s * (1 + 2 * CROP_SCALE))
    h, w = rgb.shape[:2]
    patch = np.full((y2 - y1, x2 - x1, 3), PAD_VALUE, np.uint8)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if sx2 > sx1 and sy2 > sy1:
        patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = rgb[sy1:sy2, sx1:sx2, ::-1]  # BGR
    return cv2.resize(patch, (CROP, CROP), interpolation=cv2.INTER_LINEAR)


def syncnet_mfcc(audio: np.ndarray, filters: np.ndarray | None = None) -> np.ndarray:
    """float64 (13, T) MFCCs of mono 16 kHz ``audio`` (float, -1..1) with the settings of the
    module docstring; column k covers samples 160 k .. 160 k + 399. ``filters``: (26, 257)
    mel filters instead of :func:`binned_mel_filters` (for comparisons)."""
    with needs("faces (speaker backend syncnet)", "extract"):
        import librosa

    x = np.clip(np.round(np.asarray(audio, np.float64) * INT16), -INT16, INT16 - 1)
    x = librosa.effects.preemphasis(x, coef=PREEMPH, zi=0.0)  # y[0] = x[0]
    n_frames = 1 if len(x) <= WIN else 1 + math.ceil((len(x) - WIN) / HOP)
    # librosa centres the 400-sample window in the 512-sample frame: 56 zeros in front make
    # frame k's window cover samples 160 k .. 160 k + 399 (the power spectrum does not change
    # with where the zeros are); the end is zero-padded to the last frame, as the authors'.
    lead = (N_FFT - WIN) // 2
    x = np.pad(x, (lead, (n_frames - 1) * HOP + N_FFT - lead - len(x)))
    spec = librosa.stft(
        x, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window="boxcar", center=False
    )
    power = np.abs(spec) ** 2 / N_FFT  # (257, T)
    tiny = np.finfo(np.float64).eps
    fb = binned_mel_filters() if filters is None else filters
    log_mel = np.log(np.maximum(fb @ power, tiny))
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC, dct_type=2, norm="ortho", lifter=0)
    mfcc *= (1 + LIFTER / 2 * np.sin(np.pi * np.arange(N_MFCC) / LIFTER))[:, None]
    mfcc[0] = np.log(np.maximum(power.sum(axis=0), tiny))
    return mfcc


def binned_mel_filters() -> np.ndarray:
    """(26, 257) triangular mel filters with edges on whole FFT bins (module docstring)."""
    with needs("faces (speaker backend syncnet)", "extract"):
        import librosa

    top = librosa.hz_to_mel(SAMPLE_RATE / 2, htk=True)
    edges_hz = librosa.mel_to_hz(np.linspace(0.0, top, N_MELS + 2), htk=True)
    edges = np.floor((N_FFT + 1) * edges_hz / SAMPLE_RATE).astype(int)
    bins = np.arange(N_FFT // 2 + 1)
    out = np.zeros((N_MELS, len(bins)))
    for j, (lo, mid, hi) in enumerate(zip(edges[:-2], edges[1:-1], edges[2:], strict=True)):
        rise = (bins >= lo) & (bins < mid)
        fall = (bins >= mid) & (bins < hi)
        out[j, rise] = (bins[rise] - lo) / (mid - lo)
        out[j, fall] = (hi - bins[fall]) / (hi - mid)
    return out
