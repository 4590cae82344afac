"""Running a preset: every run missing from its results file, in priority order, each saved as soon as it ends."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import RESULTS, WORK
from benchmarks.quality.classical import run_classical, run_setfit
from benchmarks.quality.methods import NEURAL, TASK_MLM
from benchmarks.quality.neural import run_neural, task_adapted
from benchmarks.quality.presets import JOB_FIELDS, Preset, jobs
from benchmarks.quality.results import load_predictions, load_results, predictions_path, results_path, run_key, save
from benchmarks.quality.splits import load_splits


def _environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_benchmark(
    preset: Preset,
    directory: Path = RESULTS,
    max_runs: int | None = None,
    only: Callable[[str, str, str, int], bool] | None = None,
    log: Callable[[str], None] = print,
    work: Path = WORK,
) -> dict[str, Any]:
    """Run every job of ``preset`` missing from its results file; returns the results. Resumable."""
    path, pred_path = results_path(preset.name, directory), predictions_path(preset.name, directory)
    results = load_results(path)
    stored = results.get("preset")
    current = json.loads(json.dumps(preset.to_dict()))
    changed = [k for k, v in current.items() if k not in JOB_FIELDS and stored and k in stored and stored[k] != v]
    if changed:
        raise SystemExit(
            f"{path} was produced with other settings of preset {preset.name!r} ({', '.join(changed)}); move it away "
            "to start afresh."
        )
    results["preset"] = preset.to_dict()
    predictions = load_predictions(pred_path)
    done = {run_key(r["dataset"], r["method"], r["backbone"], r["seed"]) for r in results["runs"]}
    todo = [j for j in jobs(preset) if run_key(*j) not in done and (only is None or only(*j))]
    if max_runs is not None:
        todo = todo[:max_runs]
    if not todo:
        return results
    splits = load_splits(preset)
    results["splits"] = {
        name: {
            "note": s.origin,
            "train": len(s.train),
            "dev": len(s.dev),
            "test": len(s.test),
            "labels": s.train.hierarchy.num_labels,
            "levels": s.train.hierarchy.num_levels,
        }
        for name, s in splits.items()
    }
    results["environment"] = _environment()
    for name, s in splits.items():
        predictions["gold"][name] = [d.labels for d in s.test.documents]
    for n, (dataset, method, backbone, seed) in enumerate(todo, 1):
        log(f"[{time.strftime('%H:%M:%S')}] run {n}/{len(todo)}: {dataset} {method} backbone={backbone} seed={seed}")
        if method == "setfit":
            record, predicted = run_setfit(splits[dataset], backbone, seed, preset, log)
        elif method in NEURAL:
            source = backbone
            if backbone == TASK_MLM:
                source, summary = task_adapted(splits[dataset], dataset, preset, log, work)
                results.setdefault("task_adapt", {})[dataset] = summary
            record, predicted = run_neural(splits[dataset], dataset, method, source, seed, preset, log)
        else:
            record, predicted = run_classical(splits[dataset], method, backbone, preset, log)
        record = {"dataset": dataset, "method": method, "backbone": backbone, "seed": seed, **record}
        log(
            f"  -> test micro-F1 {100 * record['micro_f1']:.2f} %, macro-F1 {100 * record['macro_f1']:.2f} %, "
            f"{record['train_seconds']:.0f} s"
        )
        results["runs"].append(record)
        predictions["runs"][run_key(dataset, method, backbone, seed)] = predicted
        results, predictions = save(path, results, pred_path, predictions)
    return results
