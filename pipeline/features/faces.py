"""Face crops: one face per frame found by MTCNN (facenet-pytorch), cut square and resized.

MPUC §III-A takes facial images "extracted by MTCNN" as the input of its R(2+1)D backbone
(112 x 112 in the authors' code). Frames are decoded as a stream and sampled at ``fps`` (0 =
every frame of the source). Full MTCNN detection runs on key frames, batched, on a copy of the
frame scaled down to ``detect_max_side``; the face is followed between key frames by MTCNN's
O-net at full resolution (see :mod:`pipeline.vision.face_track`). Faces are linked into
tracks (people), and one track is chosen for the whole clip by ``select`` (see
:mod:`pipeline.vision.track_choice`): the rows never switch people mid-clip; frames where the
chosen person has no face have none (``valid`` False) even when someone else is there
(``n_frames_other_faces_only`` counts them). Faces down to ``min_face`` (1/20 of the long side
by default) are looked for; a clip with a face in fewer than ``min_face_rate`` of its frames
gets a ``warning`` attribute (the stage lists it in its warnings table), or fails when
``strict``. Memory: at most ``batch_mb`` MiB of RGB frames are held, plus the rows of
``batch_size`` frames; a frame too large for two to fit (8K) is handled alone, on a working
copy of at most ``batch_mb / 16`` MiB (``work_scale``; boxes stay in source pixels). The crop is a
square centred on the face box, ``1 + margin`` times its longer side, cut from the
full-resolution frame (parts outside the frame are black) and resized to ``crop_size``.
Rows go to the clip's output ``batch_size`` frames at a time (a
:class:`~pipeline.features.base.StreamingExtractor`), so a long video costs no more memory
than a short one.

Arrays (T = sampled frames; coordinates in pixels of the upright source frame, x right, y
down, as facenet-pytorch reports them):

- ``crops``      uint8 (T, S, S, 3) RGB face crops; zeros where there is no face.
- ``boxes``      float32 (T, 4) face box x1, y1, x2, y2; NaN where there is no face.
- ``crop_boxes`` float32 (T, 4) the square region each crop was cut from (integers; the crop
  maps it onto S x S pixels, so a source point p lies at (p - xy1) / side of the crop).
- ``probs``      float32 (T,) MTCNN face probability; 0 where none was detected.
- ``points``     float32 (T, 5, 2) MTCNN's five points (left eye, right eye, nose, left and
  right mouth corner, as seen in the image); NaN where there is no face.
- ``filled``     bool (T,) the frame had no face and took its face from the nearest frame
  that had one (``fill_gaps`` > 0 only; its ``probs`` is 0).

``timestamps``: seconds from the clip's start, on the media's time base (time 0 = first audio
sample; see :mod:`pipeline.media.video`), the same as the audio features'. ``valid``: the frame
has a face (detected or filled). A clip with no face in any frame fails with a reason.

``select: all`` keeps every track: a row per face instead of a row per frame. The rows of a
frame with faces are one per track there, in track order; a frame with no face has one row
with track -1 (``valid`` 0, NaN boxes), so every frame has at least one row. Rows are in time
order, so ``timestamps`` repeat for a frame with several faces. The same arrays, plus:

- ``track``      int32 (R,) the row's track id (0, 1, ... in order of first appearance; a
  person keeps an id for the whole clip); -1 on a no-face row.

``fill_gaps`` must be 0 (filling is a one-person rule). The landmarks stage computes points
per row (so per track); the trainer takes one row per time and refuses such shards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..config import ConfigError
from ..extras import needs
from ..media.video import VideoDecodeError, iter_decoded
from ..store import ClipSink
from ..vision.speaker import SpeakerConfig, speaker_attrs, speaker_doubts
from . import register
from .base import AUDIO_FIELD, ClipSource, ExtractionError, StreamingExtractor

if TYPE_CHECKING:
    from ..vision.face_track import Face, FaceTracker, TrackSettings


def speaker_weights_error(e: Exception) -> Exception:
    """The error of the lip pass's dlib predictor, named by the faces parameter: a missing
    file stays missing input (exit 3, as in the landmarks stage), a broken one stops the run."""
    from ..vision.landmarkers import LandmarkWeightsMissingError

    text = "faces.select speaker: " + str(e).replace("landmarks.dlib_model",
                                                      "faces.speaker.dlib_model")
    if isinstance(e, LandmarkWeightsMissingError):
        return LandmarkWeightsMissingError(text)
    return ExtractionError(text)


@dataclass(frozen=True)
class FacesConfig:
    fps: float = 0.0  # frames sampled per second; 0 = every frame of the source
    crop_size: int = 112  # crops are crop_size x crop_size (R(2+1)D input in the MPUC code)
    margin: float = 0.3  # crop side = (1 + margin) x the face box's longer side
    # which track (person) a clip follows: confidence | largest | central | side | speaker;
    # all = every track, a row per face with its track id (see the module docstring)
    select: Literal["confidence", "largest", "central", "side", "speaker", "all"] = "confidence"
    speaker_min_corr: float = 0.2  # speaker: below this lip/sound correlation use largest
    # speaker: how tracks are scored and when a choice is sure (pipeline/vision/speaker.py)
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    min_prob: float = 0.9  # faces MTCNN scores below this are ignored (stray boxes)
    # smallest face to find: < 1 = fraction of the frame's long side, >= 1 = source pixels
    min_face: float = 0.05
    # key frames between scans at min_face (also the first key frame, and where the fast scan
    # finds nothing or a face is lost); 0 = only those
    full_scan_every: int = 30
    min_face_rate: float = 0.95  # a clip with a face in fewer frames gets a warning row
    strict: bool = False  # ... or fails instead
    # MTCNN settings; min_face_size is in pixels of the detection copy.
    min_face_size: int = 40
    thresholds: tuple[float, ...] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    detect_max_side: int = 320  # detect on a copy whose longer side is at most this; 0 = full
    key_interval: int = 10  # full detection every n-th frame, the face followed between; 1 = all
    refine_rnet: bool = False  # follow with R-net then O-net (instead of O-net alone)
    batch_size: int = 30  # frames handled together on CPU (holds this many RGB frames)
    cuda_batch_size: int = 120  # the same on a GPU
    batch_mb: float = 128.0  # ... but never more than this many MiB of RGB frames
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when available
    fill_gaps: int = 0  # fill gaps of up to this many frames with no face; 0 = off
    decode_threads: int = 0  # decoder threads; 0 = FFmpeg's default
    # torch CPU threads while extracting; 0 = leave torch's setting. MTCNN's small batches
    # run fastest on one thread per process (parallelism comes from the runner's workers).
    torch_threads: int = 1

    def validate(self, key: str) -> None:
        for name in ("crop_size", "min_face_size", "key_interval", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}: must be >= 1, got {getattr(self, name)}")
        if self.cuda_batch_size < 1:
            raise ConfigError(f"{key}.cuda_batch_size: must be >= 1")
        for name in (
            "fps",
            "margin",
            "detect_max_side",
            "fill_gaps",
            "full_scan_every",
            "decode_threads",
            "torch_threads",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{key}.{name}: must be >= 0, got {getattr(self, name)}")
        if len(self.thresholds) != 3 or not all(0 <= t <= 1 for t in self.thresholds):
            raise ConfigError(f"{key}.thresholds: three numbers in [0, 1] (P-, R-, O-net)")
        if not 0 < self.factor < 1:
            raise ConfigError(f"{key}.factor: must be in (0, 1), got {self.factor}")
        for name in ("min_face", "batch_mb"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{key}.{name}: must be >= 0, got {getattr(self, name)}")
        if not -1 <= self.speaker_min_corr <= 1:
            raise ConfigError(f"{key}.speaker_min_corr: must be in [-1, 1]")
        if not 0 <= self.min_face_rate <= 1:
            raise ConfigError(f"{key}.min_face_rate: must be in [0, 1], got {self.min_face_rate}")
        if not 0 <= self.min_prob <= 1:
            raise ConfigError(f"{key}.min_prob: must be in [0, 1], got {self.min_prob}")
        if self.select == "all" and self.fill_gaps:
            raise ConfigError(
                f"{key}.fill_gaps: fills one person's gaps; with select: all set it to 0"
            )


def resolve_device(device: str, stage: str = "faces") -> str:
    """``"cpu"`` or ``"cuda"`` for a config's ``device`` (auto | cpu | cuda); ``auto`` logs
    its choice and the reason once per stage (:func:`pipeline.devices.choose_device`)."""
    from ..devices import choose_device

    try:
        return choose_device(device, stage)
    except RuntimeError as e:
        raise ExtractionError(str(e)) from e


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0: unchanged), then restore the setting."""
    with needs("faces", "extract"):
        import torch

    before = torch.get_num_threads()
    if n > 0 and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def fill_gaps(valid: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """For each run of invalid frames of at most ``max_gap`` frames with valid frames on both
    sides, the index of the nearest valid frame to copy from (the earlier one on ties).

    Returns ``(targets, sources)`` as index arrays.
    """
    targets: list[int] = []
    sources: list[int] = []
    n = len(valid)
    i = 0
    while i < n:
        if valid[i]:
            i += 1
            continue
        j = i
        while j < n and not valid[j]:
            j += 1
        if i > 0 and j < n and j - i <= max_gap:
            for t in range(i, j):
                targets.append(t)
                sources.append(i - 1 if t - (i - 1) <= j - t else j)
        i = j
    return np.array(targets, dtype=int), np.array(sources, dtype=int)


@register
class FacesExtractor(StreamingExtractor):
    name = "faces"
    config_class = FacesConfig
    primary = "crops"
    row_unit = "frames"
    # 2: OpenCV, MKL and oneDNN pinned (pipeline/kernels.py): the same bytes on every CPU
    version = "2"

    @property
    def source_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        """``select: side`` reads the manifest's ``face_side`` (IEMOCAP), ``speaker`` the
        clip's sound (from its separate audio file when it has one): then it is an input of
        every clip's output (and of its cache key)."""
        if self.config.select == "side":
            return ("meta.face_side",)
        if self.config.select != "speaker":
            return ()
        return (AUDIO_FIELD, "meta.word_times") if self.config.speaker.follow_turns else (
            AUDIO_FIELD,
        )
    libraries = ("numpy", "torch", "facenet-pytorch", "av", "opencv-python")
    summed_attrs = ("n_frames", "n_detected", "n_filled")

    @classmethod
    def corpus_metrics(cls, sums: dict[str, float]) -> dict[str, Any]:
        n, found = sums.get("n_frames", 0), sums.get("n_detected", 0)
        return {
            "frames": int(n),
            "frames_with_face": int(found),
            "frames_filled": int(sums.get("n_filled", 0)),
            "face_rate": round(found / n, 4) if n else 0.0,
        }

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._buffers: list[np.ndarray] = []
        self._device: str | None = None
        self.mouth_meter: Any = None  # select: speaker: the lip pass (dlib's 68 points)
        self.syncnet: Any = None  # select: speaker, backend syncnet: the loaded SyncNet

    @property
    def device(self) -> str:
        """The device this extractor runs on ("cpu" or "cuda"): ``device: auto`` resolved on
        this machine; ``cuda`` is checked when the models load (:meth:`setup`), so that a
        machine without a GPU can plan a run for GPU workers."""
        if self._device is None:
            dev = self.config.device
            self._device = dev if dev == "cuda" else resolve_device(dev)
        return self._device

    @property
    def batch_in_use(self) -> int:
        """Frames handled together on this extractor's device."""
        cfg: FacesConfig = self.config
        return cfg.cuda_batch_size if self.device == "cuda" else cfg.batch_size

    def setup(self) -> None:
        from ..vision.mtcnn import FaceDetector

        cfg: FacesConfig = self.config
        resolve_device(self.device)  # cuda where CUDA cannot run: an error with the reason
        self.detector = FaceDetector(
            device=self.device,
            min_face_size=cfg.min_face_size,
            thresholds=tuple(cfg.thresholds),
            factor=cfg.factor,
            select=cfg.select,
            min_prob=cfg.min_prob,
        )
        if cfg.select == "speaker" and cfg.speaker.backend == "syncnet":
            from ..vision.sync_speaker import SyncNetScorer

            self.syncnet = SyncNetScorer(cfg.speaker, self.device)
        elif cfg.select == "speaker":
            self.mouth_meter = self._mouth_meter()

    def _mouth_meter(self) -> Any:
        """dlib's 68-point predictor for the lip pass, or an ExtractionError saying where to
        get its weights."""
        from ..vision.landmarkers import LandmarkModelError
        from ..vision.lip_motion import MouthMeter

        try:
            return MouthMeter(self.config.speaker.dlib_model)
        except LandmarkModelError as e:
            raise speaker_weights_error(e) from e

    def _take_buffer(self) -> np.ndarray | None:
        """A frame buffer a finished clip left (list.pop is atomic: threads never share one)."""
        try:
            return self._buffers.pop()
        except IndexError:
            return None

    def params(self) -> dict[str, Any]:
        """The parameters that define the output (thread counts only change the speed); the
        device as resolved, so that CPU and GPU outputs never share a cache entry."""
        from ..config import to_dict

        out = to_dict(self.config)
        for k in ("decode_threads", "torch_threads"):
            out.pop(k)
        if self.config.select != "speaker":  # read by the speaker choice alone
            out.pop("speaker")
        else:  # the backend's own settings only
            out["speaker"] = self.config.speaker.key_params()
        out["device"] = self.device
        return out

    def provenance(self) -> dict[str, Any]:
        from ..devices import device_provenance

        return {**super().provenance(), "device": device_provenance(self.device)}

    def model_token(self) -> str:
        """facenet-pytorch's version (its weights ship in the wheel); with ``select:
        speaker`` also the sha256 of the weights that score the tracks: dlib's 68-point
        predictor (lips backend) or SyncNet's (syncnet backend; a missing or wrong file
        raises :class:`~pipeline.vision.syncnet.SyncNetModelError`, which stops the stage)."""
        import importlib.metadata

        try:
            token = "facenet-pytorch-" + importlib.metadata.version("facenet-pytorch")
        except importlib.metadata.PackageNotFoundError:
            token = "facenet-pytorch"
        if self.config.select == "speaker" and self.config.speaker.backend == "syncnet":
            from ..vision.syncnet import syncnet_token  # SyncNetModelError: the stage stops

            return token + "+" + syncnet_token(
                self.config.speaker.syncnet_model, self.config.speaker.syncnet_sha256
            )
        if self.config.select == "speaker":
            from ..vision.landmarkers import LandmarkModelError, weights_token

            try:
                token += "+dlib-" + weights_token("dlib", self.config.speaker.dlib_model)
            except LandmarkModelError as e:
                raise speaker_weights_error(e) from e
        return token

    def track_settings(self) -> TrackSettings:
        """The tracker's settings on this extractor's device (its window: ``batch_in_use``)."""
        from ..vision.face_track import TrackSettings

        cfg: FacesConfig = self.config
        return TrackSettings(
            crop_size=cfg.crop_size,
            margin=cfg.margin,
            detect_max_side=cfg.detect_max_side,
            key_interval=cfg.key_interval,
            batch_size=self.batch_in_use,
            refine_rnet=cfg.refine_rnet,
            min_prob=cfg.min_prob,
            min_face=cfg.min_face,
            full_scan_every=cfg.full_scan_every,
            batch_mb=cfg.batch_mb,
        )

    def tracker(self) -> FaceTracker:
        """A tracker over this extractor's detector and settings, for one clip."""
        from ..vision.face_track import FaceTracker

        self.ensure_setup()
        return FaceTracker(
            self.detector, buffer=self._take_buffer(), settings=self.track_settings()
        )

    def extract_into(self, source: ClipSource, sink: ClipSink) -> dict[str, Any]:
        if not source.has_video:
            raise ExtractionError(f"{source.clip_id}: the media has no video track")
        self.ensure_setup()
        with torch_threads(self.config.torch_threads if self.device == "cpu" else 0):
            return self._extract(source, sink)

    def _extract(self, source: ClipSource, sink: ClipSink) -> dict[str, Any]:
        from ..vision.track_choice import TrackLog

        cfg: FacesConfig = self.config
        if cfg.select == "all":
            return self._extract_all(source, sink)
        tracker = self.tracker()
        self.last_tracker = tracker  # its step timings, for benchmarks
        block = _Block(cfg.batch_size, cfg.crop_size, cfg.margin)
        log: TrackLog | None = None
        written: list[int | None] = []  # the track each row was written from
        try:
            for ff in tracker.run(self._frames(source)):
                if log is None:
                    side = source.meta.get("face_side", "")
                    sync = self.syncnet.reader(source.start) if self.syncnet else None
                    log = TrackLog(tracker.frame_size, side, self.mouth_meter, sync)
                log.add(ff)
                tid = log.leader(cfg.select)
                face = ff.faces.get(tid) if tid is not None else None
                written.append(tid if face is not None else None)
                t0 = perf_counter()
                full = block.add(face, ff.time - source.start, ff.rgb, scale=ff.scale)
                tracker.seconds["crop"] += perf_counter() - t0
                if full:
                    block.flush(sink)
                del ff, face  # the frame's pixels: free before the next frame is converted
        except VideoDecodeError as e:
            raise ExtractionError(f"{source.clip_id}: {e}") from e
        block.flush(sink)
        if tracker.frames_buffer is not None:  # one window of frames, kept for the next clip
            self._buffers.append(tracker.frames_buffer)
        n = len(written)
        if n == 0 or log is None:
            raise ExtractionError(f"{source.clip_id}: the video holds no frames")
        energy = self._speech_energy(source, log)
        choice = log.choose(cfg.select, energy, cfg.speaker_min_corr, cfg.speaker)
        turns = self._turns(source, log, energy)
        times = np.asarray(log.times) - source.start
        kept = log.kept_faces(choice.track, turns, times)
        chosen = {i: face for i, (_, face) in kept.items()}
        track_at = {i: tid for i, (tid, _) in kept.items()}
        doubts = speaker_doubts(choice.note, turns, cfg.speaker_min_corr, cfg.speaker)
        if cfg.strict and doubts:
            raise ExtractionError(f"{source.clip_id}: " + "; ".join(doubts))
        self._rewrite(source, sink, written, track_at, chosen, block, tracker)
        n_detected = len(chosen)
        if n_detected == 0:
            raise ExtractionError(f"{source.clip_id}: no face found in any of the {n} frames")
        valid = np.zeros(n, bool)
        valid[list(chosen)] = True
        n_filled = 0
        if cfg.fill_gaps > 0:
            dst, src = fill_gaps(valid, cfg.fill_gaps)
            n_filled = len(dst)
            for lo in range(0, len(dst), 256):  # a few rows at a time: crops may be on disk
                d, s_ = dst[lo : lo + 256], src[lo : lo + 256]
                for name in ("crops", "boxes", "crop_boxes", "points"):
                    sink.put(name, d, sink.take(name, s_))
                sink.put("filled", d, np.ones(len(d), bool))
                sink.put("valid", d, np.ones(len(d), bool))
        rate = n_detected / n
        warnings = doubts if choice.verdict is not None else [choice.note] if choice.note else []
        if why := _rate_warning(cfg, tracker, rate, n, source.clip_id):
            warnings.append(why)
        others = {i for t in log.tracks for i in log.faces_of(t) if track_at.get(i) != t}
        return {
            **_frame_attrs(tracker),
            "n_frames": n,
            "n_detected": n_detected,
            "n_filled": n_filled,
            "face_rate": round(rate, 6),
            "n_tracks": len(log.tracks),
            "track": -1 if choice.track is None else int(choice.track),
            "select_used": choice.rule,
            "select_score": round(choice.score, 6),
            "select_runner_up": round(choice.runner_up, 6),
            "n_frames_other_faces_only": len(others - set(chosen)),
            "device": self.device,
            **({"warning": "; ".join(warnings)} if warnings else {}),
            **{f"n_{k}": int(v) for k, v in tracker.stats.items()},
            **(speaker_attrs(choice.verdict, turns, cfg.speaker) if choice.verdict is not None
               else {}),
        }

    def _extract_all(self, source: ClipSource, sink: ClipSink) -> dict[str, Any]:
        """``select: all``: a row per (frame, track) with a face, in time then track order,
        and one row with track -1 (valid 0) for a frame with no face."""
        cfg: FacesConfig = self.config
        tracker = self.tracker()
        self.last_tracker = tracker
        block = _Block(cfg.batch_size, cfg.crop_size, cfg.margin, with_track=True)
        n = n_found = 0
        try:
            for ff in tracker.run(self._frames(source)):
                n += 1
                n_found += bool(ff.faces)
                t0 = perf_counter()
                rows = sorted(ff.faces.items()) or [(-1, None)]
                for tid, face in rows:
                    if block.add(face, ff.time - source.start, ff.rgb, tid, ff.scale):
                        block.flush(sink)
                tracker.seconds["crop"] += perf_counter() - t0
                del ff, face  # the frame's pixels: free before the next frame is converted
        except VideoDecodeError as e:
            raise ExtractionError(f"{source.clip_id}: {e}") from e
        block.flush(sink)
        if tracker.frames_buffer is not None:
            self._buffers.append(tracker.frames_buffer)
        if n == 0:
            raise ExtractionError(f"{source.clip_id}: the video holds no frames")
        if n_found == 0:
            raise ExtractionError(f"{source.clip_id}: no face found in any of the {n} frames")
        rate = n_found / n
        warning = _rate_warning(cfg, tracker, rate, n, source.clip_id)
        return {
            **_frame_attrs(tracker),
            "n_frames": n,
            "n_detected": n_found,
            "n_filled": 0,
            "face_rate": round(rate, 6),
            "n_tracks": tracker.n_tracks,
            "track": -1,
            "select_used": "all",
            "device": self.device,
            **({"warning": warning} if warning else {}),
            **{f"n_{k}": int(v) for k, v in tracker.stats.items()},
        }

    def _frames(self, source: ClipSource) -> Iterator[tuple[float, Any]]:
        cfg: FacesConfig = self.config
        return iter_decoded(
            source.media_input(),
            fps=cfg.fps,
            start=source.start,
            end=source.end,
            threads=cfg.decode_threads,
        )

    def _speech_energy(self, source: ClipSource, log: Any) -> np.ndarray | None:
        """``speaker``: the sound's speech-band energy at the frame times (None: no audio)."""
        has_sound = source.has_audio or source.audio_path is not None
        if self.config.select != "speaker" or not has_sound:
            return None
        from ..media.audio import AudioDecodeError, decode_audio
        from ..vision.speaker import speech_energy

        try:
            audio = decode_audio(source.sound_input(), 16000, start=source.start, end=source.end)
        except AudioDecodeError:
            return None
        if self.syncnet is not None:  # the syncnet backend's sound: its audio embeddings
            return self.syncnet.sound(audio, 16000)
        times = np.asarray(log.times) - source.start
        return speech_energy(audio, 16000, times, self.config.speaker.band_hz)

    def _turns(self, source: ClipSource, log: Any, energy: np.ndarray | None) -> list[Any]:
        """``speaker.follow_turns``: a verdict per turn of the clip's word times ([] without
        them, or without sound)."""
        from ..text.alignment import WORD_TIMES_KEY, parse_word_times

        cfg: FacesConfig = self.config
        raw = source.meta.get(WORD_TIMES_KEY, "").strip()
        if cfg.select != "speaker" or not cfg.speaker.follow_turns or not raw or energy is None:
            return []
        try:
            words = parse_word_times(raw)
        except (ValueError, TypeError) as e:
            raise ExtractionError(f"{source.clip_id}: bad word alignment: {e}") from e
        times = np.asarray(log.times) - source.start
        return log.turn_verdicts(energy, words, times, cfg.speaker_min_corr, cfg.speaker)

    def _rewrite(
        self,
        source: ClipSource,
        sink: ClipSink,
        written: list[int | None],
        track_at: dict[int, int],
        chosen: dict[int, Face],
        block: _Block,
        tracker: FaceTracker,
    ) -> None:
        """Rewrite the rows that were streamed from another track than the chosen one (the
        leader changed while the clip streamed, or a turn has another speaker): cleared where
        no kept face is, cut again from a second decoding where one is. ``track_at``: frame
        -> the kept track, on the frames of ``chosen``."""
        n = len(written)
        clear = [i for i in range(n) if written[i] is not None and i not in chosen]
        redo = [i for i in sorted(chosen) if written[i] != track_at[i]]
        if clear:
            idx = np.array(clear)
            size = block.crop_size
            sink.put("crops", idx, np.zeros((len(idx), size, size, 3), np.uint8))
            for name, row in (("boxes", _NAN4), ("crop_boxes", _NAN4), ("points", _NAN52)):
                sink.put(name, idx, np.broadcast_to(row, (len(idx), *row.shape)).astype(np.float32))
            sink.put("probs", idx, np.zeros(len(idx), np.float32))
            sink.put("valid", idx, np.zeros(len(idx), bool))
        if not redo:
            return
        from ..media.video import to_rgb

        todo = set(redo)
        part = _Block(block.size, block.crop_size, block.margin)
        scale = tracker.work_scale  # cut from the same (working) copy as the first pass
        size = tracker.work_size if scale != 1 else None
        rows: list[int] = []

        def put() -> None:
            arrays = part.arrays()
            idx = np.array(rows)
            for name, values in arrays.items():
                sink.put(name, idx, values)
            sink.put("valid", idx, np.ones(len(idx), bool))
            part.rows.clear()
            part.tracks.clear()
            rows.clear()

        try:
            for i, (_, frame) in enumerate(self._frames(source)):
                if i in todo:
                    rows.append(i)
                    if part.add(chosen[i], 0.0, to_rgb(frame, size=size), scale=scale):
                        put()
                    todo.discard(i)
                    if not todo:
                        break
        except VideoDecodeError as e:
            raise ExtractionError(f"{source.clip_id}: second pass: {e}") from e
        if rows:
            put()
        if todo:
            raise ExtractionError(f"{source.clip_id}: second pass decoded fewer frames")


class _Block:
    """Up to ``size`` frames' rows, appended to the sink together."""

    def __init__(self, size: int, crop_size: int, margin: float, with_track: bool = False) -> None:
        """``with_track``: the rows carry a ``track`` array (``select: all``)."""
        self.size, self.crop_size, self.margin = size, crop_size, margin
        self.with_track = with_track
        self.crops = np.zeros((size, crop_size, crop_size, 3), np.uint8)
        self.rows: list[tuple[float, np.ndarray, np.ndarray, float, np.ndarray]] = []
        self.tracks: list[int] = []

    def add(
        self, face: Face | None, time: float, rgb: np.ndarray, track: int = -1, scale: float = 1
    ) -> bool:
        """Add one row (its crop cut from ``rgb``, ``scale`` times the source's size); True
        when the block is full."""
        from ..vision.boxes import crop_box, cut

        i = len(self.rows)
        if face is None:
            self.crops[i] = 0
            self.rows.append((time, _NAN4, _NAN4, 0.0, _NAN52))
        else:
            region = crop_box(face.box, self.margin)
            at = region
            if scale != 1:  # the same square on a smaller working copy of the frame
                at = np.round(region * scale)
                at[2:] = np.maximum(at[2:], at[:2] + 1)
            self.crops[i] = cut(rgb, at, self.crop_size)
            self.rows.append((time, face.box, region, face.prob, face.points))
        self.tracks.append(track)
        return len(self.rows) == len(self.crops)

    def arrays(self) -> dict[str, np.ndarray]:
        n = len(self.rows)
        out = {
            "crops": self.crops[:n].copy(),
            "boxes": np.array([r[1] for r in self.rows], np.float32),
            "crop_boxes": np.array([r[2] for r in self.rows], np.float32),
            "probs": np.array([r[3] for r in self.rows], np.float32),
            "points": np.array([r[4] for r in self.rows], np.float32),
        }
        if self.with_track:
            out["track"] = np.array(self.tracks, np.int32)
        return out

    def flush(self, sink: ClipSink) -> None:
        if not self.rows:
            return
        arrays = self.arrays()
        sink.append(
            {**arrays, "filled": np.zeros(len(self.rows), bool)},
            np.array([r[0] for r in self.rows], np.float64),
            np.isfinite(arrays["boxes"]).all(axis=1),
        )
        self.rows.clear()
        self.tracks.clear()


_NAN4 = np.full(4, np.nan)
_NAN52 = np.full((5, 2), np.nan)


def _rate_warning(cfg: FacesConfig, tracker: Any, rate: float, n: int, clip_id: str) -> str:
    """The clip's face-rate warning ("" when the rate meets ``min_face_rate``); a failure
    instead when ``strict``."""
    if rate >= cfg.min_face_rate:
        return ""
    why = (
        f"a face in {rate:.1%} of the {n} frames, under faces.min_face_rate "
        f"{cfg.min_face_rate:g} (faces smaller than {tracker.smallest_face:.0f} px "
        f"are not looked for)"
    )
    if cfg.strict:
        raise ExtractionError(f"{clip_id}: {why}")
    return why


def _frame_attrs(tracker: Any) -> dict[str, Any]:
    """How the clip's frames were looked at: the attributes every faces clip stores."""
    w, h = tracker.frame_size
    return {
        "frame_width": int(w),
        "frame_height": int(h),
        "detect_scale": round(tracker.detect_scale, 6),
        "smallest_face_px": round(tracker.smallest_face, 2),
        "key_interval_used": tracker.key_interval,
        "window_frames": tracker.window_frames,
        "work_scale": round(tracker.work_scale, 6),
    }
