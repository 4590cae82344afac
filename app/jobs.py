"""Fine-tuning jobs: one at a time, on a background thread, with progress, cancel and a saved model at the end.

The UI never waits on a job: ``/train`` starts one (or answers "busy" at once) and then only reads ``status()``,
so prediction keeps working while a model trains. Uploaded files are copied into a per-job temporary directory under
generated names and deleted when the job ends.
"""

from __future__ import annotations

import gc
import logging
import math
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import hpt_core.finetune as finetuning  # called through the module, so tests can replace finetune()
from app.config import AppConfig
from app.registry import ModelRegistry
from hpt_core.errors import ConfigError, HPTError
from hpt_core.model import HPTConfig
from hpt_core.training import TrainConfig

__all__ = [
    "JobRequest",
    "JobState",
    "JobManager",
    "BusyError",
    "VARIANT_CHOICES",
    "estimate_seconds",
    "job_configs",
    "run_config",
]

log = logging.getLogger(__name__)

VARIANT_CHOICES = {
    "HPT (hierarchy-aware prompt, the paper's method)": "hpt",
    "Vanilla fine-tune ([CLS] + linear layer, baseline)": "finetune",
    "Hard prompt (fixed label words, baseline)": "hard",
    "Soft prompt (learned label words, no hierarchy, baseline)": "soft",
}
_SLOWER_THAN_MINILM = {"bert-base-uncased": 6.0}  # step time relative to MiniLM-L6 on CPU (docs/backbones.md)
_TERMINAL = ("finished", "cancelled", "failed")


class BusyError(HPTError):
    """A fine-tune job is already running."""


@dataclass
class JobRequest:
    """What the fine-tune panel sends: the data and the two configs of the run (``AppConfig.train``/``.model``
    with the panel's values); ``data_file`` is read where it lies and copied before training."""

    data_file: Path
    source_name: str  # the upload's own file name, shown in messages
    train: TrainConfig
    model: HPTConfig
    hierarchy_file: Path | None = None
    adapt_steps: int = 0  # > 0: first adapt the backbone to the training texts (masked LM, this many steps)


def job_configs(config: AppConfig, variant: str = "hpt", **settings: Any) -> tuple[TrainConfig, HPTConfig]:
    """The two configs of a job: the app's defaults (``config.train``, ``config.model``) with ``settings`` by field
    name (``epochs=3, lr=1e-3, backbone=..., max_length=...``), and the method ``variant`` (``VARIANT_CHOICES``).
    Each value is checked once, by its dataclass (``ConfigError``)."""
    train_fields = {f.name for f in fields(config.train)}
    model_fields = {f.name for f in fields(config.model)}
    unknown = sorted(set(settings) - train_fields - model_fields)
    if unknown:
        raise ConfigError(f"Unknown setting(s) {unknown}; use TrainConfig or HPTConfig field names.")
    train = replace(config.train, **{k: v for k, v in settings.items() if k in train_fields})
    model = HPTConfig.for_variant(
        variant, base=config.model, **{k: v for k, v in settings.items() if k in model_fields}
    )
    return train, model


def run_config(train: TrainConfig) -> TrainConfig:
    """The ``TrainConfig`` a job runs with: the app trains for the epochs asked, so early stopping is off
    (``patience = epochs``); the best dev state is still the one kept."""
    return replace(train, patience=train.epochs)


@dataclass
class JobState:
    """A snapshot of the current (or last) job; ``to_dict`` is what ``/job_status`` returns."""

    id: str = ""
    state: str = "idle"  # idle | starting | running | finished | cancelled | failed
    message: str = "No fine-tune job has run yet."
    phase: str = ""  # "adapting the backbone" | "training"
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    epochs: int = 0
    elapsed_seconds: float = 0.0
    eta_seconds: float | None = None
    device: str = ""
    model_name: str | None = None
    data_summary: str = ""
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    adapt: dict[str, Any] = field(default_factory=dict)  # masked-LM adaptation summary, when asked for
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.state in ("starting", "running")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["running"] = self.running
        return out


def estimate_seconds(
    n_train: int, epochs: int, batch_size: int, max_length: int, backbone: str, config: AppConfig
) -> float:
    """Rough CPU time of a job: steps × the measured MiniLM step time, scaled by batch, length and backbone."""
    steps = math.ceil(n_train / batch_size) * epochs
    per_step = config.seconds_per_step_cpu * (batch_size / 16) * (max_length / 128)
    return steps * per_step * _SLOWER_THAN_MINILM.get(backbone, 1.0)


