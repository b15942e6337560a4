"""Live progress of a long run, in one line on stderr: clips and frames across the workers of
an extraction, epochs across the runs of training. Off with ``-q``, ``--json`` or a stage's
``--quiet`` (:func:`configure`).

How it works:

1. Extraction: the runner opens an :class:`ExtractionProgress` over the clips it sends to
   workers. Its :attr:`~ExtractionProgress.channel` goes to each worker with its batch: a
   ``multiprocessing.Manager`` queue for worker processes (one small server process, on this
   host only), a plain queue for threads or the runner's own process, None for a remote
   cluster (then clips count as their batches come back).
2. In a worker, :func:`clip_reporter` makes one clip's :class:`ClipReporter` (the thread's
   current one until :meth:`~ClipReporter.done`). Two hooks feed it: the video decoder calls
   :func:`frame_read` with each frame it hands to the extractor (the clip's position, frame
   by frame), and the clip's sink calls :meth:`~ClipReporter.rows` with the timestamps of
   every block of rows the extractor appends (rows done: faces and landmarks append a block
   per batch of frames, so the position runs at most one batch ahead of the rows). The
   reporter sends the position and the rows so far at most every :data:`WORKER_SECONDS`, and
   a last message when the clip is finished. Sending never fails a clip: a channel that
   cannot be reached is dropped.
3. A thread in the parent drains the channel and redraws the line: share of media seconds
   done (finished clips plus the position of clips in flight), clips done, rows (frames) and
   their rate, elapsed time and ETA (the time so far, scaled by the share left). On a
   terminal the line is redrawn in place every 0.5 s; elsewhere (a log file, a pipe) each
   redraw is a new line, every second.
4. Training: the trainer opens a :class:`TrainingProgress` over its runs (method x fold x
   seed); the epoch loop calls :func:`epoch_done` after every epoch. The line names the run,
   its epoch, the share done (each run counted as its epochs over ``max_epochs``) and an ETA
   that is an upper bound, since early stopping can end a run sooner.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

WORKER_SECONDS = 0.25  # a worker sends a clip's position at most this often
# Seconds between redraws: in place on a terminal, a new line each time elsewhere (logs).
TTY_SECONDS, LOG_SECONDS = 0.5, 1.0
_settings: dict[str, Any] = {"enabled": True, "interval": None, "stream": None}
_active_training: list[TrainingProgress] = []


def configure(
    enabled: bool | None = None, interval: float | None = None, stream: TextIO | None = None
) -> None:
    """Turn live progress on or off for this process, set how often the line is redrawn
    (seconds; default :data:`TTY_SECONDS` on a terminal, :data:`LOG_SECONDS` elsewhere) and
    where it goes (default: ``sys.stderr`` at the time of drawing)."""
    if enabled is not None:
        _settings["enabled"] = bool(enabled)
    if interval is not None:
        if interval <= 0:
            raise ValueError(f"progress interval must be > 0 seconds, got {interval}")
        _settings["interval"] = float(interval)
    if stream is not None:
        _settings["stream"] = stream


def enabled() -> bool:
    return bool(_settings["enabled"])


def _stream() -> TextIO:
    return _settings["stream"] or sys.stderr


def clock(seconds: float) -> str:
    """``h:mm:ss`` or ``m:ss``."""
    if not np.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _ClearLine(logging.Filter):
    """Before a log record goes to the terminal the progress line is drawn on, blank that
    line, so the record starts at the left edge (the next redraw puts the line back)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def filter(self, record: logging.LogRecord) -> bool:
        with contextlib.suppress(Exception):
            self.stream.write("\r\x1b[K")
        return True


