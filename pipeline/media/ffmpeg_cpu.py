"""FFmpeg's SIMD code pinned to one level, so decoded samples are the same on every x86-64 CPU.

FFmpeg picks its SIMD code (SSE2 ... AVX2, AVX-512) by the CPU it runs on. Its floating-point
audio decoders (AAC, MP3, AC-3, Opus, Vorbis, ...) then give different last bits on different
CPUs: on the sample corpus's AAC, about 40 % of a clip's samples differ (by up to 1.2e-7)
between an AVX2 and an AVX-only CPU, and every spectral feature after them. (Its fixed-point
AAC decoder gives the same samples everywhere, but it turns digital silence into a +-2**-16
floor, which moves a silent spectrogram frame from -100 dB to about -60 dB: not used.)

How it works: the first time a clip is decoded, :func:`pin` tells FFmpeg (``av_force_cpu_flags``
in the libavutil PyAV loaded) to use the x86-64-v2 instruction sets only (SSE to SSE4.2,
SSSE3: what every CPU that runs this project has, numpy 2.4 itself needing them), for the rest
of the process. The same code then runs on every x86-64 CPU. H.264 decoding and colour
conversion of 720p frames cost the same here; AAC decoding about 10 % more CPU time
(``bench/bench_audio.py``). Video bytes are unchanged (H.264 decoding is bit-exact by the
standard; swscale's conversions give the same bytes at this level and above).

On other architectures (ARM) FFmpeg is left as it is: stored bytes are the same across x86-64
CPUs, not between x86-64 and ARM.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# AV_CPU_FLAG_* of libavutil/cpu.h: MMX, MMXEXT, SSE, SSE2, SSE3, SSSE3, SSE4.1, SSE4.2, CMOV
X86_64_V2 = 0x0001 | 0x0002 | 0x0008 | 0x0010 | 0x0040 | 0x0080 | 0x0100 | 0x0200 | 0x1000

_lock = threading.Lock()
_state: dict[str, int] = {}  # "flags": what FFmpeg was pinned to (-1: not pinned)


def _libavutil() -> ctypes.CDLL | None:
    """The libavutil PyAV uses, or None. Not any libavutil loaded: OpenCV's wheel carries its
    own FFmpeg, so a process that imported cv2 holds two."""
    import av

    root = Path(av.__file__).resolve().parent
    wheel = [*root.parent.glob("av.libs/libavutil*"), *root.glob(".dylibs/libavutil*")]
    if wheel:  # PyAV's wheels bundle their FFmpeg beside the package
        return ctypes.CDLL(str(wheel[0]))
    maps = Path("/proc/self/maps")  # a PyAV built on a system FFmpeg: the one loaded
    if maps.exists():
        loaded = {line.split(maxsplit=5)[-1] for line in maps.read_text().splitlines()
                  if "/" in line and "libavutil" in line}
        loaded = {p for p in loaded if os.path.basename(p).startswith("libavutil")}
        if len(loaded) == 1:
            return ctypes.CDLL(loaded.pop())
    return None


def pin() -> int:
    """Pin FFmpeg's SIMD level (once per process); the flags now in force (-1: not pinned,
    the architecture is not x86-64 or libavutil was not found, and a warning said so)."""
    with _lock:
        if "flags" in _state:
            return _state["flags"]
        _state["flags"] = -1
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return -1
        lib = _libavutil()
        if lib is None:
            log.warning("PyAV's libavutil not found: decoded audio may differ in its last "
                        "bits between CPUs")
            return -1
        have = lib.av_get_cpu_flags()
        flags = have & X86_64_V2
        if flags != X86_64_V2:
            log.warning("this CPU lacks x86-64-v2 instructions (FFmpeg flags %#x): decoded "
                        "audio may differ in its last bits from other machines'", have)
        lib.av_force_cpu_flags(flags)
        _state["flags"] = flags
        return flags
