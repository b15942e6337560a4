"""SyncNet's weights: where they come from, checked before use, loaded onto a device.

SyncNet (Chung & Zisserman 2016, "Out of time: automated lip sync in the wild") embeds five
video frames of a face and 0.2 s of the sound (13 MFCCs at 100 Hz, 20 steps) into one space,
trained so that the two embeddings are close when the lips say that sound. The weights are
the authors' released ``syncnet_v2.model`` (``joonson/syncnet_python``, ``download_model.sh``),
a state dict of their ``SyncNetModel.S`` (here :class:`~pipeline.vision.syncnet_net.SyncNet`,
the same names). It is not on the package registries: the user downloads it once and names
it (``faces.speaker.syncnet_model``); nothing is downloaded here. A missing file, a file that
is not the one ``syncnet_sha256`` pins, or a state dict with other names or shapes raises
:class:`SyncNetModelError` with the file, what is wrong and where to get the right one; the
faces stage stops with it before any clip is extracted (exit code 2, as the landmarks stage
for FAN's weights).

Inputs (what the authors' code feeds it, ``SyncNetInstance.py`` lines 65-118):

- lips: float32 (N, 3, 5, 224, 224), five consecutive 25 fps frames of a face crop, colour
  in OpenCV's BGR order, values 0-255 as decoded (no normalisation);
- sound: float32 (N, 1, 13, 20), 20 MFCC steps (10 ms each) starting at the first frame's
  time (frame i <-> MFCC steps 4i .. 4i + 19).

Each gives a 1024-d embedding; how the distances become a per-track score is in
:mod:`pipeline.vision.sync_speaker`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..hashing import file_sha256_memo
from ..weights import WeightsError, load_state_dict, resolve_weights

WEIGHTS_FILE = "syncnet_v2.model"
WEIGHTS_URL = "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model"
# BatchNorm's step counter: newer torch versions save it, the 2017 file has none; never used
# in eval mode, so its presence or absence does not matter.
_COUNTER = "num_batches_tracked"

if TYPE_CHECKING:
    from .syncnet_net import SyncNet


_NAME_IT = "faces.speaker.syncnet_model in params.yaml must name the SyncNet weights"


class SyncNetModelError(RuntimeError):
    """The SyncNet weights are missing, not the file params.yaml pins, or not its state dict."""


def syncnet_how_to_get() -> str:
    """Where the SyncNet weights come from (they are not on the package registries)."""
    return (
        f"The syncnet backend of faces.select speaker loads the authors' SyncNet weights "
        f"{WEIGHTS_FILE} (a PyTorch state dict; joonson/syncnet_python, download_model.sh); "
        f"it is not on the package registries and nothing is downloaded at run time. On a "
        f"machine with internet access download {WEIGHTS_URL} and copy it to that path. Or "
        f"set faces.speaker.backend: lips, which needs no extra file."
    )


def check_state_dict(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """``state`` when it is SyncNet's (the authors' names and shapes; BatchNorm step counters
    optional); otherwise a :class:`SyncNetModelError` that names what differs."""
    import torch

    from .syncnet_net import SyncNet

    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in SyncNet().state_dict().items()}
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    missing = sorted(k for k in want if k not in got and not k.endswith(_COUNTER))
    extra = sorted(k for k in state if k not in want)
    wrong = sorted(k for k in want if k in got and got[k] != want[k])
    if missing or extra or wrong:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)):
            if keys:
                shown = ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
                parts.append(f"{len(keys)} {what}: {shown}")
        raise SyncNetModelError(
            f"{path}: not the SyncNet state dict (the parameters of syncnet_python's "
            f"SyncNetModel.S): {'; '.join(parts)}. {_NAME_IT}. {syncnet_how_to_get()}"
        )
    return state


def resolve_syncnet_weights(path: str | Path, sha256: str = "") -> Path:
    """The weights file, checked (exists; matches ``sha256`` when given)."""
    try:
        return resolve_weights(
            path, sha256, what="SyncNet", how_to_get=syncnet_how_to_get(),
            param="faces.speaker.syncnet_model",
        )  # fmt: skip
    except WeightsError as e:
        raise SyncNetModelError(str(e)) from e


_CHECKED: set[str] = set()  # sha256 of files already read and found to be SyncNet's


def syncnet_token(path: str | Path, sha256: str = "") -> str:
    """``syncnet:<sha256>`` of the weights file (part of the faces cache key), after checking
    once per content that it is SyncNet's state dict, so that a wrong file stops the stage
    before any clip is extracted."""
    p = resolve_syncnet_weights(path, sha256)
    sha = file_sha256_memo(p)
    if sha not in _CHECKED:
        _read(p)
        _CHECKED.add(sha)
    return f"syncnet:{sha}"


def _read(path: Path) -> dict[str, Any]:
    try:
        state = load_state_dict(path)
    except WeightsError as e:
        raise SyncNetModelError(f"{e}. {_NAME_IT}. {syncnet_how_to_get()}") from e
    return check_state_dict(state, path)


def load_syncnet(path: str | Path, sha256: str = "", device: str = "cpu") -> SyncNet:
    """The network with the weights at ``path``, in eval mode on ``device``."""
    import torch

    from .syncnet_net import SyncNet

    p = resolve_syncnet_weights(path, sha256)
    state = _read(p)
    net = SyncNet()
    net.load_state_dict(state, strict=False)  # checked above: only step counters may lack
    return net.to(torch.device(device)).eval()