class Display:
    """One line, redrawn every ``interval`` seconds by a thread until :meth:`close`."""

    def __init__(self, render: Callable[[], str], interval: float | None = None) -> None:
        self.render = render
        self.stream = _stream()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval or _settings["interval"] or (
            TTY_SECONDS if self.tty else LOG_SECONDS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mer-progress", daemon=True)
        self._filters: list[tuple[logging.Handler, logging.Filter]] = []
        self._lock = threading.Lock()

    def start(self) -> Display:
        if self.tty:  # log records interleave with the line: clear it first
            for h in logging.getLogger().handlers:
                if getattr(h, "stream", None) is self.stream:
                    f = _ClearLine(self.stream)
                    h.addFilter(f)
                    self._filters.append((h, f))
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.draw()

    def draw(self, final: bool = False) -> None:
        with self._lock:
            try:
                line = self.render()
            except Exception as e:  # noqa: BLE001 - progress must never stop the work
                line = f"(progress unavailable: {e})"
            with contextlib.suppress(Exception):
                if self.tty:
                    self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
                else:
                    self.stream.write(line + "\n")
                self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.draw(final=True)
        for h, f in self._filters:
            h.removeFilter(f)


# -- extraction ---------------------------------------------------------------------------
class Channel:
    """A picklable handle on the parent's queue. A worker that cannot reach the queue when the
    handle arrives (another host, a process without the parent's key) gets a handle that
    sends nothing, so the display can never fail a clip."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def __getstate__(self) -> dict[str, Any]:
        import pickle

        return {"blob": pickle.dumps(self.queue)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        import pickle

        try:
            self.queue = pickle.loads(state["blob"])  # a Manager proxy connects here
        except Exception:  # noqa: BLE001 - no progress from this worker, nothing worse
            self.queue = None

    def put(self, item: Any) -> None:
        if self.queue is not None:
            self.queue.put(item)

    def get_nowait(self) -> Any:
        if self.queue is None:
            raise queue.Empty
        return self.queue.get_nowait()


@dataclass
class _Clip:
    seconds: float  # the clip's media seconds (its share of the whole)
    position: float = 0.0  # seconds done
    rows: int = 0
    done: bool = False


class ExtractionProgress:
    """The parent's view of one extraction stage (see the module docstring, steps 1 and 3).

    ``clips``: (clip id, media seconds) of every clip sent to workers; ``unit``: what one row
    of the feature is (frames, segments, ...); ``channel_kind``: ``process`` (a Manager queue),
    ``local`` (a plain queue) or ``none``.
    """

    def __init__(
        self,
        feature: str,
        clips: Sequence[tuple[str, float]],
        unit: str = "rows",
        channel_kind: str = "process",
        show: bool = True,
    ) -> None:
        self.feature = feature
        self.unit = unit
        self.clips = {cid: _Clip(max(0.0, float(s))) for cid, s in clips}
        self.total_seconds = sum(c.seconds for c in self.clips.values())
        self.show = show and enabled() and bool(self.clips)
        self.channel: Any = None
        self._kind = channel_kind if self.show else "none"
        self._manager: Any = None
        self._display: Display | None = None
        self._t0 = time.perf_counter()
        self._lock = threading.Lock()

    def __enter__(self) -> ExtractionProgress:
        if self._kind == "process":
            import multiprocessing

            self._manager = multiprocessing.Manager()
            self.channel = Channel(self._manager.Queue())
        elif self._kind == "local":
            self.channel = Channel(queue.Queue())
        self._t0 = time.perf_counter()
        if self.show:
            self._display = Display(self.line).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._display is not None:
            self._display.close()
        if self._manager is not None:
            with contextlib.suppress(Exception):
                self._manager.shutdown()
        self.channel = None

    def finished(self, clip_ids: Sequence[str]) -> None:
        """Clips whose outcome came back (with their batch, or lost to a dead worker)."""
        with self._lock:
            for cid in clip_ids:
                c = self.clips.get(cid)
                if c is not None:
                    c.done = True

    def _drain(self) -> None:
        if self.channel is None:
            return
        while True:
            try:
                cid, position, rows, done = self.channel.get_nowait()
            except queue.Empty:
                return
            except Exception:  # noqa: BLE001 - a closed manager: nothing more will come
                return
            c = self.clips.get(cid)
            if c is None:
                continue
            c.position = max(c.position, min(float(position), c.seconds or float(position)))
            c.rows = max(c.rows, int(rows))
            c.done = c.done or bool(done)

    def state(self) -> dict[str, float]:
        """What the line shows, as numbers: clips done, rows, media seconds done, fraction,
        elapsed, rate (media seconds per second) and ETA (seconds; inf when unknown)."""
        with self._lock:
            self._drain()
            n_done = sum(c.done for c in self.clips.values())
            rows = sum(c.rows for c in self.clips.values())
            media = sum(c.seconds if c.done else c.position for c in self.clips.values())
        elapsed = time.perf_counter() - self._t0
        if self.total_seconds > 0:
            fraction = media / self.total_seconds
        else:
            fraction = n_done / len(self.clips) if self.clips else 1.0
        fraction = min(fraction, 1.0)
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("inf")
        return {
            "clips_done": n_done,
            "clips": len(self.clips),
            "rows": rows,
            "media_done": media,
            "fraction": fraction,
            "elapsed": elapsed,
            "eta": 0.0 if n_done == len(self.clips) else eta,
        }

    def line(self) -> str:
        s = self.state()
        el = max(s["elapsed"], 1e-9)
        parts = [
            f"{self.feature}: {100 * s['fraction']:3.0f}%",
            f"{s['clips_done']}/{s['clips']} clips",
        ]
        if s["rows"]:
            parts.append(f"{s['rows']:,} {self.unit} ({s['rows'] / el:.1f}/s)")
        if self.total_seconds > 0:
            parts.append(f"{s['media_done']:.0f}/{self.total_seconds:.0f} s of media")
        parts.append(f"{clock(s['elapsed'])} elapsed, ETA {clock(s['eta'])}")
        return " | ".join(parts)


_current = threading.local()  # the clip reporter of this worker thread, if any


class ClipReporter:
    """In a worker: sends one clip's progress to the parent (module docstring, step 2)."""

    def __init__(self, channel: Any, clip_id: str) -> None:
        self.channel = channel
        self.clip_id = clip_id
        self.position = 0.0
        self.n_rows = 0
        self._last = 0.0

    def rows(self, timestamps: np.ndarray) -> None:
        """A block of rows was appended (the sink's callback)."""
        t = np.asarray(timestamps, dtype=np.float64)
        self.n_rows += len(t)
        finite = t[np.isfinite(t)]
        self.frame(float(finite.max()) if len(finite) else self.position)

    def frame(self, seconds: float) -> None:
        """The clip's position: the extractor has taken in its media up to ``seconds``."""
        if seconds > self.position:
            self.position = seconds
        now = time.monotonic()
        if now - self._last >= WORKER_SECONDS:
            self._send(False)
            self._last = now

    def done(self) -> None:
        self._send(True)
        if getattr(_current, "reporter", None) is self:
            _current.reporter = None

    def _send(self, done: bool) -> None:
        if self.channel is None:
            return
        try:
            self.channel.put((self.clip_id, self.position, self.n_rows, done))
        except Exception:  # noqa: BLE001 - the parent's display is not worth a clip
            self.channel = None


def clip_reporter(channel: Any, clip_id: str) -> ClipReporter | None:
    """A reporter for ``clip_id`` over ``channel``, the thread's current one until its
    :meth:`~ClipReporter.done` (None when progress is off)."""
    report = ClipReporter(channel, clip_id) if channel is not None else None
    _current.reporter = report
    return report


def frame_read(seconds: float) -> None:
    """The decoder's hook: a frame at ``seconds`` into the clip goes to the extractor."""
    report = getattr(_current, "reporter", None)
    if report is not None:
        report.frame(seconds)


# -- training -----------------------------------------------------------------------------
class TrainingProgress:
    """The trainer's runs (one per fit: a method on a fold with a seed); see step 4.
    ``n_runs`` may be given later (:meth:`expect`); :meth:`begin` and :meth:`end` bracket
    each run."""

    def __init__(self, what: str, n_runs: int = 0, show: bool = True) -> None:
        self.what = what
        self.n_runs = int(n_runs)
        self.show = show and enabled()
        self.runs_done = 0
        self.label = ""
        self.epoch = 0
        self.max_epochs = 0
        self._t0 = time.perf_counter()
        self._display: Display | None = None

    def __enter__(self) -> TrainingProgress:
        self._t0 = time.perf_counter()
        _active_training.append(self)
        if self.show:
            self._display = Display(self.line).start()
        return self

    def __exit__(self, *exc: object) -> None:
        _active_training.remove(self)
        if self._display is not None:
            self._display.close()

    def expect(self, n_runs: int) -> None:
        self.n_runs = int(n_runs)

    def begin(self, label: str) -> None:
        """A run starts (``label``: e.g. "probe fold 2 seed 1")."""
        self.label, self.epoch, self.max_epochs = label, 0, 0

    def end(self) -> None:
        """The run that began last is done."""
        self.runs_done += 1
        self.epoch = self.max_epochs = 0

    def fraction(self) -> float:
        if self.n_runs <= 0:
            return 0.0
        inside = self.epoch / self.max_epochs if self.max_epochs else 0.0
        return min(1.0, (self.runs_done + inside) / self.n_runs)

    def line(self) -> str:
        f = self.fraction()
        elapsed = time.perf_counter() - self._t0
        eta = elapsed * (1 - f) / f if f > 0 else float("inf")
        total = str(self.n_runs) if self.n_runs > 0 else "?"
        current = min(self.runs_done + 1, max(self.n_runs, 1))
        epoch = f" | epoch {self.epoch}/{self.max_epochs}" if self.max_epochs else ""
        return (
            f"{self.what}: run {current}/{total} {self.label}{epoch} | "
            f"{100 * f:3.0f}% | {clock(elapsed)} elapsed, ETA <={clock(eta)}"
        )


def epoch_done(epoch: int, max_epochs: int) -> None:
    """Called by the epoch loop after ``epoch`` of ``max_epochs`` epochs (1-based)."""
    if _active_training:
        p = _active_training[-1]
        p.epoch, p.max_epochs = epoch, max_epochs
