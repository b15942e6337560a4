"""Other CPUs played on this one: the kernel choices each library would make there.

Every library that picks its code by the CPU can be told to pick as another CPU would:
OpenBLAS (``OPENBLAS_CORETYPE``), numpy (``NPY_DISABLE_CPU_FEATURES``, only features this
CPU has can be turned off), PyTorch's own kernels (``ATEN_CPU_CAPABILITY``), MKL
(``MKL_ENABLE_INSTRUCTIONS``), oneDNN (``ONEDNN_MAX_CPU_ISA``), OpenCV
(``OPENCV_CPU_DISABLE``), the C library's maths (``GLIBC_TUNABLES`` hardware capabilities) and
FFmpeg (``av_force_cpu_flags``, which has no environment variable: this module, run as a
script, applies it before running a stage script). A profile sets all of them as one machine
would. ``tests/test_cpu_kernels.py`` runs the stages under each.

    python tests/cpu_profiles.py PROFILE stages/mel.py [stage args]
"""

from __future__ import annotations

import runpy
import sys

# numpy's dispatch targets above each level (a feature can only be disabled with the ones
# that imply it)
_NPY_AVX2 = "AVX512_SPR AVX512_ICL X86_V4"
_NPY_V2 = _NPY_AVX2 + " X86_V3"
# FFmpeg's AV_CPU_FLAG_* (libavutil/cpu.h)
_AVX512 = 0x100000 | 0x200000  # AVX512, AVX512ICL
_AVX2 = 0x8000 | 0x10000 | 0x20000 | 0x40000  # AVX2, FMA3, BMI1, BMI2
_AVX = 0x4000 | 0x800 | 0x400  # AVX, FMA4, XOP
_OPENCV_AVX = "AVX512-SKX,AVX2,FP16"
_OPENCV_SSE42 = _OPENCV_AVX + ",AVX"
_GLIBC_AVX = "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX2,-FMA"
_GLIBC_SSE = _GLIBC_AVX + ",-AVX"

# name -> (environment, FFmpeg flags cleared), one machine each
PROFILES: dict[str, tuple[dict[str, str], int]] = {
    "skylake-x": ({"OPENBLAS_CORETYPE": "SkylakeX",
                   "NPY_DISABLE_CPU_FEATURES": "AVX512_SPR AVX512_ICL",
                   "ATEN_CPU_CAPABILITY": "avx512"}, 0x200000),
    "haswell": ({"OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": _NPY_AVX2,
                 "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                 "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENCV_CPU_DISABLE": "AVX512-SKX"}, _AVX512),
    "zen": ({"OPENBLAS_CORETYPE": "Zen", "NPY_DISABLE_CPU_FEATURES": _NPY_AVX2,
             "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2", "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F"},
            _AVX512),
    "sandybridge": ({"OPENBLAS_CORETYPE": "Sandybridge", "NPY_DISABLE_CPU_FEATURES": _NPY_V2,
                     "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX",
                     "ONEDNN_MAX_CPU_ISA": "AVX", "OPENCV_CPU_DISABLE": _OPENCV_AVX,
                     "GLIBC_TUNABLES": _GLIBC_AVX}, _AVX512 | _AVX2),
    "prescott": ({"OPENBLAS_CORETYPE": "Prescott", "NPY_DISABLE_CPU_FEATURES": _NPY_V2,
                  "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                  "ONEDNN_MAX_CPU_ISA": "SSE41", "OPENCV_CPU_DISABLE": _OPENCV_SSE42,
                  "GLIBC_TUNABLES": _GLIBC_SSE}, _AVX512 | _AVX2 | _AVX),
}


def play(profile: str) -> None:
    """In this process: FFmpeg's flags as ``profile``'s CPU would have them (the
    environment variables must be set before the process starts)."""
    import ctypes
    from pathlib import Path

    import av

    # PyAV's own FFmpeg (OpenCV's wheel carries another), bundled beside the package
    (path,) = Path(av.__file__).resolve().parent.parent.glob("av.libs/libavutil*")
    lib = ctypes.CDLL(str(path))
    lib.av_force_cpu_flags(lib.av_get_cpu_flags() & ~PROFILES[profile][1])


if __name__ == "__main__":
    name, script, *args = sys.argv[1:]
    if name != "this-cpu":
        play(name)
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")
