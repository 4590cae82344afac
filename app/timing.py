"""How a fine-tune job is planned and how long it takes: the evaluation rule that lets early stopping act on short
jobs (``run_config``), what a job will do counted (``job_plan``), its costs on this machine (``calibrate``, a few real
training steps; ``fallback_costs`` before one), the estimate shown before it starts (``estimate_job``) and its ETA
while it runs (``remaining_seconds``). ``app.jobs`` runs the jobs.
"""

from __future__ import annotations

import gc
import math
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import hpt_core.training as training
from hpt_core.device import device_summary, resolve_precision
from hpt_core.inference import evaluate_model
from hpt_core.model import HPTConfig, HPTModel
from hpt_core.training import TrainConfig

__all__ = [
    "MIN_EVALUATIONS",
    "PHASES",
    "BASELINE_PHASE",
    "JobPlan",
    "StepCosts",
    "JobEstimate",
    "run_config",
    "planned_evaluations",
    "job_plan",
    "fallback_costs",
    "calibrate",
    "cached_costs",
    "data_key",
    "estimate_parts",
    "estimate_job",
    "remaining_seconds",
    "format_duration",
    "record_baseline_rate",
]

BASELINE_PHASE = "fitting the frozen-embedding baseline"

MIN_EVALUATIONS = 8  # dev evaluations per job at least, so that early stopping can act on short runs


def run_config(train: TrainConfig, n_train: int) -> TrainConfig:
    """The ``TrainConfig`` a job on ``n_train`` training documents runs with: ``train`` itself, evaluated often
    enough for early stopping to act.

    The rule: a job evaluates on the dev set at least ``MIN_EVALUATIONS`` (8) times: once per epoch when it has 8 or
    more epochs, otherwise every ``ceil(total steps / 8)`` steps (and always after the last step). ``patience`` (the
    app's ``AppConfig.train``: 3) counts those evaluations: the job stops when that many evaluations in a row bring
    no dev macro-F1 gain, and it keeps the best dev state (``train`` restores it). A ``train.eval_every`` that is
    already set is kept as it is.
    """
    if train.eval_every is not None:
        return train
    total = _total_steps(train, n_train)
    if math.ceil(total / _steps_per_epoch(train, n_train)) >= MIN_EVALUATIONS:
        return train  # one evaluation per epoch is already enough
    return replace(train, eval_every=max(1, math.ceil(total / MIN_EVALUATIONS)))


def _steps_per_epoch(train: TrainConfig, n_train: int) -> int:
    return max(1, math.ceil(n_train / train.batch_size))


def _total_steps(train: TrainConfig, n_train: int) -> int:
    total = _steps_per_epoch(train, n_train) * train.epochs
    return min(total, train.max_steps) if train.max_steps is not None else total


def planned_evaluations(train: TrainConfig, n_train: int) -> int:
    """Dev evaluations of a run of ``train`` (a ``run_config``) that does not stop early, as the training loop
    makes them: every ``eval_every`` steps before the last one plus one after it, else one per (started) epoch."""
    total = _total_steps(train, n_train)
    if train.eval_every is None:
        return math.ceil(total / _steps_per_epoch(train, n_train))
    return (total - 1) // train.eval_every + 1


# What a job does, in order; each phase is one entry of ``JobEstimate.parts`` (the training phase is two).
PHASES = (
    "adapting the backbone",
    "loading the backbone",
    "training",
    "scoring and saving",
    BASELINE_PHASE,
)


@dataclass(frozen=True)
class JobPlan:
    """What a job will do, counted: its training steps and evaluations and the documents it scores."""

    n_train: int
    n_dev: int
    n_test: int
    steps: int  # training steps when it does not stop early
    evaluations: int  # dev evaluations when it does not stop early
    eval_interval: int  # steps between two evaluations (an epoch when per epoch)
    patience: int
    adapt_steps: int = 0  # masked-LM steps adapting the backbone first
    adapt_scored: int = 0  # held-out texts scored by all the adaptation's masked-LM evaluations together
    baseline: bool = False  # the frozen-embedding baseline is fitted after training

    @property
    def earliest_steps(self) -> int:
        """Steps of the earliest possible early stop: after ``patience + 1`` evaluations."""
        return min(self.steps, (self.patience + 1) * self.eval_interval)


