"""One training loop for every variant: Adam/AdamW, early stopping on dev macro-F1, seeds, progress, cancellation.

    result = train(model, train_set, dev_set, TrainConfig(epochs=20), callback=print, cancel=threading.Event())

The loop restores the best dev state (by macro-F1) at the end; ``TrainConfig.early_stopping`` says what resets the
patience counter (``CODE_FAITHFUL_TRAINING``: also a micro-F1 gain, as the official code). The recipe: parameter
groups with their own learning rates (``parameter_groups``: what HPT adds, the word embeddings, the rest of the
backbone; ``lr_new``, ``lr_embeddings``, ``lr``), a warm-up and a constant, linear or cosine schedule (``lr_factor``);
``RECIPES`` names presets: ``cpu`` (the defaults, chosen on dev runs of the default backbone) and ``paper``. On CPU a
fixed seed gives identical runs on one machine; ``precision="auto"`` trains in bf16 on CPUs with bf16 instructions
(``device.resolve_precision``: 1.5x faster steps, no dev-F1 cost measured) and in fp32 elsewhere, so use ``fp32`` for
the same numbers on every CPU; on GPU, fp16/bf16 autocast is used and runs are close but not bitwise identical.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hpt_core.configs import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, SEED, Check, ConfigBase, check_config, setting
from hpt_core.device import PRECISIONS, autocast, resolve_precision
from hpt_core.distributed import Distributed, current
from hpt_core.errors import ConfigError
from hpt_core.inference import evaluate_model
from hpt_core.resume import Checkpointing, restore_rng_states, rng_states

if TYPE_CHECKING:
    from hpt_core.data import Dataset, Document
    from hpt_core.model import HPTModel

__all__ = [
    "TrainConfig",
    "CODE_FAITHFUL_TRAINING",
    "RECIPES",
    "SCHEDULES",
    "lr_factor",
    "parameter_groups",
    "EARLY_STOPPING",
    "TrainProgress",
    "TrainResult",
    "EarlyStopper",
    "train",
    "fit",
    "Evaluation",
    "set_seed",
    "iterate_batches",
]


EARLY_STOPPING = ("macro", "macro_or_micro")
SCHEDULES = ("constant", "linear", "cosine")
CODE_FAITHFUL_TRAINING: dict[str, Any] = {"early_stopping": "macro_or_micro"}  # the official code's loop
# Named training recipes, presets of ``TrainConfig`` fields (``train --recipe NAME``).
# "cpu" is the defaults: chosen on dev macro-F1 (seed 0, averaged over 20 Newsgroups with 10 % of its training split
# and WOS-1k) among the candidates of ``benchmarks/quality/recipe.py``, on the default backbone ``minilm-l6-mlm`` at
# the benchmark's CPU budget (128 tokens, 3 and 6 epochs): the backbone at 1e-4, the parameters HPT adds at 3e-3,
# 10 % warm-up then linear decay (dev macro-F1 64.66 / 18.16 against 59.06 / 16.32 with one rate of 1e-4; see
# docs/benchmarks.md). "paper": the paper's Adam at 3e-5 for every parameter, constant, no warm-up, patience 6.
RECIPES: dict[str, dict[str, Any]] = {
    "cpu": {
        "optimizer": "adam",
        "lr": 1e-4,
        "lr_new": 3e-3,
        "lr_embeddings": None,
        "schedule": "linear",
        "warmup_ratio": 0.1,
        "patience": 6,
    },
    "paper": {
        "optimizer": "adam",
        "lr": 3e-5,
        "lr_new": None,
        "lr_embeddings": None,
        "schedule": "constant",
        "warmup_ratio": 0.0,
        "patience": 6,
    },
}
_WARMUP = Check(lambda v: 0.0 <= v < 1.0, "in [0, 1)", "a fraction in [0, 1)")


@dataclass
class TrainConfig(ConfigBase):
    """Settings of one training run; saved as ``train_config.json`` beside the checkpoint.

    Each field is declared once (``hpt_core.configs.setting``): its help, check and command-line flag come from here.
    ``CODE_FAITHFUL_TRAINING`` holds the official code's values (``--code-faithful``).
    """

    epochs: int = setting(20, "upper bound on the epochs; early stopping usually ends sooner", check=AT_LEAST_ONE)
    max_steps: int | None = setting(
        None, "stop after this many optimizer steps (evaluates once at the end)", check=AT_LEAST_ONE
    )
    batch_size: int = setting(16, "training batch size (the paper's)", check=AT_LEAST_ONE)
    eval_batch_size: int = setting(32, "batch size of dev evaluations", check=AT_LEAST_ONE)
    lr: float = setting(
        RECIPES["cpu"]["lr"],
        "learning rate of the backbone (the CPU recipe's; the paper's is 3e-5: --recipe paper)",
        check=POSITIVE,
        label="learning rate",
    )
    lr_new: float | None = setting(
        RECIPES["cpu"]["lr_new"],
        "learning rate of the parameters HPT adds to the backbone (label words, template words, [PRED], graph, "
        "biases, soft-prompt words, the fine-tune classifier); 0 freezes them; None: the same as lr",
        check=NON_NEGATIVE,
    )
    lr_embeddings: float | None = setting(
        None,
        "learning rate of the backbone's word embeddings (tied to the MLM decoder); 0 freezes them; default: lr",
        check=NON_NEGATIVE,
    )
    schedule: str = setting(
        RECIPES["cpu"]["schedule"],
        "learning-rate schedule after the warm-up; linear and cosine decay to 0 at the end of the run",
        choices=SCHEDULES,
    )
    warmup_ratio: float = setting(
        RECIPES["cpu"]["warmup_ratio"],
        "fraction of the run's steps with a linear learning-rate warm-up from 0",
        check=_WARMUP,
    )
    optimizer: str = setting("adam", "optimizer", choices=("adam", "adamw"))
    weight_decay: float = setting(0.0, "weight decay of the optimizer", check=NON_NEGATIVE)
    grad_clip: float | None = setting(None, "max gradient norm; off by default, as in the paper", check=POSITIVE)
    patience: int = setting(6, "evaluations without a dev macro-F1 gain before stopping", check=AT_LEAST_ONE)
    seed: int = setting(3, "training seed (the official code's)", check=SEED)
    device: str = setting("auto", "auto, cpu, cuda or cuda:N")
    precision: str = setting(
        "auto",
        "autocast: auto (bf16/fp16 on GPU; on the CPU bf16 where it has bf16 instructions, else fp32), fp32, fp16 "
        "(GPU only) or bf16 (GPU and CPU)",
        choices=PRECISIONS,
    )
    eval_every: int | None = setting(None, "evaluate every N steps instead of every epoch", check=AT_LEAST_ONE)
    early_stopping: str = setting(
        "macro",
        "what resets patience: a dev macro-F1 gain (macro, paper) or also a micro-F1 gain (macro_or_micro, official "
        "code)",
        choices=EARLY_STOPPING,
    )

    def __post_init__(self) -> None:
        check_config(self)


@dataclass
class TrainProgress:
    """One progress event: sent after every step (``phase="train"``) and after every evaluation (``"eval"``)."""

    phase: str
    step: int
    total_steps: int
    epoch: int
    loss: float | None = None
    loss_parts: dict[str, float] = field(default_factory=dict)
    dev_micro_f1: float | None = None
    dev_macro_f1: float | None = None
    best_dev_macro_f1: float | None = None
    elapsed_seconds: float = 0.0
    message: str = ""
    dev_score: float | None = None  # the selection metric (dev macro-F1; masked top-1 when pretraining)


@dataclass
class TrainResult:
    """What ``train`` returns; the model holds the best state when it returns."""

    best_dev: Any  # the best evaluation's report (EvalReport when prompt tuning), None without evaluation
    best_step: int
    steps: int
    epochs_run: float
    seconds: float
    stopped_early: bool
    cancelled: bool
    history: list[dict[str, Any]]  # one record per evaluation
    device: str
    processes: int = 1  # training processes (DDP under accelerate launch)
    precision: str = "fp32"  # what the steps ran in (TrainConfig.precision resolved on this device)


class EarlyStopper:
    """Patience counter on dev scores.

    ``mode="macro"`` (paper) resets the counter only on a macro-F1 gain; ``"macro_or_micro"`` (official code) also on a
    micro-F1 gain. ``update`` returns True when the state is the new best by macro-F1 (what is kept).
    """

    def __init__(self, patience: int, mode: str = "macro") -> None:
        if mode not in EARLY_STOPPING:
            raise ConfigError(f"Unknown early-stopping mode {mode!r}; choose one of {', '.join(EARLY_STOPPING)}.")
        self.patience, self.mode = patience, mode
        self.best_macro = -1.0
        self.best_micro = -1.0
        self.bad_rounds = 0

    def update(self, macro: float, micro: float) -> bool:
        improved_macro = macro > self.best_macro
        improved_micro = micro > self.best_micro
        self.best_macro = max(self.best_macro, macro)
        self.best_micro = max(self.best_micro, micro)
        reset = improved_macro or (self.mode == "macro_or_micro" and improved_micro)
        self.bad_rounds = 0 if reset else self.bad_rounds + 1
        return improved_macro

    @property
    def should_stop(self) -> bool:
        return self.bad_rounds >= self.patience


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch; ask torch for deterministic kernels (warn only where none exists)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def _targets(documents: list[Document], num_labels: int) -> torch.Tensor:
    y = torch.zeros(len(documents), num_labels)  # (B, C)
    for row, doc in enumerate(documents):
        y[row, doc.labels] = 1.0
    return y


def iterate_batches(
    model: HPTModel,
    documents: list[Document],
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    with_labels: bool = True,
) -> Iterator[Any]:
    """Collated ``TemplateBatch``es (dynamic padding) over ``documents``; a seeded shuffle when asked."""
    order = torch.randperm(len(documents), generator=generator).tolist() if shuffle else list(range(len(documents)))
    for start in range(0, len(order), batch_size):
        chunk = [documents[i] for i in order[start : start + batch_size]]
        labels = _targets(chunk, model.num_labels) if with_labels else None
        yield model.encode([d.text for d in chunk], labels)


def lr_factor(step: int, total: int, schedule: str = "constant", warmup_ratio: float = 0.0) -> float:
    """The multiplier of every group's learning rate for update ``step`` (0-based) of a run of ``total`` updates.

    The first ``W = floor(warmup_ratio * total)`` updates warm up linearly, ``(step + 1) / W``: the first one is not
    wasted at 0 and the last warm-up update (``W - 1``) runs at the full rate. Then ``constant`` stays at 1, and
    ``linear`` (``1 - p``) and ``cosine`` (``(1 + cos(pi p)) / 2``) decay with ``p = (step - W) / (total - W)`` from 1
    at update ``W`` to 0 at ``step = total``, just after the run's last update (which gets ``1 / (total - W)`` when
    linear). Early stopping ends a run sooner; the schedule always spans the planned ``total``.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"Unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}.")
    warmup = int(warmup_ratio * total)
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def parameter_groups(module: torch.nn.Module) -> dict[str, list[torch.nn.Parameter]]:
    """``module``'s parameters by learning-rate group: ``new`` (``TrainConfig.lr_new``), ``embeddings``
    (``lr_embeddings``) and ``backbone`` (``lr``); each parameter is in one group.

    A module with an ``optimizer_groups()`` method (``HPTModel``) names its own groups. Any other module (the masked-LM
    objective of ``pretrain``, a plain backbone) adds nothing new: the input-embedding matrix of its first Hugging Face
    model (the first submodule with ``get_input_embeddings``) is ``embeddings``, everything else ``backbone``.
    """
    own = getattr(module, "optimizer_groups", None)
    if callable(own):
        return own()
    embeddings: torch.nn.Parameter | None = None
    for sub in module.modules():
        get = getattr(sub, "get_input_embeddings", None)
        if callable(get):
            found = get()
            embeddings = getattr(found, "weight", None) if found is not None else None
            break
    groups: dict[str, list[torch.nn.Parameter]] = {"new": [], "embeddings": [], "backbone": []}
    for p in module.parameters():  # shared (tied) parameters come once
        groups["embeddings" if p is embeddings else "backbone"].append(p)
    return groups


