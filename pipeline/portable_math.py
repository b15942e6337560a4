"""Elementary functions whose float64 results are the same bits on every CPU.

numpy's ``log``, ``log10``, ``exp`` and ``cos`` pick SIMD kernels by the CPU (AVX2, AVX-512,
SVML), and its scalar fallbacks call the C library's, which picks FMA variants by the CPU: the
last bit of a result differs between machines, and a stored float32 rounded from it differs
now and then. These functions use only operations IEEE 754 rounds exactly (``+ - * /``,
comparisons, ``frexp``/``ldexp``, ``rint``), each a separate numpy ufunc that no machine
fuses into an FMA, in an order fixed by the code: every machine computes the same bits. They
are accurate to a few units in the last place of float64, so a value rounded once to float32
is the one the library function gives (tests/test_portable_math.py measures it).

How they work:

1. ``log``: ``x = m * 2**e`` with ``m`` in [sqrt(1/2), sqrt(2)) (``frexp``, exact);
   ``log m = 2 atanh(s)`` with ``s = (m - 1) / (m + 1)``, ``|s| < 0.172``, as a fixed
   polynomial in ``s**2``; ``log x = e log 2 + log m`` (log 2 in two parts).
2. ``exp``: ``x = k log 2 + r`` with ``k = rint(x / log 2)`` and ``|r| <= log(2) / 2``;
   ``exp r`` by its Taylor polynomial, scaled by ``2**k`` (``ldexp``, exact).
3. ``cos_2pi(n, d)`` = cos(2 pi n / d) for integers: the angle is brought into [0, pi/4] in
   exact integer arithmetic (the octant and its remainder), then a Taylor polynomial of sin
   or cos.
"""

from __future__ import annotations

import math

import numpy as np

# fdlibm's split of log(2): LN2_HI has trailing zero bits, so k * LN2_HI is exact for |k| < 2**20
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
# ... and of log10(2) (fdlibm's log10_2hi, log10_2lo)
LG2_HI = 3.01029995663611771306e-01
LG2_LO = 3.69423907715893078616e-13
INV_LN2 = 1.0 / math.log(2.0)
INV_LN10 = 1.0 / math.log(10.0)
SQRT_HALF = math.sqrt(0.5)
PI_4 = math.pi / 4

# 2 atanh(s) / (2 s) = sum_k s**(2k) / (2k + 1); |s| < 0.172 -> s**24 / 25 < 1e-19
_ATANH = tuple(1.0 / (2 * k + 1) for k in range(12))
# exp r = sum_k r**k / k!; |r| < 0.347 -> r**15 / 15! < 1e-19
_EXP = tuple(1.0 / math.factorial(k) for k in range(15))
# sin x / x and cos x in x**2 for x in [0, pi/4]: terms to x**20 / 20!
_SIN = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(10))
_COS = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(11))


def _horner(coefs: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    out = np.full_like(x, coefs[-1])
    for c in coefs[-2::-1]:
        out = out * x + c
    return out


def _log_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(e, log m)`` with ``x = m * 2**e``, ``m`` in [sqrt(1/2), sqrt(2)), for x > 0."""
    m, e = np.frexp(x)
    small = m < SQRT_HALF
    m = np.where(small, m * 2.0, m)
    s = (m - 1.0) / (m + 1.0)
    return (e - small).astype(np.float64), 2.0 * s * _horner(_ATANH, s * s)


def _special(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A logarithm's value at 0, inf, negative numbers and NaN."""
    out = np.where(x == 0, -np.inf, out)
    out = np.where(x == np.inf, np.inf, out)
    return np.where((x < 0) | np.isnan(x), np.nan, out)


def log(x: np.ndarray | float) -> np.ndarray:
    """Natural logarithm of ``x`` (float64): -inf at 0, NaN below, inf at inf."""
    x = np.asarray(x, np.float64)
    e, log_m = _log_parts(np.where(np.isfinite(x) & (x > 0), x, 1.0))
    return _special(x, e * LN2_HI + (e * LN2_LO + log_m))


def log10(x: np.ndarray | float) -> np.ndarray:
    """Base-10 logarithm of ``x`` (float64), as :func:`log`."""
    x = np.asarray(x, np.float64)
    e, log_m = _log_parts(np.where(np.isfinite(x) & (x > 0), x, 1.0))
    return _special(x, e * LG2_HI + (e * LG2_LO + log_m * INV_LN10))


def exp(x: np.ndarray | float) -> np.ndarray:
    """``e**x`` (float64): 0 far below, inf far above."""
    x = np.asarray(x, np.float64)
    xc = np.clip(np.nan_to_num(x), -746.0, 710.0)
    k = np.rint(xc * INV_LN2)
    r = (xc - k * LN2_HI) - k * LN2_LO
    with np.errstate(over="ignore"):  # inf far above, as numpy's
        out = np.ldexp(_horner(_EXP, r), k.astype(np.int64))
    return np.where(np.isnan(x), np.nan, out)


def cos_2pi(n: np.ndarray | int, d: int) -> np.ndarray:
    """cos(2 pi n / d) (float64) for integers ``n`` and ``d`` > 0, without rounding the
    angle before it lies in [0, pi/4]."""
    r = np.asarray(n, np.int64) % d
    octant, rem = np.divmod(8 * r, d)  # 2 pi r / d = pi/4 (octant + rem / d)
    up = octant % 2 == 1  # odd octants count down from the next multiple of pi/4
    x = PI_4 * (np.where(up, d - rem, rem) / d)
    x2 = x * x
    sin_x = x * _horner(_SIN, x2)
    cos_x = _horner(_COS, x2)
    # octant: 0 cos, 1 sin, 2 -sin, 3 -cos, 4 -cos, 5 -sin, 6 sin, 7 cos (of x)
    use_sin = np.isin(octant, (1, 2, 5, 6))
    negative = np.isin(octant, (2, 3, 4, 5))
    out = np.where(use_sin, sin_x, cos_x)
    return np.where(negative, -out, out)