def job_plan(
    train: TrainConfig, n_train: int, n_dev: int, n_test: int, adapt_steps: int = 0, baseline: bool = False
) -> JobPlan:
    """The ``JobPlan`` of a job with the panel's ``train`` config on splits of these sizes (the job runs
    ``run_config(train, n_train)``)."""
    run = run_config(train, n_train)
    per_epoch = _steps_per_epoch(run, n_train)
    adapt_scored = 0
    if adapt_steps:  # hpt_core.pretrain: 5 % of the texts (at most 500) held out, scored before, per epoch, after
        held = min(500, max(1, round(0.05 * n_train))) if n_train >= 20 else 0
        adapt_epochs = math.ceil(adapt_steps / max(1, math.ceil((n_train - held) / run.batch_size)))
        adapt_scored = held * (adapt_epochs + 2)
    return JobPlan(
        n_train,
        n_dev,
        n_test,
        steps=_total_steps(run, n_train),
        evaluations=planned_evaluations(run, n_train) if n_dev else 0,
        eval_interval=run.eval_every or per_epoch,
        patience=run.patience,
        adapt_steps=adapt_steps,
        adapt_scored=adapt_scored,
        baseline=baseline,
    )


@dataclass(frozen=True)
class StepCosts:
    """Seconds of each piece of a job, for one backbone, batch size, maximum length and device.

    ``calibrate`` measures them on this machine; ``fallback_costs`` scales the constants measured by
    ``benchmarks.speed`` when no measurement is at hand. A masked-LM adaptation step is counted as one training step
    (``benchmarks.speed``: an HPT step costs 1.12 masked-LM steps).
    """

    load: float  # building the model on its backbone (read from disk)
    warmup: float  # the first training step's extra time (allocations, first-call set-up)
    step: float  # one training step: forward, backward, Adam, at batch_size × max_length
    eval_doc: float  # scoring one document without gradients, in batches of eval_batch_size
    save: float  # writing the checkpoint
    baseline_load: float  # loading the frozen-embedding baseline's encoder
    baseline_doc: float  # embedding one document and its share of the baseline's classifier fits
    source: str  # where the numbers come from, in words


# The constants ``fallback_costs`` scales (2 CPU cores, MiniLM-L6, batch 16, length 128). Step and eval_doc:
# benchmarks/results/speed.json (an HPT training step 1.52 s; prediction 62.4 documents/s in batches of 32). Load,
# warm-up and save: one ``calibrate`` run on the same 2 cores while other jobs shared them (load 16.3 s, warm-up 8.6
# s, save 0.34 s, with a 12.3× slower step than speed.json's), the CPU-bound load and warm-up divided by that 12.3.
# The baseline: the demo job's (WOS-1k, 1,000 documents at 128 tokens, minilm-l6) 60.9 s on those busy cores, its
# encoder's load included; a finished job's own measurement replaces it (``_BASELINE_RATES``).
_MEASURED = {"step": 1.52, "eval_doc": 1 / 62.4, "load": 1.3, "save": 0.34, "warmup": 0.7}
_BASELINE_MEASURED = {"baseline_load": 0.0, "baseline_doc": 0.061}
_SLOWER_THAN_MINILM = {"bert-base-uncased": 6.0}  # not measured here: the ratio of their per-token FLOPs, rounded


