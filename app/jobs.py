"""Fine-tuning jobs: one at a time, on a background thread, with progress, cancel and a saved model at the end.

The UI never waits on a job: ``/train`` starts one (or answers "busy" at once) and then only reads ``status()``,
so prediction keeps working while a model trains. Uploaded files are copied into a per-job temporary directory under
generated names and deleted when the job ends.

A job stops early when the dev macro-F1 stops improving (``run_config``: at least 8 evaluations per job, patience
counted in evaluations), then fits the frozen-embedding baseline on the same splits (``hpt_core.sentence_baseline``)
for the side-by-side "duel". Its time is estimated from costs measured on this machine, and while it runs its ETA
comes from its own measured rates (``app.timing``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import hpt_core.finetune as finetuning  # called through the module, so tests can replace finetune()
from hpt_core.errors import ConfigError, HPTError
from hpt_core.model import HPTConfig
from hpt_core.training import EarlyStopper, TrainConfig

from .config import AppConfig
from .registry import ModelRegistry
from .timing import (
    BASELINE_PHASE,
    JobPlan,
    StepCosts,
    cached_costs,
    data_key,
    estimate_job,
    fallback_costs,
    format_duration,
    job_plan,
    record_baseline_rate,
    remaining_seconds,
    run_config,
)

__all__ = [
    "JobRequest",
    "JobState",
    "JobManager",
    "BusyError",
    "VARIANT_CHOICES",
    "job_configs",
    "stop_sentence",
]

log = logging.getLogger(__name__)
JOB_NICE = 10  # a fine-tune job's CPU priority (Linux nice): the Classify requests served beside it come first


def lower_thread_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority to ``nice`` (Linux only; elsewhere a no-op). The threads it starts
    afterwards, torch's own among them, inherit it; the rest of the process keeps its priority."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


VARIANT_CHOICES = {
    "HPT (hierarchy-aware prompt, the paper's method)": "hpt",
    "Vanilla fine-tune ([CLS] + linear layer, baseline)": "finetune",
    "Hard prompt (fixed label words, baseline)": "hard",
    "Soft prompt (learned label words, no hierarchy, baseline)": "soft",
}
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
    label_names_file: Path | None = None  # display names (TSV or JSON, hpt_core.label_names), saved in the model
    label_names_name: str | None = None  # the label-names upload's own file name, shown in messages


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


def stop_sentence(run: Any, train: TrainConfig) -> str:
    """Why and when a run stopped before its last epoch (empty when it did not): "Stopped early at epoch 3 of 8:
    no dev macro-F1 gain in 2 evaluations; kept the best, step 40 (dev macro-F1 31.2 %)."."""
    if not run.stopped_early or not run.history:
        return ""
    best = next((h for h in run.history if h["step"] == run.best_step), None)
    score = f" (dev macro-F1 {100 * best['dev_macro_f1']:.1f} %)" if best and "dev_macro_f1" in best else ""
    gain = "dev macro- or micro-F1 gain" if train.early_stopping == "macro_or_micro" else "dev macro-F1 gain"
    n = train.patience
    return (
        f"Stopped early at epoch {run.history[-1]['epoch']} of {train.epochs}: no {gain} in {n} "
        f"evaluation{'s' if n != 1 else ''}; kept the best, step {run.best_step}{score}."
    )


@dataclass
class JobState:
    """A snapshot of the current (or last) job; ``to_dict`` is what ``/job_status`` returns."""

    id: str = ""
    state: str = "idle"  # idle | starting | running | finished | cancelled | failed
    message: str = "No fine-tune job has run yet."
    phase: str = ""  # "preparing the data" or one of PHASES
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    epochs: int = 0
    elapsed_seconds: float = 0.0  # the whole job's wall-clock time so far
    eta_seconds: float | None = None  # time left at this job's measured rates (None when it is not running)
    estimate: dict[str, Any] = field(default_factory=dict)  # JobEstimate.to_dict() made when the job started
    device: str = ""
    model_name: str | None = None
    data_summary: str = ""
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    adapt: dict[str, Any] = field(default_factory=dict)  # masked-LM adaptation summary, when asked for
    stopped_early: bool = False
    stop_reason: str = ""  # stop_sentence() of the run, when it stopped early
    best_step: int | None = None  # the step whose state was kept (best dev macro-F1)
    baseline: dict[str, Any] = field(default_factory=dict)  # the frozen-embedding baseline's to_dict() (the duel)
    baseline_error: str | None = None  # why the baseline is missing, when it failed or was skipped
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.state in ("starting", "running")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["running"] = self.running
        return out


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