def _gpu_wrapper() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``spaces.GPU`` on Hugging Face Spaces (requests a GPU for the call), a no-op elsewhere."""
    try:
        import spaces  # type: ignore[import-not-found]

        return spaces.GPU(duration=900)
    except Exception:  # noqa: BLE001 - the package is absent or not on Spaces: plain call
        return lambda fn: fn


def _safe_stem(name: str) -> str:
    stem = Path(name).name
    for suffix in (".gz", ".jsonl", ".json", ".csv", ".tsv", ".txt"):
        stem = stem.removesuffix(suffix)
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40] or "data"


def _suffix(name: str) -> str:
    """The data format suffix of an upload (``.jsonl``, ``.csv.gz``...), from its own name."""
    lower = Path(name).name.lower()
    gz = ".gz" if lower.endswith(".gz") else ""
    base = lower.removesuffix(".gz")
    for ext in (".jsonl", ".json", ".csv", ".tsv", ".txt", ".taxnomy", ".taxonomy"):
        if base.endswith(ext):
            return ext + gz
    return Path(base).suffix + gz


class JobManager:
    """Runs at most one fine-tune job at a time; ``start`` raises ``BusyError`` while one runs."""

    def __init__(self, registry: ModelRegistry, config: AppConfig) -> None:
        self.registry = registry
        self.config = config
        self._lock = threading.Lock()
        self._state = JobState()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._run = _gpu_wrapper()(self._train)

    def status(self) -> JobState:
        """A copy of the current job's state."""
        with self._lock:
            state = JobState(**{k: getattr(self._state, k) for k in self._state.__dataclass_fields__})
            state.steps, state.losses = list(state.steps), list(state.losses)
            state.evals = [dict(e) for e in state.evals]
            return state

    def start(self, request: JobRequest) -> JobState:
        """Start ``request`` on a background thread; ``BusyError`` at once if a job is running."""
        with self._lock:
            if self._state.running:
                raise BusyError(
                    f"A fine-tune job is already running ({self._state.message}); try again when it finishes, "
                    "or cancel it first."
                )
            job_id = datetime.now().strftime("%Y%m%d-%H%M%S")
            self._state = JobState(
                id=job_id, state="starting", message="Preparing the data…", epochs=request.train.epochs
            )
            self._cancel = threading.Event()
        workdir = Path(tempfile.mkdtemp(prefix="hpt-job-"))
        try:
            data = workdir / ("data" + _suffix(request.source_name))
            shutil.copyfile(request.data_file, data)
            hierarchy = None
            if request.hierarchy_file is not None:
                hierarchy = workdir / ("hierarchy" + _suffix(str(request.hierarchy_file)))
                shutil.copyfile(request.hierarchy_file, hierarchy)
        except OSError as e:
            shutil.rmtree(workdir, ignore_errors=True)
            self._finish("failed", f"Could not read the uploaded file: {e}.", error=str(e))
            raise HPTError(f"Could not read the uploaded file {request.source_name!r}: {e}.") from e
        thread = threading.Thread(
            target=self._worker,
            args=(request, data, hierarchy, workdir, job_id),
            name=f"finetune-{job_id}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        return self.status()

    def cancel(self) -> JobState:
        """Ask the running job to stop after its current step (nothing is saved); a no-op when idle."""
        with self._lock:
            if self._state.running:
                self._cancel.set()
                self._state.message = "Cancelling after the current step…"
        return self.status()

    def wait(self, timeout: float | None = None) -> JobState:
        """Block until the current job ends (tests and scripts; the UI polls ``status``)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status()

    # ------------------------------------------------------------------ the worker
    def _update(self, **values: Any) -> None:
        with self._lock:
            for key, value in values.items():
                setattr(self._state, key, value)

    def _finish(self, state: str, message: str, **values: Any) -> None:
        self._update(state=state, message=message, eta_seconds=None, **values)

    def _worker(self, request: JobRequest, data: Path, hierarchy: Path | None, workdir: Path, job_id: str) -> None:
        try:
            self._run(request, data, hierarchy, job_id, workdir)
        except HPTError as e:  # name the upload, never the job's temporary copy
            message = str(e).replace(str(data), request.source_name).replace(str(workdir), "(job folder)")
            self._finish("failed", message, error=message)
        except MemoryError:
            self._finish("failed", "Out of memory: lower the batch size or the maximum length.", error="MemoryError")
        except Exception as e:  # noqa: BLE001 - a job must never take the server down
            log.exception("fine-tune job %s failed", job_id)
            text = str(e)
            if "out of memory" in text.lower():
                message = "Out of memory: lower the batch size or the maximum length and try again."
            else:
                message = f"The job failed unexpectedly ({type(e).__name__}); the server log has the details."
            self._finish("failed", message, error=f"{type(e).__name__}: {text}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            gc.collect()

    def _adapt(self, request: JobRequest, texts: list[str], out: Path) -> bool:
        """Continued masked LM on the training texts; False when cancelled (then nothing is trained or saved)."""
        steps = request.adapt_steps

        def progress(event: Any) -> None:
            with self._lock:
                s = self._state
                s.state, s.phase, s.step, s.total_steps = (
                    "running",
                    "adapting the backbone",
                    event.step,
                    event.total_steps,
                )
                s.elapsed_seconds = event.elapsed_seconds
                if event.phase == "train":
                    s.eta_seconds = event.elapsed_seconds / max(event.step, 1) * (event.total_steps - event.step)
                    if not self._cancel.is_set():
                        s.message = f"Adapting the backbone to your texts (masked LM): step {event.step}/{steps}"
                elif event.message:
                    s.message = f"Adapting the backbone: {event.message}"

        self._update(phase="adapting the backbone", message=f"Adapting {request.model.backbone} to your texts…")
        result = finetuning.adapt_backbone(
            request.model.backbone,
            texts,
            out,
            steps=steps,
            batch_size=request.train.batch_size,
            max_length=request.model.max_length,
            seed=request.train.seed,
            callback=progress,
            cancel=self._cancel,
        )
        if result.cancelled:
            self._finish(
                "cancelled", f"Cancelled while adapting the backbone (step {result.steps}); nothing was saved."
            )
            return False
        self._update(
            adapt={
                "steps": result.steps,
                "seconds": result.seconds,
                "masked_top1_before": result.masked_top1_before,
                "masked_top1_after": result.masked_top1_after,
            }
        )
        return True

    def _train(self, request: JobRequest, data: Path, hierarchy: Path | None, job_id: str, workdir: Path) -> None:
        seed = request.train.seed  # also the split's seed
        splits = finetuning.prepare_splits(
            data, hierarchy_file=hierarchy, split_seed=seed, source_name=request.source_name
        )
        n_labels = splits.train.hierarchy.num_labels
        if n_labels > self.config.max_labels:
            raise HPTError(
                f"{request.source_name}: {n_labels} labels is over this app's limit of {self.config.max_labels}."
            )
        self._update(data_summary=splits.summary(), message="Loading the backbone…")
        model_config, label = request.model, None
        if request.adapt_steps > 0:
            adapted = workdir / "adapted-backbone"
            if not self._adapt(request, [d.text for d in splits.train.documents], adapted):
                return
            model_config = replace(request.model, backbone=str(adapted))
            label = f"{request.model.backbone} + {request.adapt_steps} masked-LM steps on the data"
        train_config = run_config(request.train)
        epochs = train_config.epochs
        name = f"{_safe_stem(request.source_name)}-{_safe_stem(request.model.variant_name)}-{job_id}"
        if (self.config.user_dir / name).exists():  # two jobs within one second
            name += f"-{len(list(self.config.user_dir.iterdir()))}"

        def progress(event: Any) -> None:
            with self._lock:
                s = self._state
                s.state, s.phase, s.step, s.total_steps = "running", "training", event.step, event.total_steps
                s.epoch = event.epoch
                s.elapsed_seconds = event.elapsed_seconds
                if event.phase == "train" and event.loss is not None:
                    s.steps.append(event.step)
                    s.losses.append(event.loss)
                    rate = event.elapsed_seconds / max(event.step, 1)
                    s.eta_seconds = rate * (event.total_steps - event.step)
                    if not self._cancel.is_set():
                        s.message = f"Training: step {event.step}/{event.total_steps}, epoch {event.epoch}/{epochs}"
                elif event.phase == "eval":
                    s.evals.append(
                        {
                            "step": event.step,
                            "epoch": event.epoch,
                            "dev_macro_f1": event.dev_macro_f1,
                            "dev_micro_f1": event.dev_micro_f1,
                        }
                    )

        provenance = {
            "data": request.source_name,
            "hierarchy": Path(str(request.hierarchy_file)).name if request.hierarchy_file else None,
            "split_seed": seed,
            "trained_in": "HPT Studio fine-tune panel",
            "backbone": request.model.backbone,
            "adapt_steps": request.adapt_steps,
        }
        result = finetuning.finetune(
            splits,
            model_config,
            train_config,
            self.config.user_dir / name,
            provenance=provenance,
            callback=progress,
            cancel=self._cancel,
            save_test_split=True,
            description=f"Fine-tuned in the HPT Studio app on {request.source_name}.",
            backbone_label=label,
        )
        if result.run.cancelled:
            self._finish(
                "cancelled", f"Cancelled at step {result.run.steps}; nothing was saved.", metrics=result.metrics
            )
            return
        self.registry.prune()
        test = result.metrics.get("test") or result.metrics.get("dev") or {}
        scores = ""
        if test:
            scores = f" Test micro-F1 {100 * test['micro_f1']:.1f} %, macro-F1 {100 * test['macro_f1']:.1f} %."
        self._finish(
            "finished",
            f"Finished in {result.run.seconds:.0f} s on {result.run.device}: saved as {name!r}.{scores}",
            model_name=name,
            metrics=result.metrics,
            device=result.run.device,
            step=result.run.steps,
            elapsed_seconds=result.run.seconds,
        )
