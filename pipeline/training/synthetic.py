"""A synthetic corpus in the project layout, for tests and benchmarks of the trainer.

Every clip has a class and a hidden signal shared by all its modalities::

    h(t) = class_vector[c] * (1 + 0.5 sin(2 pi f_c t + phase)) + clip_vector

and each modality sees a random projection of h(t) plus a private nuisance of its own (a
slow drift and noise that no other modality, and no other window, shares), with
``private`` setting how much stronger the nuisance is than the shared signal. Contrastive
learning across modalities can only agree on h(t); untrained encoders mostly see the
nuisance.

Written: ``manifests/<corpus>/clips.csv``, ``manifests/<corpus>/folds/<scheme>.json`` and
``data/features/<corpus>/<modality>/`` shards (the formats of the real stages; array names
and shapes as the extractors write them, smaller in size).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import FoldScheme
from ..folds import fold_manifest
from ..manifest import ManifestEntry, dump_json, write_manifest
from ..paths import Layout
from ..store import ClipFeatures, ShardWriter

MODALITIES = ("mel", "spectrogram", "faces", "landmarks", "words")


@dataclass(frozen=True)
class SyntheticSpec:
    corpus: str = "synth"
    n_classes: int = 4
    n_speakers: int = 4
    clips_per_class_speaker: int = 4
    latent: int = 8
    private: float = 3.0  # nuisance amplitude relative to the shared signal
    noise: float = 0.3
    min_seconds: float = 1.5
    max_seconds: float = 3.0
    fps: float = 30.0
    mel_bins: int = 16
    spec_size: int = 32  # spectrogram segments spec_size x spec_size
    face_size: int = 16
    word_dim: int = 12
    compression: str = "lzf"  # gzip | lzf | none, as runner.compression
    # Face crops: noise (the hidden signal projected onto every pixel: incompressible) or
    # photo (scikit-image's astronaut face, shifted and lit by the signal, with a little
    # sensor noise: it compresses and decodes like real crops; for loader benchmarks).
    face_texture: str = "noise"
    seed: int = 0


def _private(rng: np.random.Generator, t: np.ndarray, dim: int, spec: SyntheticSpec) -> np.ndarray:
    """A nuisance only this modality of this clip has: a slow drift per dimension (random
    frequency 0.3-1.5 Hz and phase, RMS ``private``) plus white noise. It changes within a
    clip, so two windows of a clip do not share it either."""
    freq = rng.uniform(0.3, 1.5, size=dim)
    phase = rng.uniform(0, 2 * np.pi, size=dim)
    drift = np.sqrt(2) * spec.private * np.sin(2 * np.pi * freq * t[:, None] + phase)
    return drift + rng.normal(0, spec.noise, size=(len(t), dim))


def _project(h: np.ndarray, w: np.ndarray, extra: np.ndarray) -> np.ndarray:
    return (h @ w + extra).astype(np.float32)


def write_synthetic_corpus(
    root: str | Path,
    spec: SyntheticSpec | None = None,
    modalities: Sequence[str] = ("mel", "landmarks"),
    schemes: Sequence[FoldScheme] = (),
) -> list[ManifestEntry]:
    spec = spec or SyntheticSpec()
    rng = np.random.default_rng(spec.seed)
    lay = Layout(spec.corpus, root=Path(root))
    classes = [f"class{c}" for c in range(spec.n_classes)]
    model = _draw_model(spec, rng)
    entries, clips = [], []
    for s in range(spec.n_speakers):
        for c in range(spec.n_classes):
            for r in range(spec.clips_per_class_speaker):
                cid = f"s{s:02d}-c{c}-r{r:02d}"
                dur = float(rng.uniform(spec.min_seconds, spec.max_seconds))
                extra = (rng.uniform(0, 2 * np.pi), rng.normal(0, 0.5, size=spec.latent))
                entries.append(
                    ManifestEntry(
                        clip_id=cid,
                        path=f"{cid}.mp4",
                        speaker=f"spk{s:02d}",
                        label=classes[c],
                        duration=dur,
                        fps=spec.fps,
                        has_audio=True,
                        has_video=True,
                    )
                )
                clips.append((cid, c, dur, *extra))
    _write_features(lay, spec, rng, model, clips, modalities)
    write_manifest(lay.clips_csv, entries)
    for scheme in schemes:
        dump_json(lay.folds_dir / f"{scheme.name}.json", fold_manifest(entries, scheme, spec.seed))
    return entries


def write_synthetic_features(
    root: str | Path,
    entries: Sequence[ManifestEntry],
    class_of: Sequence[int],
    spec: SyntheticSpec | None = None,
    modalities: Sequence[str] = ("mel", "landmarks"),
) -> None:
    """Feature shards for the clips of an existing manifest (e.g. one a corpus adapter
    wrote), clip i carrying the hidden signal of class ``class_of[i]`` (0..n_classes-1)."""
    spec = spec or SyntheticSpec()
    rng = np.random.default_rng(spec.seed)
    model = _draw_model(spec, rng)
    clips = []
    for e, c in zip(entries, class_of, strict=True):
        dur = e.duration if e.duration > 0 else max(e.end - e.start, 0.0)
        dur = dur or float(rng.uniform(spec.min_seconds, spec.max_seconds))
        extra = (rng.uniform(0, 2 * np.pi), rng.normal(0, 0.5, size=spec.latent))
        clips.append((e.clip_id, int(c), dur, *extra))
    _write_features(Layout(spec.corpus, root=Path(root)), spec, rng, model, clips, modalities)


def _draw_model(spec: SyntheticSpec, rng: np.random.Generator) -> tuple:
    """Class vectors, class frequencies, per-modality projections, a landmark shape."""
    class_vec = rng.normal(size=(spec.n_classes, spec.latent))
    freqs = rng.uniform(0.5, 2.0, size=spec.n_classes)
    dims = {
        "mel": spec.mel_bins,
        "spectrogram": spec.spec_size**2,
        "faces": spec.face_size**2 * 3,
        "landmarks": 68 * 2,
        "words": spec.word_dim,
    }
    proj = {m: rng.normal(size=(spec.latent, d)) / np.sqrt(spec.latent) for m, d in dims.items()}
    shape = rng.uniform(0.2, 0.8, size=(68, 2))
    return class_vec, freqs, proj, shape


def _write_features(lay, spec: SyntheticSpec, rng, model, clips, modalities) -> None:
    class_vec, freqs, proj, shape = model

    def hidden(c: int, t: np.ndarray, *, phase: float, clip_vec: np.ndarray) -> np.ndarray:
        amp = 1.0 + 0.5 * np.sin(2 * np.pi * freqs[c] * t + phase)
        return class_vec[c][None, :] * amp[:, None] + clip_vec[None, :]

    for m in modalities:
        writer = ShardWriter(
            lay.features_dir(m),
            m,
            {"synthetic": True, "seed": spec.seed},
            {},
            _primary(m),
            compression=spec.compression,
        )
        with writer:
            for cid, c, dur, phase, clip_vec in clips:
                signal = functools.partial(hidden, c, phase=phase, clip_vec=clip_vec)
                feats = _modality(m, spec, rng, dur, signal, proj[m], shape)
                writer.add(cid, feats, source_sha256=cid)


def _primary(modality: str) -> str:
    return {"faces": "crops", "words": "vectors"}.get(modality, modality)


@functools.lru_cache(maxsize=4)
def _face_photo(size: int) -> np.ndarray:
    from skimage import data  # noqa: I001 - scikit-image comes with the faces extra

    from ..media.synthetic import FACE_PATCH

    patch = data.astronaut()[FACE_PATCH].astype(np.float32)
    pick = np.linspace(0, patch.shape[0] - 1, size).round().astype(int)
    return patch[pick][:, pick]


def _photo_faces(h: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Frames of the astronaut's face, moved by up to 3 px and lit by the hidden signal."""
    photo = _face_photo(size)
    out = np.empty((len(h), size, size, 3), np.uint8)
    for k, row in enumerate(h):
        dy, dx = np.clip(np.round(row[:2]), -3, 3).astype(int)
        gain = 1.0 + 0.1 * np.tanh(row[2] if len(row) > 2 else 0.0)
        img = np.roll(photo, (dy, dx), axis=(0, 1)) * gain + rng.normal(0, 0.5, photo.shape)
        out[k] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def _modality(m, spec, rng, dur, hidden, w, shape) -> ClipFeatures:
    if m == "mel":
        t = np.arange(0, dur, 1 / spec.fps)
        x = _project(hidden(t), w, _private(rng, t, w.shape[1], spec))
        return ClipFeatures({"mel": x}, t, np.ones(len(t), bool))
    if m == "faces":
        t = np.arange(0, dur, 1 / spec.fps)
        if spec.face_texture == "photo":
            crops = _photo_faces(hidden(t), spec.face_size, rng)
            return ClipFeatures({"crops": crops}, t, np.ones(len(t), bool))
        x = _project(hidden(t), w, _private(rng, t, w.shape[1], spec))
        img = (255 / (1 + np.exp(-x / 2))).astype(np.uint8)
        crops = img.reshape(len(t), spec.face_size, spec.face_size, 3)
        return ClipFeatures({"crops": crops}, t, np.ones(len(t), bool))
    if m == "landmarks":
        t = np.arange(0, dur, 1 / spec.fps)
        x = _project(hidden(t), w, _private(rng, t, w.shape[1], spec)).reshape(-1, 68, 2)
        pts = (shape[None] + 0.02 * x).astype(np.float32)
        return ClipFeatures(
            {"landmarks": pts * 192, "landmarks_crop": pts}, t, np.ones(len(t), bool)
        )
    if m == "words":
        t = np.arange(0.1, dur - 0.1, 0.3)
        x = _project(hidden(t), w, _private(rng, t, w.shape[1], spec))
        return ClipFeatures(
            {"vectors": x, "oov": np.zeros(len(t), np.uint8)}, t, np.ones(len(t), bool)
        )
    if m == "spectrogram":
        t = np.arange(0, dur, 1.024)
        x = _project(hidden(t + 0.5), w, _private(rng, t, w.shape[1], spec))
        segs = x.reshape(len(t), spec.spec_size, spec.spec_size)
        return ClipFeatures(
            {"spectrogram": segs, "real_frames": np.full(len(t), 128, np.int32)},
            t,
            np.ones(len(t), bool),
        )
    raise ValueError(f"no synthetic modality {m!r}; known: {', '.join(MODALITIES)}")