class _Clock:
    """A running job's measured rates and the time left they give, anchored at its last progress event (so the ETA
    keeps counting down between events, e.g. while the model is saved)."""

    def __init__(self, plan: JobPlan, costs: StepCosts) -> None:
        self.plan, self.costs = plan, costs
        self.phase = "preparing the data"
        self.step = self.evaluations = 0
        self.eval_seconds = self.last_step_at = 0.0  # on the phase's own clock (TrainProgress.elapsed_seconds)
        self._anchor()

    def enter(self, phase: str) -> None:
        self.phase, self.step, self.evaluations, self.eval_seconds, self.last_step_at = phase, 0, 0, 0.0, 0.0
        self._anchor()

    def on_step(self, step: int, elapsed: float) -> None:
        """A training (or adaptation) step ended: the step time is this phase's time so far without evaluations."""
        self.step, self.last_step_at = step, elapsed
        self.costs = replace(self.costs, step=max(0.0, elapsed - self.eval_seconds) / max(1, step))
        self._anchor()

    def on_eval(self, elapsed: float, scored: int) -> None:
        """An evaluation of ``scored`` documents ended (it started right after the last step)."""
        self.evaluations += 1
        self.eval_seconds += max(0.0, elapsed - self.last_step_at)
        if scored and self.phase == "training":
            self.costs = replace(self.costs, eval_doc=self.eval_seconds / (self.evaluations * scored))
        self._anchor()

    def on_share(self, done: int, total: int, elapsed: float) -> None:
        """``done`` of ``total`` units of this phase took ``elapsed`` seconds: the rest at the same rate."""
        self.left = elapsed / max(1, done) * max(0, total - done)
        self.at = time.monotonic()

    def _anchor(self) -> None:
        self.left = remaining_seconds(self.plan, self.costs, self.phase, self.step, self.evaluations)
        self.at = time.monotonic()

    def eta(self) -> float:
        return max(0.0, self.left - (time.monotonic() - self.at))


