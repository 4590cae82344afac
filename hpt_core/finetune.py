"""One fine-tuning job from data files to a saved checkpoint: splits, training, evaluation, saving.

The CLI's ``train`` command and the app's fine-tune panel both call ``prepare_splits`` then ``finetune``, so a model
trained in the browser and one trained on the command line carry the same files and the same metrics.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpt_core.atomic import check_target
from hpt_core.backbones import load_backbone
from hpt_core.data import Dataset, load_dataset, low_resource, read_records, split_dataset, strip_newsgroup_texts
from hpt_core.distributed import current
from hpt_core.errors import ConfigError
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.inference import metrics_entry
from hpt_core.label_names import LabelName, load_label_names
from hpt_core.model import HPTConfig, HPTModel
from hpt_core.pretrain import PRETRAIN_DEFAULTS, pretrain, save_backbone
from hpt_core.training import TrainConfig, TrainProgress, TrainResult, set_seed, train
from hpt_core.weights import check_weights

__all__ = [
    "Splits",
    "FinetuneResult",
    "prepare_splits",
    "finetune",
    "adapt_backbone",
    "adaptation_config",
    "training_summary",
    "to_jsonl",
]


@dataclass
class Splits:
    """Train/dev/test sets on one hierarchy, and a sentence saying where the split came from."""

    train: Dataset
    dev: Dataset
    test: Dataset
    origin: str

    def summary(self) -> str:
        h = self.train.hierarchy
        return (
            f"{len(self.train)} train / {len(self.dev)} dev / {len(self.test)} test documents ({self.origin}); "
            f"{h.num_labels} labels in {h.num_levels} levels."
        )


@dataclass
class FinetuneResult:
    """What ``finetune`` returns: where the checkpoint went, its metrics (as in ``metrics.json``) and the run."""

    directory: Path | None  # None when the job was cancelled before anything was saved
    metrics: dict[str, Any]
    run: TrainResult
    model: HPTModel  # the trained model, holding its best dev state


def prepare_splits(
    data: str | Path,
    hierarchy_file: str | Path | None = None,
    dev: str | Path | None = None,
    test: str | Path | None = None,
    split_seed: int = 0,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    strip_newsgroup_headers: bool = False,
    source_name: str | None = None,
) -> Splits:
    """Read ``data`` (and optional ``dev``/``test`` files) on one hierarchy and split what is not given.

    The hierarchy is ``hierarchy_file`` when given, else the union of the label paths of all files. Splits named in
    the data (a ``split`` field) are kept; missing dev/test sets are carved from train (seeded, stratified).
    ``source_name`` replaces the file path in the origin sentence (the app shows the upload's name, not a temp path).
    """
    files = [f for f in (data, dev, test) if f]
    if hierarchy_file:
        hierarchy = LabelHierarchy.from_taxonomy(hierarchy_file)
    else:
        hierarchy = LabelHierarchy.from_paths(p for f in files for r in read_records(f) for p in r.paths)
    full = load_dataset(data, hierarchy=hierarchy)
    if strip_newsgroup_headers:
        full = strip_newsgroup_texts(full)
    train_set, dev_set, test_set = split_dataset(
        full, 0.0 if dev else dev_fraction, 0.0 if test else test_fraction, seed=split_seed
    )
    origin = f"seeded split of {source_name or data} (seed {split_seed})"
    if dev:
        dev_set = load_dataset(dev, hierarchy=hierarchy)
        dev_set = strip_newsgroup_texts(dev_set) if strip_newsgroup_headers else dev_set
    if test:
        test_set = load_dataset(test, hierarchy=hierarchy)
        test_set = strip_newsgroup_texts(test_set) if strip_newsgroup_headers else test_set
    if dev and test:
        origin = "given dev and test files"
    if len(train_set) == 0:
        raise ConfigError(
            f"{source_name or data}: no training documents after splitting; give more data or separate dev/test files."
        )
    return Splits(train_set, dev_set, test_set, origin)


def training_summary(run: TrainResult, splits: Splits) -> dict[str, Any]:
    """The ``training`` block of ``metrics.json``: steps, time, device, split sizes, label counts, history."""
    h = splits.train.hierarchy
    counts = splits.train.label_counts()
    return {
        "steps": run.steps,
        "best_step": run.best_step,
        "epochs_run": round(run.epochs_run, 3),
        "seconds": round(run.seconds, 1),
        "stopped_early": run.stopped_early,
        "cancelled": run.cancelled,
        "device": run.device,
        "precision": run.precision,
        "processes": run.processes,
        "train_documents": len(splits.train),
        "dev_documents": len(splits.dev),
        "test_documents": len(splits.test),
        "splits": splits.origin,
        "label_counts": {h.path_string(i): c for i, c in enumerate(counts)},
        "history": run.history,
    }


def finetune(
    splits: Splits,
    model_config: HPTConfig,
    train_config: TrainConfig,
    out: str | Path | None,
    provenance: dict[str, Any] | None = None,
    callback: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
    weights: str = "float32",
    overwrite: bool = False,
    low_resource_fraction: float | None = None,
    save_if_cancelled: bool = False,
    description: str | None = None,
    save_test_split: bool = False,
    backbone_label: str | None = None,
    label_names: str | Path | Mapping[int, LabelName] | None = None,
) -> FinetuneResult:
    """Train a fresh model on ``splits``, evaluate it on dev and test, and save it to ``out`` with its metrics.

    The test metrics carry ``top_level_confusion`` (gold top-level label → predicted top-level labels). A cancelled
    run is saved only with ``save_if_cancelled`` (the best state so far); ``out=None`` saves nothing.
    ``save_test_split`` stores the test documents as ``test.jsonl`` beside the weights (the app's Evaluate tab).
    ``backbone_label`` replaces the backbone name recorded in the checkpoint (e.g. for a temporary adapted backbone
    directory; the checkpoint holds every weight, so it never needs that directory again; ``float16-delta`` weights,
    which do need it, are refused). A non-empty ``out`` (without ``overwrite``) or a ``weights`` storage that cannot
    be used is refused before training starts.
    ``label_names`` (a label-names file, or ``load_label_names``' result) gives the display names the label words
    start from; they are saved in the checkpoint as ``label_names.json``. A file is checked before training starts.
    """
    # Everything that would refuse the save is checked now, so that no training is lost at the end.
    if out is not None:
        check_target(out, overwrite)
        if weights == "float16-delta" and backbone_label is not None:
            raise ConfigError(
                f"float16-delta storage needs the backbone file the model was trained from, and this run's backbone "
                f"({model_config.backbone}) is a temporary directory; use weights float16 or float32."
            )
        check_weights(weights, model_config.backbone)
    train_set = splits.train
    if isinstance(label_names, (str, Path)):
        label_names = load_label_names(label_names, train_set.hierarchy)
    if low_resource_fraction is not None:
        train_set = low_resource(train_set, low_resource_fraction, seed=train_config.seed)
        splits = Splits(train_set, splits.dev, splits.test, splits.origin)
    set_seed(train_config.seed)  # the new parameters (graph, label words, classifier) are drawn from the run seed
    model = HPTModel.from_backbone(model_config, train_set.hierarchy, label_names)
    dev_set = splits.dev if len(splits.dev) else None
    run = train(model, train_set, dev_set, train_config, callback=callback, cancel=cancel)
    if backbone_label is not None:
        model.config.backbone = backbone_label

    def evaluate_and_save() -> tuple[dict[str, Any], Path | None]:
        counts = train_set.label_counts()
        metrics: dict[str, Any] = {}
        if not run.cancelled or save_if_cancelled:
            if len(splits.dev):
                metrics["dev"] = metrics_entry(model, splits.dev, train_config.eval_batch_size, counts)
            if len(splits.test):
                metrics["test"] = metrics_entry(
                    model, splits.test, train_config.eval_batch_size, counts, confusion=True
                )
        metrics["training"] = training_summary(run, splits)
        if out is None or (run.cancelled and not save_if_cancelled):
            return metrics, None
        config = train_config.to_dict() | {"variant": model_config.variant_name} | dict(provenance or {})
        extra = {"test.jsonl": to_jsonl(splits.test)} if save_test_split and len(splits.test) else None
        directory = model.save_pretrained(
            out,
            metrics=metrics,
            train_config=config,
            overwrite=overwrite,
            weights=weights,
            description=description,
            extra_files=extra,
        )
        return metrics, directory

    # Under several processes (accelerate launch) only the main one evaluates and writes; all get its result.
    metrics, directory = current().on_main(evaluate_and_save)
    return FinetuneResult(directory, metrics, run, model)


def adapt_backbone(
    backbone: str,
    texts: list[str],
    out: str | Path,
    steps: int,
    max_length: int = PRETRAIN_DEFAULTS["max_length"],
    callback: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
    provenance: dict[str, Any] | None = None,
    **settings: Any,
) -> Any:
    """Adapt the backbone to my texts: ``steps`` of continued masked-LM training of ``backbone`` on ``texts`` (give
    training texts only, never test ones), saved as a backbone directory at ``out`` unless cancelled. The state
    with the best held-out masked top-1 is kept, evaluated once per epoch.

    ``settings`` are ``TrainConfig`` fields by name (``batch_size``, ``lr``, ``seed``, ...), on top of
    ``adaptation_config(steps)``: the batch size, learning rate and seed of ``PRETRAIN_DEFAULTS``, and a ``patience``
    of ``steps``, so the run never stops early unless given a smaller one.

    Returns the ``hpt_core.pretrain.PretrainResult`` (held-out masked top-1 before and after).
    """
    config = adaptation_config(steps, **settings)
    tokenizer, model = load_backbone(backbone)
    result = pretrain(model, tokenizer, texts, config, max_length, callback=callback, cancel=cancel)
    if not result.cancelled:
        info = {"backbone": backbone, "steps": steps, "max_length": max_length, "lr": config.lr, "seed": config.seed}
        provenance = info | dict(provenance or {})
        current().on_main(lambda: save_backbone(model, tokenizer, out, result, provenance, overwrite=True))
    return result


def adaptation_config(steps: int, **settings: Any) -> TrainConfig:
    """The ``TrainConfig`` of ``adapt_backbone``: bounded by ``steps`` alone (checked as ``max_steps``), with the
    pretraining batch size, learning rate, schedule and seed; ``settings`` override any field."""
    values = {k: PRETRAIN_DEFAULTS[k] for k in ("batch_size", "lr", "seed", "schedule", "warmup_ratio")}
    return TrainConfig(**(values | {"epochs": 10_000, "patience": steps} | settings | {"max_steps": steps}))


def to_jsonl(dataset: Dataset) -> str:
    """The documents as JSON lines ``{"text", "labels"}`` (labels as paths), readable by ``load_dataset``."""
    h = dataset.hierarchy
    lines = []
    for doc in dataset.documents:
        chosen = set(doc.labels)
        ends = [i for i in doc.labels if not any(c in chosen for c in h.children(i))]
        lines.append(json.dumps({"text": doc.text, "labels": [h.path(i) for i in ends]}, ensure_ascii=False))
    return "\n".join(lines) + "\n"