@dataclass
class Evaluation:
    """One evaluation inside the loop: ``primary`` selects the best state and drives early stopping (dev macro-F1,
    or held-out masked top-1 when pretraining); ``secondary`` also resets patience in ``macro_or_micro`` mode."""

    primary: float
    secondary: float
    report: Any
    message: str
    record: dict[str, Any] = field(default_factory=dict)  # extra fields for the history


def train(
    model: HPTModel,
    train_set: Dataset,
    dev_set: Dataset | None,
    config: TrainConfig,
    callback: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> TrainResult:
    """Train ``model`` in place and leave it holding the best dev state (by dev macro-F1).

    Without a dev set the last state is kept. ``cancel.set()`` from another thread stops after the current step
    (the best state so far is still restored). ``callback`` receives a ``TrainProgress`` after each step and each
    evaluation.
    """
    if len(train_set.documents) == 0:
        raise ConfigError("The training set is empty; give at least one training document.")
    train_counts = train_set.label_counts()
    evaluate = None
    if dev_set is not None and len(dev_set.documents):

        def evaluate() -> Evaluation:
            # in the steps' precision (dev only chooses the state kept; metrics.json is scored in fp32 afterwards)
            precision = resolve_precision(model.device, config.precision)
            report = evaluate_model(model, dev_set, config.eval_batch_size, train_counts, precision=precision)
            return Evaluation(
                report.macro_f1,
                report.micro_f1,
                report,
                f"dev micro-F1 {100 * report.micro_f1:.2f} %, macro-F1 {100 * report.macro_f1:.2f} %",
                {"dev_micro_f1": report.micro_f1, "dev_macro_f1": report.macro_f1},
            )

    def batches(generator: torch.Generator) -> Iterator[Any]:
        return iterate_batches(model, train_set.documents, config.batch_size, True, generator)

    steps_per_epoch = math.ceil(len(train_set.documents) / config.batch_size)
    return fit(model, batches, steps_per_epoch, evaluate, config, callback, cancel)


def fit(
    module: torch.nn.Module,
    batches: Callable[[torch.Generator], Iterator[Any]],
    steps_per_epoch: int,
    evaluate: Callable[[], Evaluation] | None,
    config: TrainConfig,
    callback: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
    checkpoint: Checkpointing | None = None,
) -> TrainResult:
    """The one optimisation loop behind ``train`` (prompt tuning) and ``pretrain`` (continued masked LM).

    ``module(batch)`` must return an object with ``loss`` and ``loss_parts``; ``batches(generator)`` yields one epoch of
    collated batches (a seeded shuffle); ``evaluate()`` scores the current state (``None``: keep the last state);
    ``config.early_stopping`` says whether a ``secondary`` gain also resets the patience counter.

    Under ``accelerate launch`` (``hpt_core.distributed``), ``config.batch_size`` stays the global batch: every
    process draws the same shuffled batches and trains on its contiguous slice, and DDP averages the gradients.
    Losses in progress events are means over the global batch; evaluation runs on the main process (the callback
    too) and its outcome is broadcast, so every process stops, and keeps the best state, at the same step.

    ``checkpoint`` (``hpt_core.resume``) saves the loop's whole state every ``checkpoint.every`` steps, on
    cancellation and at the end, and continues from ``checkpoint.state`` when given: the weights, the optimizer and
    schedule, the Python/NumPy/torch generators, the position in the epoch's shuffled order (that epoch's batches
    are drawn again and the trained ones skipped), the early-stopping counters, the best state and the history. On
    the CPU in fp32 the resumed run ends bitwise where the uninterrupted one does. Under several processes the other
    processes' generators are re-seeded instead (the run continues, not bitwise). Evaluation reports must be plain
    data (``pretrain``'s are): the state is read back with ``torch.load(weights_only=True)``.
    """
    dist = current()
    if config.batch_size < dist.world_size:
        raise ConfigError(
            f"batch_size {config.batch_size} is smaller than the {dist.world_size} processes of this run; the batch "
            f"size is the global batch, split across processes: use at least {dist.world_size}."
        )
    # The shuffle uses `generator` (the same seed on every process); dropout and MLM masking differ per process.
    set_seed((config.seed + dist.rank) % 2**32)
    device = dist.device(config.device)
    autocast(device, config.precision)  # refuses a precision this device cannot run before anything is trained
    config = replace(config, precision=resolve_precision(device, config.precision))  # CPU "auto": bf16 or fp32
    module.to(device)
    optimizer_groups, frozen = _optimizer_groups(module, config)
    for p in frozen:  # before DDP wraps the module: it only synchronises parameters that need gradients
        p.requires_grad_(False)
    try:
        return _run(
            module,
            optimizer_groups,
            batches,
            steps_per_epoch,
            evaluate,
            config,
            callback,
            cancel,
            dist,
            device,
            checkpoint,
        )
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _optimizer_groups(
    module: torch.nn.Module, config: TrainConfig
) -> tuple[list[dict[str, Any]], list[torch.nn.Parameter]]:
    """The optimizer's parameter groups (``parameter_groups`` with their learning rates) and the parameters a rate of
    0 freezes (left out of the optimizer, so neither the update nor weight decay moves them). Parameters that were
    already frozen (``requires_grad`` False) stay out."""
    rates = {
        "new": config.lr if config.lr_new is None else config.lr_new,
        "embeddings": config.lr if config.lr_embeddings is None else config.lr_embeddings,
        "backbone": config.lr,
    }
    groups: list[dict[str, Any]] = []
    frozen: list[torch.nn.Parameter] = []
    for name, params in parameter_groups(module).items():
        if name not in rates:
            raise ConfigError(f"Unknown parameter group {name!r}; expected one of {', '.join(rates)}.")
        trainable = [p for p in params if p.requires_grad]
        if rates[name] == 0:
            frozen += trainable
        elif trainable:
            groups.append({"params": trainable, "lr": rates[name], "name": name})
    if not groups:
        raise ConfigError("Every parameter is frozen (learning rate 0); give lr_new or lr_embeddings a positive rate.")
    return groups, frozen


def _run(
    module: torch.nn.Module,
    optimizer_groups: list[dict[str, Any]],
    batches: Callable[[torch.Generator], Iterator[Any]],
    steps_per_epoch: int,
    evaluate: Callable[[], Evaluation] | None,
    config: TrainConfig,
    callback: Callable[[TrainProgress], None] | None,
    cancel: threading.Event | None,
    dist: Distributed,
    device: torch.device,
    checkpoint: Checkpointing | None = None,
) -> TrainResult:
    """``fit`` once the processes, the device and the parameter groups are settled (the frozen ones are frozen)."""
    resume = checkpoint.state if checkpoint is not None else None
    if resume is not None:  # before DDP wraps the module (it broadcasts the main process's weights)
        module.load_state_dict(resume["module"])
    step_module = dist.prepare(module)
    params = [p for group in optimizer_groups for p in group["params"]]
    opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(optimizer_groups, lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and config.precision in ("auto", "fp16"))
    generator = torch.Generator().manual_seed(config.seed)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda n: lr_factor(n, total, config.schedule, config.warmup_ratio)
    )
    stopper = EarlyStopper(config.patience, config.early_stopping)
    best_state: dict[str, torch.Tensor] | None = None
    best_report: Any = None
    best_step = 0
    history: list[dict[str, Any]] = []
    step, epoch = 0, 0
    started = time.perf_counter()
    cancelled = stopped = False
    skip = 0  # batches of the first epoch already trained before a resume
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        scaler.load_state_dict(resume["scaler"])
        loop = resume["loop"]
        step, epoch, skip, stopped = loop["step"], loop["epoch"] - 1, loop["position"], loop["stopped"]
        best_report, best_step, history = loop["best_report"], loop["best_step"], list(loop["history"])
        stopper.best_macro, stopper.best_micro, stopper.bad_rounds = loop["stopper"]
        if resume["best_is_current"]:
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
        else:
            best_state = resume["best_state"]
        generator.set_state(resume["epoch_generator"])
        if dist.is_main:
            restore_rng_states(resume["rng"])
        else:
            set_seed((config.seed + dist.rank + 7919 * step) % 2**32)
        started -= loop["seconds"]
    resuming = resume is not None  # enters the saved epoch even when the saved run had reached its last step
    epoch_generator, position = generator.get_state(), skip  # position: batches of the epoch trained so far
    saved_at: tuple[int, int] | None = (step, len(history)) if resuming else None

    def save() -> None:
        """Hand the loop's state to ``checkpoint.save`` (main process), unless it was just saved unchanged."""
        nonlocal saved_at
        if checkpoint is None or saved_at == (step, len(history)):
            return
        saved_at = (step, len(history))
        if not dist.is_main:
            return
        best_is_current = best_state is not None and best_step == step
        loop = {
            "step": step,
            "total": total,
            "epoch": epoch,
            "position": position,
            "stopped": stopped,
            "best_step": best_step,
            "best_report": best_report,
            "history": history,
            "stopper": (stopper.best_macro, stopper.best_micro, stopper.bad_rounds),
            "seconds": time.perf_counter() - started,
        }
        checkpoint.save(
            {
                "module": module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rng_states(),
                "epoch_generator": epoch_generator,
                "best_is_current": best_is_current,
                "best_state": None if best_is_current else best_state,
                "loop": loop,
            }
        )

    def learning_rates() -> dict[str, float]:
        """Each trained group's learning rate for the next update (frozen groups are not in the optimizer)."""
        return {g["name"]: g["lr"] for g in optimizer.param_groups}

    def emit(progress: TrainProgress) -> None:
        if callback is not None and dist.is_main:
            callback(progress)

    def run_eval() -> None:
        nonlocal best_state, best_report, best_step, stopped
        if evaluate is None:
            return
        result = dist.on_main(evaluate)
        if stopper.update(result.primary, result.secondary):
            best_report, best_step = result.report, step
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
        stopped = stopper.should_stop
        history.append(
            {"step": step, "epoch": epoch, "dev_score": result.primary, **result.record, "lr": learning_rates()}
        )
        emit(
            TrainProgress(
                "eval",
                step,
                total,
                epoch,
                dev_micro_f1=result.record.get("dev_micro_f1"),
                dev_macro_f1=result.record.get("dev_macro_f1"),
                best_dev_macro_f1=stopper.best_macro,
                elapsed_seconds=time.perf_counter() - started,
                message=result.message,
                dev_score=result.primary,
            )
        )
        module.train()

    module.train()
    while (step < total or resuming) and not (cancelled or stopped):
        resuming = False
        epoch += 1
        epoch_generator, position = generator.get_state(), skip
        for position, batch in enumerate(batches(generator), 1):
            if position <= skip:  # trained before the resume: same order, same batches, skipped
                continue
            if step >= total or dist.any(cancel is not None and cancel.is_set()):  # (step >= total: resumed there)
                cancelled = step < total
                position -= 1  # this batch was not trained
                break
            batch, share = dist.shard(batch)
            batch = batch.to(device)
            with autocast(device, config.precision):
                out = step_module(batch)
            optimizer.zero_grad(set_to_none=True)
            # DDP averages gradients over processes; weighting by the share of the global batch makes that the
            # gradient of the global batch mean when processes hold unequal slices (1.0 when they are equal).
            weight = share * dist.world_size
            scaler.scale(out.loss if weight == 1.0 else out.loss * weight).backward()
            if config.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            parts = {k: float(v.detach()) for k, v in out.loss_parts.items()}
            loss, *part_values = dist.batch_mean([float(out.loss.detach()), *parts.values()], share)
            parts = dict(zip(parts, part_values))
            if not math.isfinite(loss):
                raise ConfigError(
                    f"Training diverged at step {step} (loss {loss}); lower the learning rate (now {config.lr})."
                )
            emit(
                TrainProgress(
                    "train",
                    step,
                    total,
                    epoch,
                    loss=loss,
                    loss_parts=parts,
                    best_dev_macro_f1=stopper.best_macro if best_report is not None else None,
                    elapsed_seconds=time.perf_counter() - started,
                )
            )
            if config.eval_every is not None and step % config.eval_every == 0 and step < total:
                run_eval()
            if checkpoint is not None and checkpoint.every is not None and step % checkpoint.every == 0:
                save()
            if stopped or step >= total:
                break
        skip = 0
        evaluated_here = bool(history) and history[-1]["step"] == step
        if not cancelled and not evaluated_here and (config.eval_every is None or step >= total):
            run_eval()
    save()  # the end (or the cancellation) point, before the best state is restored
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return TrainResult(
        best_dev=best_report,
        best_step=best_step if best_report is not None else step,
        steps=step,
        epochs_run=step / steps_per_epoch,
        seconds=time.perf_counter() - started,
        stopped_early=stopped,
        cancelled=cancelled,
        history=history,
        device=str(device),
        processes=dist.world_size,
        precision=config.precision,
    )
