"""Parameter sections of the trainer: ``train`` (shared), ``pretrain`` and ``evaluate``.

Defaults are the papers' values (MPUC §III-D, Qian & Han §4.3); where a paper is silent the
authors' code decides, noted beside the field. ``params.yaml`` may shrink epochs for the
sample corpus; it says so beside each such key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Literal

from ..config import ConfigError, build, check_safe_name, to_dict
from ..models.config import (
    LSTMConfig,
    R2Plus1DConfig,
    SpecCNNConfig,
    STGCNConfig,
    TCNConfig,
    TransformerConfig,
)

Backbone = Literal["tcn", "r2plus1d", "stgcn", "transformer", "spec_cnn", "lstm"]


@dataclass(frozen=True)
class InputConfig:
    """How one modality's shards become a model input.

    ``time``: the window is resampled onto ``steps`` evenly spaced times (nearest row; rows
    farther than 3/4 of the row spacing, invalid rows and times past the clip are masked).
    ``sequence``: the rows whose timestamps fall in the window, in order, cut or zero-padded
    to ``steps`` (words, spectrogram segments).
    ``clip``: every row of the clip whatever the window, cut or padded to ``steps`` (the MPUC
    paper's mel: one fixed 128-frame array per clip).
    """

    array: str = ""  # array name in the shards; "" = the feature's primary array
    steps: int = 32
    mode: Literal["time", "sequence", "clip"] = "time"
    backbone: Backbone = "tcn"
    # scale by one mean/std over the valid rows of the fold's training clips (kept with the
    # model); R(2+1)D applies its own Kinetics normalisation to uint8 crops instead.
    standardize: bool = True

    def validate(self, key: str) -> None:
        if self.steps <= 0:
            raise ConfigError(f"{key}.steps: must be > 0, got {self.steps}")


@dataclass(frozen=True)
class InputsConfig:
    """One entry per feature the trainer knows (the feature directory has the same name)."""

    # MPUC code: a mel frame per video frame; with mel.variant paper frames are 0.2 s apart
    # and resampled (repeated) onto the steps.
    mel: InputConfig = field(default_factory=lambda: InputConfig("mel", 32, "time", "tcn"))
    # Qian & Han: one ~1 s 128 x 128 segment.
    spectrogram: InputConfig = field(
        default_factory=lambda: InputConfig("spectrogram", 1, "sequence", "spec_cnn")
    )
    # MPUC code: 8 frames of 112 x 112 crops per window.
    faces: InputConfig = field(
        default_factory=lambda: InputConfig("crops", 8, "time", "r2plus1d", standardize=False)
    )
    landmarks: InputConfig = field(
        default_factory=lambda: InputConfig("landmarks_crop", 30, "time", "stgcn")
    )
    # Qian & Han: 30 words; MPUC code on CMU-MOSEI: 30 time steps.
    words: InputConfig = field(
        default_factory=lambda: InputConfig("vectors", 30, "sequence", "transformer", False)
    )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class WindowConfig:
    # Window length in seconds; 0 = the whole clip (each clip stretched onto the steps).
    # MPUC code: 90 frames at 30 fps on RAVDESS = 3 s.
    seconds: float = 3.0
    # Random windows of a clip per pretraining sample (the temporal augmentation; the MPUC
    # code's two views).
    views: int = 2
    # The window of validation and test: centre (of the clip), or first (from its start, as
    # the MPUC code's loaders set start_frame = 0 when testing).
    eval_at: Literal["centre", "first"] = "centre"

    def validate(self, key: str) -> None:
        if self.seconds < 0:
            raise ConfigError(f"{key}.seconds: must be >= 0, got {self.seconds}")
        if self.views < 1:
            raise ConfigError(f"{key}.views: must be >= 1, got {self.views}")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser, step schedule and early stopping (MPUC §III-D)."""

    name: Literal["sgd", "adam"] = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 1e-3
    step_epochs: int = 100  # lr *= gamma every step_epochs epochs (RAVDESS 100, MOSEI 5); 0 = off
    gamma: float = 0.9
    batch_size: int = 32
    max_epochs: int = 2000
    # Stop after this many epochs without a better validation value; 0 = never stop early.
    patience: int = 100
    min_delta: float = 0.0  # smallest change that counts as better
    monitor: Literal["loss", "score"] = "loss"  # validation loss, or accuracy / mean w-acc

    def validate(self, key: str) -> None:
        for name in ("lr", "batch_size", "max_epochs"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{key}.{name}: must be > 0, got {getattr(self, name)}")
        if self.step_epochs < 0 or self.patience < 0 or self.min_delta < 0:
            raise ConfigError(f"{key}: step_epochs, patience and min_delta must be >= 0")


@dataclass(frozen=True)
class TrainConfig:
    """Section ``train``: data, models and run settings shared by pretrain and evaluate."""

    scheme: str = "actor_kfold"  # fold manifest manifests/<corpus>/folds/<scheme>.json
    folds: tuple[int, ...] = ()  # fold numbers to run; () = all
    # Modalities of the MPUC methods (feature directories under data/features/<corpus>/).
    # MPUC RAVDESS: faces, mel, landmarks; CMU-MOSEI adds words.
    modalities: tuple[str, ...] = ("faces", "mel", "landmarks")
    seed: int = 0
    # Run every fold of pretrain and evaluate once per seed; metrics are mean +- std over all
    # (seed, fold) runs. () = just ``seed``.
    seeds: tuple[int, ...] = ()
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when present
    # Arithmetic of training (docs/training.md, "Precision"): fp32 (exact; TF32 off on
    # CUDA) | tf32 (CUDA) | bf16 (autocast; CUDA or CPU) | fp16 (autocast + loss scaling,
    # CUDA) | auto (bf16 on a GPU that has it, else fp32). Recorded with every model.
    precision: Literal["auto", "fp32", "tf32", "bf16", "fp16"] = "fp32"
    # DataLoader worker processes of every loader (training, validation, prediction,
    # features); auto = this process's cores (shared among a machine's ranks) - 1, at most
    # 16. Each worker opens its own HDF5 handles.
    num_workers: int | Literal["auto"] = 0
    prefetch_factor: int = 2  # batches each worker prepares ahead
    threads: int = 0  # torch CPU threads per process; 0 = PyTorch's default (all cores)
    # Decoded clips in one uncompressed memory-mapped file per modality under
    # <checkpoint_dir>/<corpus>/windows/, shared by every worker, rank, fold and stage
    # (one copy in memory); false: windows are decoded from the shards on every read.
    cache_clips: bool = False
    window: WindowConfig = field(default_factory=WindowConfig)
    feature_dim: int = 512  # backbone output (MPUC §III-C)
    projection_hidden: int = 1024  # projection head fc-ReLU-fc: 512 -> 1024 -> 512 (code)
    inputs: InputsConfig = field(default_factory=InputsConfig)
    tcn: TCNConfig = field(default_factory=TCNConfig)
    r2plus1d: R2Plus1DConfig = field(default_factory=R2Plus1DConfig)
    stgcn: STGCNConfig = field(default_factory=STGCNConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    spec_cnn: SpecCNNConfig = field(default_factory=SpecCNNConfig)
    lstm: LSTMConfig = field(default_factory=LSTMConfig)
    # Resumable training state goes to <checkpoint_dir>/<corpus>/training/, outside the DVC
    # outs (kept across interrupted runs), next to the extraction cache by default.
    checkpoint_dir: str = "data/cache"
    checkpoint_seconds: float = 60.0  # save the training state at most this often (0: every epoch)

    def validate(self, key: str) -> None:
        check_safe_name(self.scheme, f"{key}.scheme", "fold scheme name",
                        "manifests/<corpus>/folds/<scheme>.json, data/models/.../<scheme>/")
        known = InputsConfig.names()
        if not self.modalities:
            raise ConfigError(f"{key}.modalities: list at least one modality")
        for m in self.modalities:
            if m not in known:
                raise ConfigError(
                    f"{key}.modalities: unknown modality {m!r}; known: {', '.join(known)}"
                )
        if len(set(self.modalities)) != len(self.modalities):
            raise ConfigError(f"{key}.modalities: a modality is listed twice")
        if self.threads < 0:
            raise ConfigError(f"{key}.threads: must be >= 0")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"{key}.seeds: a seed is listed twice")
        if self.num_workers != "auto" and self.num_workers < 0:
            raise ConfigError(f"{key}.num_workers: an integer >= 0 or auto")
        if self.prefetch_factor < 1:
            raise ConfigError(f"{key}.prefetch_factor: must be >= 1")
        if self.feature_dim <= 0 or self.projection_hidden <= 0:
            raise ConfigError(f"{key}: feature_dim and projection_hidden must be > 0")
        if self.checkpoint_seconds < 0:
            raise ConfigError(f"{key}.checkpoint_seconds: must be >= 0")

    def input(self, modality: str) -> InputConfig:
        return getattr(self.inputs, modality)

    def loader_workers(self) -> int:
        """``num_workers`` with ``auto`` resolved: :func:`auto_workers`."""
        return auto_workers() if self.num_workers == "auto" else int(self.num_workers)

    def run_seeds(self) -> tuple[int, ...]:
        return self.seeds or (self.seed,)

    def run_suffix(self, seed: int) -> str:
        """Names a seed's files and results: "" with a single seed (fold-<k>.pt, as
        before), "-seed-<s>" with several (fold-<k>-seed-<s>.pt)."""
        return "" if len(self.run_seeds()) == 1 else f"-seed-{seed}"


AUTO_WORKERS_CAP = 16  # each worker holds its own buffers and up to 256 MiB of HDF5 caches


def auto_workers(cap: int = AUTO_WORKERS_CAP) -> int:
    """DataLoader workers for ``num_workers: auto``: the cores this process may run on
    (its CPU affinity, so a container's or a batch job's limit counts), shared among the
    ranks torchrun started on this machine (``LOCAL_WORLD_SIZE``), one kept for the
    training process itself; at most ``cap``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(cap, (cores or 1) // ranks - 1))


@dataclass(frozen=True)
class PretrainConfig:
    """Section ``pretrain``: modality-pairwise contrastive pretraining (MPUC §III-B)."""

    # paper: Eq. (1)-(2), denominator over j != i; supcon: the authors' code (SupCon-style,
    # positives = the other window of the same clip); supervised: the code's supervised mode
    # (positives = clips of the same emotion).
    loss: Literal["paper", "supcon", "supervised"] = "paper"
    temperature: float = 0.07
    reduction: Literal["sum", "mean"] = "sum"  # Eq. (1): L^{m,n} sums over the batch
    # train: the fold's training clips (paper); all: every clip of the corpus, as the code
    # does in unsupervised mode (test clips leak into the encoder).
    clips: Literal["train", "all"] = "train"
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self, key: str) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"{key}.temperature: must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class ProbeConfig:
    """The MPUC downstream classifier on frozen, concatenated 512-d features (§III-C)."""

    hidden: int = 512  # fc-ReLU-fc (paper); 0 = a single linear layer
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(batch_size=64))


@dataclass(frozen=True)
class AttentionConfig:
    """Supervised attention baseline (MPUC §IV-B): multi-head attention over modalities."""

    heads: int = 8
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(batch_size=64))


@dataclass(frozen=True)
class QianHanConfig:
    """Contrastive regularization (Qian & Han §3-4)."""

    audio: str = "spectrogram"  # modality of the CNN encoder
    text: str = "words"  # modality of the LSTM + attention encoder (any (T, D) sequence)
    alpha: float = 0.1  # (1 - alpha) CE + alpha InfoNCE; the baseline runs with alpha 0
    # other_emotions: negatives are the batch's texts of other emotions (paper);
    # all: every other text of the batch.
    negatives: Literal["other_emotions", "all"] = "other_emotions"
    discriminator_hidden: int = 256  # "a single hidden layer"; its width is not given
    dropout: float = 0.0  # before the classifier; the authors' code: 0.7
    # on the text's input vectors, before the LSTM (training only); the authors' code: 0.75
    text_dropout: float = 0.0
    window_seconds: float = 0.0  # 0 = whole utterance (no temporal augmentation)
    # Which ~1 s spectrogram segments of an utterance the CNN sees (the paper divides
    # utterances into ~1 s segments and does not say how they are combined):
    # all: every segment (up to max_segments), the CNN's outputs averaged over the valid
    # segments into one utterance embedding, in training and at test (so a test utterance is
    # judged on all of its audio); first: the first segment only, in training and test.
    segments: Literal["all", "first"] = "all"
    max_segments: int = 10  # all: segments kept from the start (10 x 1.02 s; IEMOCAP ~4.5 s)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            name="adam",
            lr=1e-3,
            momentum=0.0,
            weight_decay=0.0,
            step_epochs=0,
            batch_size=64,
            max_epochs=1000,
            patience=30,
        )
    )  # Adam 1e-3, batch 64 (paper); 1000 epochs, patience 30 (the authors' code)

    def validate(self, key: str) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"{key}.alpha: must be in [0, 1], got {self.alpha}")
        if self.max_segments < 1:
            raise ConfigError(f"{key}.max_segments: must be >= 1, got {self.max_segments}")
        for k in ("dropout", "text_dropout"):
            if not 0.0 <= getattr(self, k) < 1.0:
                raise ConfigError(f"{key}.{k}: must be in [0, 1), got {getattr(self, k)}")
        if self.audio == self.text:
            raise ConfigError(f"{key}: audio and text must be different modalities")
        for k in ("audio", "text"):
            if getattr(self, k) not in InputsConfig.names():
                raise ConfigError(
                    f"{key}.{k}: unknown modality {getattr(self, k)!r}; known: "
                    + ", ".join(InputsConfig.names())
                )


METHODS = (
    "probe",  # MPUC: frozen contrastive features + classifier
    "probe_untrained",  # the same classifier on untrained encoders (reference)
    "unimodal",  # supervised, one run per modality
    "late_fusion",  # supervised, concatenated backbones
    "attention",  # supervised, attention over modalities
    "qian_han",  # contrastive regularization, alpha from qian_han.alpha
    "qian_han_baseline",  # the same model with alpha 0
)


@dataclass(frozen=True)
class EvaluateConfig:
    """Section ``evaluate``: which methods run over the folds, and their settings."""

    methods: tuple[str, ...] = ("probe", "probe_untrained", "unimodal", "late_fusion", "attention")
    # auto: multi-label when the manifest has score_<emotion> columns (CMU-MOSEI, whose
    # dominant-emotion label column is then ignored); single: the label column.
    task: Literal["auto", "single", "multi"] = "auto"
    multilabel_threshold: float = 0.0  # an emotion is present when its score is above this
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    unimodal: OptimConfig = field(default_factory=OptimConfig)
    # Per modality, keys that replace those of ``unimodal`` for that modality's baseline
    # (MPUC §IV-B lists its own settings per modality), e.g.
    # {mel: {lr: 0.001, step_epochs: 10, max_epochs: 100, patience: 0}, faces: {lr: 0.01}}.
    unimodal_by_modality: dict[str, dict] = field(default_factory=dict)
    late_fusion: OptimConfig = field(default_factory=OptimConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    qian_han: QianHanConfig = field(default_factory=QianHanConfig)

    def validate(self, key: str) -> None:
        for m in self.methods:
            if m not in METHODS:
                raise ConfigError(
                    f"{key}.methods: unknown method {m!r}; allowed: {', '.join(METHODS)}"
                )
        if not self.methods:
            raise ConfigError(f"{key}.methods: list at least one method")
        for m in self.unimodal_by_modality:
            if m not in InputsConfig.names():
                raise ConfigError(
                    f"{key}.unimodal_by_modality: unknown modality {m!r}; known: "
                    + ", ".join(InputsConfig.names())
                )
            self.unimodal_optim(m, f"{key}.unimodal_by_modality.{m}")

    def unimodal_optim(self, modality: str, key: str = "evaluate.unimodal") -> OptimConfig:
        """``unimodal`` with the modality's ``unimodal_by_modality`` keys replaced."""
        over = self.unimodal_by_modality.get(modality) or {}
        if not isinstance(over, dict):
            raise ConfigError(f"{key}: expected a mapping, got {over!r}")
        if not over:
            return self.unimodal
        return build(OptimConfig, {**to_dict(self.unimodal), **over}, key)
