"""Model weights from local files only: existence, integrity and safe loading.

Every model file is named in ``params.yaml`` (``*_weights``) with an optional ``*_sha256``
beside it. A missing file fails with the file name, where it goes and how to get it; a hash
mismatch fails before anything is loaded; state dicts load with ``weights_only=True`` so a
file from someone else can never run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .extras import needs
from .hashing import file_sha256


class WeightsError(FileNotFoundError):
    """A weights file is missing, or its content is not the one recorded in params.yaml."""


def resolve_weights(path: str | Path, sha256: str = "", *, what: str, how_to_get: str,
                    param: str) -> Path:
    """Return ``path`` after checking it exists and (when ``sha256`` is set) its hash."""
    p = Path(path).expanduser()
    if not str(path) or not p.is_file():
        raise WeightsError(
            f"{what} weights not found: {p if str(path) else '(no path set)'}. Put the file "
            f"there or set {param} in params.yaml to where it is. {how_to_get}"
        )
    if sha256:
        actual = file_sha256(p)
        if actual.lower() != sha256.lower():
            raise WeightsError(
                f"{what} weights {p} have sha256 {actual}, but params.yaml records {sha256}; "
                f"the file is not the expected one (re-download it, or update the hash if you "
                f"meant to change the model)"
            )
    return p


def load_state_dict(path: Path) -> dict[str, Any]:
    """A plain tensor state dict; refuses pickled objects (``weights_only=True``)."""
    with needs("loading model weights", "train"):
        import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling refusal or corrupt file
        raise WeightsError(f"{path}: not a loadable tensor state dict ({_reason(e)})") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return obj


def _reason(e: Exception) -> str:
    """One line of why torch.load refused a file: its unpickler's own line ("Unsupported
    operand 118", "Unsupported global: ...") rather than the page of advice around it (which
    suggests ``weights_only=False``, the very thing not to do with a file of unknown origin)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    why = next((line for line in lines if line.startswith("Unsupported")), first)
    return (why[:200] + "...") if len(why) > 200 else why or type(e).__name__