class JobManager:
    """Runs at most one fine-tune job at a time; ``start`` raises ``BusyError`` while one runs."""

    def __init__(self, registry: ModelRegistry, config: AppConfig) -> None:
        self.registry = registry
        self.config = config
        self._lock = threading.Lock()
        self._state = JobState()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._clock: _Clock | None = None
        self._started = time.monotonic()
        self._run = _gpu_wrapper()(self._train)

    def status(self) -> JobState:
        """A copy of the current job's state (while it runs, with its elapsed time and ETA as of now)."""
        with self._lock:
            state = JobState(**{k: getattr(self._state, k) for k in self._state.__dataclass_fields__})
            state.steps, state.losses = list(state.steps), list(state.losses)
            state.evals = [dict(e) for e in state.evals]
            if state.running:
                state.elapsed_seconds = time.monotonic() - self._started
                state.eta_seconds = self._clock.eta() if self._clock is not None else None
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
            self._clock, self._started = None, time.monotonic()
        key = data_key(request.data_file)
        workdir = Path(tempfile.mkdtemp(prefix="hpt-job-"))
        files: dict[str, Path | None] = {"hierarchy": None, "label_names": None}
        try:
            data = workdir / ("data" + _suffix(request.source_name))
            shutil.copyfile(request.data_file, data)
            if request.hierarchy_file is not None:
                files["hierarchy"] = workdir / ("hierarchy" + _suffix(str(request.hierarchy_file)))
                shutil.copyfile(request.hierarchy_file, files["hierarchy"])
            if request.label_names_file is not None:
                own = request.label_names_name or Path(request.label_names_file).name
                files["label_names"] = workdir / ("label-names" + _suffix(own))
                shutil.copyfile(request.label_names_file, files["label_names"])
        except OSError as e:
            shutil.rmtree(workdir, ignore_errors=True)
            self._finish("failed", f"Could not read the uploaded file: {e}.", error=str(e))
            raise HPTError(f"Could not read the uploaded file {request.source_name!r}: {e}.") from e
        thread = threading.Thread(
            target=self._worker,
            args=(request, data, files, workdir, job_id, key),
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

    def _enter(self, phase: str, message: str) -> None:
        """The job moves on to ``phase`` (its ETA is re-anchored), with ``message`` unless it is being cancelled."""
        with self._lock:
            self._state.phase = phase
            if not self._cancel.is_set():
                self._state.message = message
            if self._clock is not None:
                self._clock.enter(phase)

    def _finish(self, state: str, message: str, **values: Any) -> None:
        values.setdefault("elapsed_seconds", time.monotonic() - self._started)
        self._update(state=state, message=message, eta_seconds=None, **values)

    def _worker(
        self, request: JobRequest, data: Path, files: dict[str, Path | None], workdir: Path, job_id: str, key: str
    ) -> None:
        lower_thread_priority(JOB_NICE)  # before the job's first torch call, so its compute threads inherit it
        try:
            self._run(request, data, files, job_id, workdir, key)
        except HPTError as e:  # name the uploads, never the job's temporary copies
            message = str(e).replace(str(data), request.source_name)
            if files["label_names"] is not None:
                own = request.label_names_name or Path(str(request.label_names_file)).name
                message = message.replace(str(files["label_names"]), own)
            message = message.replace(str(workdir), "(job folder)")
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
                s.state, s.step, s.total_steps = "running", event.step, event.total_steps
                if event.phase == "train":
                    self._clock.on_step(event.step, event.elapsed_seconds)
                    if not self._cancel.is_set():
                        s.message = f"Adapting the backbone to your texts (masked LM): step {event.step}/{steps}"
                else:
                    self._clock.on_eval(event.elapsed_seconds, 0)
                    if event.message and not self._cancel.is_set():
                        s.message = f"Adapting the backbone: {event.message}"

        self._enter("adapting the backbone", f"Adapting {request.model.backbone} to your texts…")
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

    def _costs(self, request: JobRequest, key: str) -> StepCosts:
        """This machine's calibration for the job's settings and data when the panel made one, else the constants."""
        found = cached_costs(request.model, request.train, key)
        if found is not None:
            return found
        return fallback_costs(request.model.backbone, request.train.batch_size, request.model.max_length)

    def _train(
        self, request: JobRequest, data: Path, files: dict[str, Path | None], job_id: str, workdir: Path, key: str
    ) -> None:
        seed = request.train.seed  # also the split's seed
        self._update(phase="preparing the data")
        splits = finetuning.prepare_splits(
            data, hierarchy_file=files["hierarchy"], split_seed=seed, source_name=request.source_name
        )
        n_labels = splits.train.hierarchy.num_labels
        if n_labels > self.config.max_labels:
            raise HPTError(
                f"{request.source_name}: {n_labels} labels is over this app's limit of {self.config.max_labels}."
            )
        train_config = run_config(request.train, len(splits.train))
        plan = job_plan(
            request.train,
            len(splits.train),
            len(splits.dev),
            len(splits.test),
            request.adapt_steps,
            baseline=self.config.baseline_backbone is not None,
        )
        estimate = estimate_job(plan, self._costs(request, key))
        with self._lock:
            self._clock = _Clock(plan, estimate.costs)
        self._update(data_summary=splits.summary(), estimate=estimate.to_dict(), total_steps=plan.steps)
        model_config, label = request.model, None
        if request.adapt_steps > 0:
            adapted = workdir / "adapted-backbone"
            if not self._adapt(request, [d.text for d in splits.train.documents], adapted):
                return
            model_config = replace(request.model, backbone=str(adapted))
            label = f"{request.model.backbone} + {request.adapt_steps} masked-LM steps on the data"
        self._enter("loading the backbone", "Loading the backbone…")
        epochs = train_config.epochs
        name = f"{_safe_stem(request.source_name)}-{_safe_stem(request.model.variant_name)}-{job_id}"
        if (self.config.user_dir / name).exists():  # two jobs within one second
            name += f"-{len(list(self.config.user_dir.iterdir()))}"
        stopper = EarlyStopper(train_config.patience, train_config.early_stopping)  # mirrors the loop's, for phases
        scoring = "Scoring the dev and test sets and saving the model…"

        def progress(event: Any) -> None:
            with self._lock:
                s, clock = self._state, self._clock
                if clock.phase != "training":
                    s.phase = "training"
                    clock.enter("training")
                s.state, s.step, s.total_steps = "running", event.step, event.total_steps
                s.epoch = event.epoch
                if event.phase == "train" and event.loss is not None:
                    s.steps.append(event.step)
                    s.losses.append(event.loss)
                    clock.on_step(event.step, event.elapsed_seconds)
                    if not self._cancel.is_set():
                        s.message = f"Training: step {event.step}/{event.total_steps}, epoch {event.epoch}/{epochs}"
                    ended = event.step >= event.total_steps and not plan.evaluations
                elif event.phase == "eval":
                    s.evals.append(
                        {
                            "step": event.step,
                            "epoch": event.epoch,
                            "dev_macro_f1": event.dev_macro_f1,
                            "dev_micro_f1": event.dev_micro_f1,
                        }
                    )
                    clock.on_eval(event.elapsed_seconds, plan.n_dev)
                    stopper.update(event.dev_macro_f1 or 0.0, event.dev_micro_f1 or 0.0)
                    ended = stopper.should_stop or event.step >= event.total_steps
                else:
                    ended = False
                if ended and not self._cancel.is_set():  # train() returns: finetune() scores and saves
                    s.phase, s.message = "scoring and saving", scoring
                    clock.enter("scoring and saving")

        provenance = {
            "data": request.source_name,
            "hierarchy": Path(str(request.hierarchy_file)).name if request.hierarchy_file else None,
            "label_names": request.label_names_name if files["label_names"] else None,
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
            label_names=files["label_names"],
        )
        if result.run.cancelled:
            self._finish(
                "cancelled", f"Cancelled at step {result.run.steps}; nothing was saved.", metrics=result.metrics
            )
            return
        self.registry.prune()
        reason = stop_sentence(result.run, train_config)
        self._update(
            metrics=result.metrics,
            model_name=name,
            device=result.run.device,
            step=result.run.steps,
            stopped_early=result.run.stopped_early,
            stop_reason=reason,
            best_step=result.run.best_step,
        )
        duel = self._fit_baseline(splits, request) if plan.baseline else ""
        baseline = self.status().baseline
        if baseline and result.directory is not None:  # the checkpoint and its model card record the duel too
            try:
                from hpt_core.checkpoint import add_sentence_baseline

                add_sentence_baseline(result.directory, baseline)
            except (OSError, HPTError) as e:
                log.warning("could not record the baseline in %s: %s", result.directory, e)
        test = result.metrics.get("test") or result.metrics.get("dev") or {}
        scores = ""
        if test:
            scores = f" Test micro-F1 {100 * test['micro_f1']:.1f} %, macro-F1 {100 * test['macro_f1']:.1f} %."
        took = time.monotonic() - self._started
        self._finish(
            "finished",
            f"Finished in {format_duration(took)} (estimated {format_duration(estimate.seconds)}) on "
            f"{result.run.device}: saved as {name!r}.{' ' + reason if reason else ''}{scores}{duel}",
            elapsed_seconds=took,
        )

    def _fit_baseline(self, splits: Any, request: JobRequest) -> str:
        """Fit the frozen-embedding baseline on the job's own splits; a failure (or a cancel) never fails the job,
        it becomes ``baseline_error``. Returns a sentence for the final message."""
        self._enter(BASELINE_PHASE, "Fitting the frozen-embedding baseline on the same splits…")
        started = time.perf_counter()
        first: list[float] = []  # seconds to the first progress report: loading the encoder and one batch

        def progress(done: int, total: int) -> None:
            now = time.perf_counter() - started
            if not first:
                first.append(now)
            with self._lock:
                if self._clock is not None:
                    self._clock.on_share(done, total, now)
                if not self._cancel.is_set():
                    self._state.message = (
                        f"Fitting the frozen-embedding baseline on the same splits: {done}/{total} (documents "
                        "embedded, then C values fitted)"
                    )

        try:
            from hpt_core import sentence_baseline

            result = sentence_baseline.fit_sentence_baseline(
                splits,
                backbone=str(self.config.baseline_backbone),
                max_length=request.model.max_length,
                callback=progress,
                cancel=self._cancel,
                precision=self.config.precision,  # bf16 on CPUs with bf16 instructions, like the app's predictions
            )
        except ImportError:
            return self._no_baseline("The frozen-embedding baseline is not available in this installation.")
        except HPTError as e:
            return self._no_baseline(f"The frozen-embedding baseline could not be fitted: {e}")
        except Exception as e:  # noqa: BLE001 - the HPT model is saved; the baseline must not fail the job
            log.exception("the frozen-embedding baseline failed")
            return self._no_baseline(
                f"The frozen-embedding baseline failed unexpectedly ({type(e).__name__}); the HPT model is saved."
            )
        if result.cancelled:
            return self._no_baseline("The frozen-embedding baseline was cancelled; the HPT model is saved.")
        docs = len(splits.train) + len(splits.dev) + len(splits.test)
        load = first[0] if first else 0.0
        with self._lock:  # its measured rate serves the next estimates on this device
            record_baseline_rate(load, max(0.0, result.seconds - load) / max(1, docs))
        self._update(baseline=result.to_dict())
        return " The frozen-embedding baseline is beside it in the duel table."

    def _no_baseline(self, message: str) -> str:
        self._update(baseline_error=message)
        return f" {message}"