def fallback_costs(backbone: str, batch_size: int, max_length: int) -> StepCosts:
    """Costs from the measured 2-core constants, scaled linearly by tokens per batch and by backbone."""
    factor = _SLOWER_THAN_MINILM.get(backbone, 1.0)
    tokens = max_length / 128
    return StepCosts(
        load=_MEASURED["load"] * factor,
        warmup=_MEASURED["warmup"] * factor,
        step=_MEASURED["step"] * factor * (batch_size / 16) * tokens,
        eval_doc=_MEASURED["eval_doc"] * factor * tokens,
        save=_MEASURED["save"] * factor,
        **_baseline_costs(),
        source="constants measured on 2 CPU cores (MiniLM-L6 at batch 16 × 128 tokens), scaled to these settings",
    )


_COSTS: dict[tuple[Any, ...], StepCosts] = {}  # calibrations of this process, by ``calibration_key``
_BASELINE_RATES: dict[str, tuple[float, float]] = {}  # device → measured (load, seconds per document) of a baseline
_CALIBRATING = threading.Lock()


def _baseline_costs() -> dict[str, float]:
    load, per_doc = _BASELINE_RATES.get(device_summary(), tuple(_BASELINE_MEASURED.values()))
    return {"baseline_load": load, "baseline_doc": per_doc}


def data_key(path: Path) -> str:
    """Identifies a data file for the calibration cache: its path, size and modification time."""
    try:
        stat = Path(path).stat()
    except OSError:
        return str(path)
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def calibration_key(model: HPTConfig, train: TrainConfig, data: str = "") -> tuple[Any, ...]:
    return (
        model.backbone,
        model.variant_name,
        train.batch_size,
        model.max_length,
        train.eval_batch_size,
        device_summary(train.device),
        data,
    )


def cached_costs(model: HPTConfig, train: TrainConfig, data: str = "") -> StepCosts | None:
    """This process's calibration for these settings and data, if one was made."""
    with _CALIBRATING:
        return _COSTS.get(calibration_key(model, train, data))


def calibrate(splits: Any, model: HPTConfig, train: TrainConfig, data: str = "") -> StepCosts:
    """Measure a job's costs on this machine (once per backbone, variant, batch, length, device and data file):
    build the model (load), run 3 real training steps on the training documents (the first one is the warm-up, the
    other two give the step time), score one evaluation batch and save the checkpoint to a temporary folder. Takes
    about 5 training steps; another call for the same key waits for it and gets the same result."""
    key = calibration_key(model, train, data)
    with _CALIBRATING:
        if key in _COSTS:
            return _COSTS[key]
        started = time.perf_counter()
        hpt = HPTModel.from_backbone(model, splits.train.hierarchy)
        load = time.perf_counter() - started
        docs = splits.train.documents
        batch = [docs[k % len(docs)] for k in range(3 * train.batch_size)]
        steps: list[float] = []
        probe = replace(train, epochs=1, max_steps=3, eval_every=None)
        training.train(
            hpt,
            splits.train.subset(batch),
            None,
            probe,
            callback=lambda e: steps.append(e.elapsed_seconds) if e.phase == "train" else None,
        )
        step = (steps[-1] - steps[0]) / max(1, len(steps) - 1)
        scored = splits.dev.documents or docs
        chunk = splits.train.subset([scored[k % len(scored)] for k in range(train.eval_batch_size)])
        started = time.perf_counter()
        evaluate_model(hpt, chunk, train.eval_batch_size, precision=resolve_precision(hpt.device, train.precision))
        eval_doc = (time.perf_counter() - started) / len(chunk)
        with tempfile.TemporaryDirectory(prefix="hpt-calibration-") as folder:
            started = time.perf_counter()
            hpt.save_pretrained(Path(folder) / "model", metrics={}, train_config={})
            save = time.perf_counter() - started
        del hpt
        gc.collect()
        costs = StepCosts(
            load=load,
            warmup=max(0.0, steps[0] - step),
            step=step,
            eval_doc=eval_doc,
            save=save,
            **_baseline_costs(),
            source=(
                f"measured on this machine ({device_summary(train.device)}) for {model.backbone}, batch "
                f"{train.batch_size} × {model.max_length} tokens"
            ),
        )
        _COSTS[key] = costs
        return costs


