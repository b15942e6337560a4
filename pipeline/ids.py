"""One rule for the names that become file and HDF5 names: clip ids and corpus names.

Names come from adapters, but also back from files anyone can edit (``clips.csv``, an
``index.json``, a ``.csd``, ``params.yaml``). Each of those places checks them with
:func:`check_name` before a name is joined into a path, so no name can point outside the
directory it is meant for (``../x``, ``/etc/x``, ``.hidden``) or be an unusable HDF5 name.
"""

from __future__ import annotations

import re

NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")
MAX_LEN = 200


def is_valid_name(name: object) -> bool:
    """True for ``[A-Za-z0-9._-]``, no leading dot (so never ``..`` or hidden), at most
    :data:`MAX_LEN` characters."""
    return isinstance(name, str) and NAME_RE.fullmatch(name) is not None


def check_name(name: object, what: str = "clip id", where: str = "") -> str:
    """``name`` if valid; else ValueError saying what, where it came from and the rule."""
    if is_valid_name(name):
        return name  # type: ignore[return-value]
    at = f" in {where}" if where else ""
    raise ValueError(
        f"{what} {name!r}{at} is not a safe name: it may hold only letters, digits, '.', '_' "
        f"and '-', not start with '.', and have at most {MAX_LEN} characters"
    )
