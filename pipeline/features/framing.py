"""Cut a stream of sample blocks into analysis frames, as one pass over the whole signal would.

:class:`FrameStream` takes the waveform block by block and hands back, for each block, the
stretch of samples that holds the next whole frames (``n_fft`` samples every ``hop``). Frame
``k`` starts at sample ``k * hop`` of the padded signal: ``pad`` zeros, the waveform (itself
zero-padded to ``min_length`` when shorter), ``pad`` zeros. With ``pad = n_fft // 2`` this is
librosa's ``center=True`` framing; with 0 it is plain framing (``1 + (n - n_fft) // hop``
frames). Computing a spectrum frame by frame on these stretches gives the same numbers as on
the whole signal, with memory bounded by the block size.
"""

from __future__ import annotations

import numpy as np


class FrameStream:
    def __init__(self, n_fft: int, hop: int, pad: int = 0, min_length: int = 0) -> None:
        self.n_fft, self.hop, self.min_length = n_fft, hop, min_length
        self._pad = pad
        self._buf = np.zeros(pad, np.float32)
        self._buf_start = 0  # padded-signal index of _buf[0]
        self._next = 0  # padded-signal index where the next frame starts
        self.n_samples = 0  # waveform samples pushed so far
        self.n_frames = 0  # frames handed out so far

    def push(self, block: np.ndarray) -> np.ndarray | None:
        """Add waveform samples; return the stretch holding every frame now complete
        (``(k - 1) * hop + n_fft`` samples for k frames), or None when no frame is."""
        self.n_samples += len(block)
        self._buf = np.concatenate([self._buf, np.asarray(block, np.float32)])
        return self._take()

    def finish(self) -> np.ndarray | None:
        """Pad the end (to ``min_length`` and by ``pad``) and return the last frames."""
        tail = max(0, self.min_length - self.n_samples) + self._pad
        self._buf = np.concatenate([self._buf, np.zeros(tail, np.float32)])
        return self._take()

    def _take(self) -> np.ndarray | None:
        end = self._buf_start + len(self._buf)
        k = 0 if end - self._next < self.n_fft else 1 + (end - self._next - self.n_fft) // self.hop
        if k == 0:
            return None
        lo = self._next - self._buf_start
        stretch = self._buf[lo : lo + (k - 1) * self.hop + self.n_fft]
        self._next += k * self.hop
        self.n_frames += k
        # Drop what no later frame needs.
        keep_from = min(self._next - self._buf_start, len(self._buf))
        self._buf = self._buf[keep_from:].copy()
        self._buf_start += keep_from
        return stretch.copy()