@dataclass
class JobEstimate:
    """How long a job takes: ``parts`` (seconds by what the job does, in order) add up to ``seconds`` (every epoch
    run); ``earliest`` is the earliest early stop (after ``patience + 1`` evaluations)."""

    parts: dict[str, float]
    earliest: float
    plan: JobPlan
    costs: StepCosts

    @property
    def seconds(self) -> float:
        return sum(self.parts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 1),
            "earliest_seconds": round(self.earliest, 1),
            "parts": {k: round(v, 1) for k, v in self.parts.items()},
            "plan": asdict(self.plan),
            "costs": asdict(self.costs),
        }


def estimate_parts(plan: JobPlan, costs: StepCosts) -> dict[str, float]:
    """Seconds of every piece of the job described by ``plan`` at ``costs``, in the order the job does them."""
    parts: dict[str, float] = {}
    if plan.adapt_steps:
        parts["adapting the backbone"] = (
            costs.load + costs.warmup + plan.adapt_steps * costs.step + plan.adapt_scored * costs.eval_doc + costs.save
        )
    parts["loading the backbone"] = costs.load
    parts["training steps"] = costs.warmup + plan.steps * costs.step
    parts["dev evaluations"] = plan.evaluations * plan.n_dev * costs.eval_doc
    parts["scoring dev and test"] = (plan.n_dev + plan.n_test) * costs.eval_doc
    parts["saving the checkpoint"] = costs.save
    if plan.baseline:
        parts[BASELINE_PHASE] = costs.baseline_load + (plan.n_train + plan.n_dev + plan.n_test) * costs.baseline_doc
    return parts


def estimate_job(plan: JobPlan, costs: StepCosts) -> JobEstimate:
    """The ``JobEstimate`` of ``plan`` at ``costs``."""
    parts = estimate_parts(plan, costs)
    skipped_steps = plan.steps - plan.earliest_steps
    skipped_evals = max(0, plan.evaluations - (plan.patience + 1))
    earliest = sum(parts.values()) - skipped_steps * costs.step - skipped_evals * plan.n_dev * costs.eval_doc
    return JobEstimate(parts, earliest, plan, costs)


def remaining_seconds(plan: JobPlan, costs: StepCosts, phase: str, step: int = 0, evaluations: int = 0) -> float:
    """Seconds left when the job is in ``phase`` (one of ``PHASES``) after ``step`` steps of it and ``evaluations``
    dev evaluations (training); phases after it are counted whole, at ``costs``."""
    parts = estimate_parts(plan, costs)
    if phase not in PHASES:  # still preparing the data: everything is ahead
        return sum(parts.values())
    later = PHASES[PHASES.index(phase) + 1 :]
    groups = {
        "adapting the backbone": ["adapting the backbone"],
        "loading the backbone": ["loading the backbone"],
        "training": ["training steps", "dev evaluations"],
        "scoring and saving": ["scoring dev and test", "saving the checkpoint"],
        BASELINE_PHASE: [BASELINE_PHASE],
    }
    left = sum(parts.get(name, 0.0) for p in later for name in groups[p])
    if phase == "adapting the backbone":
        done = step * costs.step + (costs.load + costs.warmup if step else 0.0)
        left += max(0.0, parts.get(phase, 0.0) - done)
    elif phase == "training":
        left += max(0, plan.steps - step) * costs.step
        left += max(0, plan.evaluations - evaluations) * plan.n_dev * costs.eval_doc
    else:
        left += sum(parts.get(name, 0.0) for name in groups[phase])
    return left


def format_duration(seconds: float) -> str:
    """``45 s``, ``6 min``, ``1.5 h``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def record_baseline_rate(load: float, per_document: float) -> None:
    """Remember a finished baseline's measured load time and seconds per document on this device, for the next
    estimates of this process."""
    _BASELINE_RATES[device_summary()] = (load, per_document)
