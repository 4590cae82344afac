"""The neural methods: HPT, its variants and ablations, and vanilla fine-tuning, each trained by
``hpt_core.finetune.finetune`` (the job the CLI and the app run) and scored by ``hpt_core.inference``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import WORK, write_json
from benchmarks.quality.methods import TASK_MLM
from benchmarks.quality.presets import Preset
from benchmarks.quality.results import run_record
from hpt_core.finetune import Splits, adapt_backbone, finetune
from hpt_core.inference import decode, score_documents
from hpt_core.metrics import evaluate_sets


def run_neural(
    splits: Splits, dataset: str, method: str, backbone: str, seed: int, preset: Preset, log: Callable[[str], None]
) -> tuple[dict[str, Any], list[list[int]]]:
    """Train one prompt-tuning (or fine-tune) model on ``splits`` with ``finetune`` (nothing saved); returns the run's
    record and its predicted label sets of the test documents."""
    model_config = preset.model_config(method, backbone)
    train_config = preset.train_config(dataset, method, seed)  # the run seed initialises the new parameters

    def progress(p: Any) -> None:
        if p.phase == "eval" or p.step % 20 == 0:
            what = p.message or f"loss {p.loss:.4f}"
            log(f"  step {p.step}/{p.total_steps} epoch {p.epoch} {what} ({p.elapsed_seconds:.0f} s)")

    # finetune evaluates dev; the test split is scored once, below, for the predicted sets and their timing
    without_test = Splits(splits.train, splits.dev, splits.test.subset([]), splits.origin)
    job = finetune(without_test, model_config, train_config, out=None, callback=progress)
    result, model = job.run, job.model
    started = time.perf_counter()
    scores = score_documents(model, [d.text for d in splits.test.documents], train_config.eval_batch_size)
    test_seconds = time.perf_counter() - started
    predicted = decode(scores)
    counts = splits.train.label_counts()
    report = evaluate_sets([d.labels for d in splits.test.documents], predicted, model.hierarchy, counts)
    record = run_record(
        report,
        train_seconds=round(result.seconds, 1),
        test_seconds=round(test_seconds, 1),
        steps=result.steps,
        best_step=result.best_step,
        epochs_run=round(result.epochs_run, 2),
        dev_macro_f1=result.best_dev.macro_f1 if result.best_dev is not None else None,
        dev_micro_f1=result.best_dev.micro_f1 if result.best_dev is not None else None,
        variant=model_config.variant_name,
        device=result.device,
        dev_curve=[
            {
                "step": h["step"],
                "epoch": h["epoch"],
                "dev_macro_f1": h["dev_macro_f1"],
                "dev_micro_f1": h["dev_micro_f1"],
            }
            for h in result.history
        ],
    )
    return record, predicted


def task_adapted(
    splits: Splits, dataset: str, preset: Preset, log: Callable[[str], None], work: Path = WORK
) -> tuple[str, dict[str, Any]]:
    """The "adapt to my texts" backbone: ``task_adapt_from`` after ``task_adapt_steps`` masked-LM steps on the
    training texts of ``splits`` (cached under ``runs/``); returns its directory and the re-warming summary."""
    directory = work / f"quality-{preset.name}" / f"{TASK_MLM}-{dataset}"
    summary_file = directory / "pretrain-summary.json"
    if summary_file.is_file():
        return str(directory), json.loads(summary_file.read_text(encoding="utf-8"))
    log(f"  re-warming {preset.task_adapt_from} on the {len(splits.train)} training texts of {dataset}")
    result = adapt_backbone(
        preset.task_adapt_from,
        [d.text for d in splits.train.documents],
        directory,
        steps=preset.task_adapt_steps,
        batch_size=preset.batch_size,
        max_length=preset.max_length,
        seed=preset.data_seed,
        provenance={"texts": f"{dataset} training split"},
        patience=6,  # as the preset's first runs were made
    )
    summary = {k: v for k, v in result.to_dict().items() if k != "history"} | {"from": preset.task_adapt_from}
    write_json(summary_file, summary, indent=1)
    return str(directory), summary
