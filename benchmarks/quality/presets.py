"""The presets of the quality benchmark (every setting of one benchmark), the runs each one asks for in priority
order, and ``--set FIELD=VALUE`` variants for investigations."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from benchmarks.quality.methods import ABLATION_METHODS, CLASSICAL, DATASETS, NEURAL, TASK_MLM
from hpt_core.model import HPTConfig
from hpt_core.training import CODE_FAITHFUL_TRAINING, TrainConfig

# Preset fields that only choose which runs exist; changing them keeps earlier runs valid.
JOB_FIELDS = {
    "sentence_baselines",
    "seeds",
    "core_methods",
    "other_methods",
    "ablations",
    "ablation_datasets",
    "classical",
    "datasets",
    "backbones",
    "task_adapt",
}


@dataclass(frozen=True)
class Preset:
    """Every setting of one benchmark; saved in the results file so numbers always come with their settings."""

    name: str
    backbones: tuple[str, ...]  # the first one is the primary backbone (all methods); the others run core methods
    embedding_backbone: str  # the sentence-embedding model behind ``emb-lr`` (the raw backbone)
    seeds: tuple[int, ...] = (0, 1, 2)
    core_methods: tuple[str, ...] = ("hpt", "finetune")
    other_methods: tuple[str, ...] = ("hard", "soft", "hpt-code")
    ablations: tuple[str, ...] = ABLATION_METHODS
    ablation_datasets: tuple[str, ...] = ("wos-1k",)
    classical: tuple[str, ...] = CLASSICAL
    datasets: tuple[str, ...] = DATASETS
    max_length: int = 128
    batch_size: int = 16
    lr: float = 1e-4
    # the training recipe (TrainConfig / HPTConfig fields of the same names; None = the library's own default)
    lr_new: float | None = None
    lr_embeddings: float | None = None
    schedule: str = "constant"
    warmup_ratio: float = 0.0
    attention_dropout: float | None = None
    precision: str = "fp32"  # TrainConfig.precision; fp32: the same numbers on every CPU (auto is bf16 on some)
    epochs: dict[str, int] = field(default_factory=lambda: {"20ng-10pct": 3, "wos-1k": 6})
    patience: int = 6
    news_fraction: float = 0.1  # of the standard 20NG training split, stratified
    news_dev: int = 500  # dev documents carved from the rest of the 20NG training split
    news_test: int | None = 2000  # a stratified sample of the 20NG test split; None = the whole split
    wos_dev: float = 0.1
    wos_test: float = 0.2
    limit: int | None = None  # cap every split at this many documents (the tiny CI preset)
    data_seed: int = 0
    lr_grid: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)  # C of the logistic regressions, chosen on dev macro-F1
    task_adapt: tuple[str, ...] = ("wos-1k",)  # datasets where the raw backbone is also re-warmed on the train texts
    task_adapt_steps: int = 300  # masked-LM steps of that "adapt to my texts" re-warming (batch_size, max_length)
    task_adapt_from: str = "minilm-l6"  # the backbone that re-warming starts from
    sentence_baselines: tuple[str, ...] = ("setfit",)  # seeded baselines on the sentence-embedding backbone
    setfit_iterations: int = 1  # SetFit contrastive pairs per training text and class side (CPU budget)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model_config(self, method: str, backbone: str) -> HPTConfig:
        """The model of one neural run: the method's variant, ablations and code-faithful deviations on ``backbone``."""
        variant, ablations, code_faithful = NEURAL[method]
        return HPTConfig.for_variant(
            variant,
            list(ablations),
            code_faithful=code_faithful,
            backbone=backbone,
            max_length=self.max_length,
            attention_dropout=self.attention_dropout,
        )

    def train_config(self, dataset: str, method: str, seed: int) -> TrainConfig:
        """The training settings of one neural run (the official code's loop for the code-faithful method)."""
        code_faithful = NEURAL[method][2]
        return TrainConfig(
            epochs=self.epochs[dataset],
            batch_size=self.batch_size,
            lr=self.lr,
            lr_new=self.lr_new,
            lr_embeddings=self.lr_embeddings,
            schedule=self.schedule,
            warmup_ratio=self.warmup_ratio,
            precision=self.precision,
            patience=self.patience,
            seed=seed,
            **(CODE_FAITHFUL_TRAINING if code_faithful else {}),
        )


PRESETS: dict[str, Preset] = {
    "cpu": Preset("cpu", backbones=("minilm-l6-mlm", "minilm-l6"), embedding_backbone="minilm-l6"),
    "full": Preset(
        "full",
        backbones=("bert-base-uncased",),
        embedding_backbone="minilm-l6",
        max_length=512,
        lr=3e-5,
        epochs={"20ng-10pct": 20, "wos-1k": 20},
        news_fraction=1.0,
        news_dev=1000,
        news_test=None,
    ),
}


def jobs(preset: Preset) -> Iterator[tuple[str, str, str, int]]:
    """(dataset, method, backbone, seed) in priority order: each seed of the main comparison before the next."""
    primary = preset.backbones[0]
    for dataset in preset.datasets:
        for method in preset.classical:
            backbone = preset.embedding_backbone if method == "emb-lr" else "-"
            yield dataset, method, backbone, preset.data_seed
    stages = [  # (datasets, (method, backbone) pairs), each stage seed by seed
        (preset.datasets, [(m, b) for b in preset.backbones for m in preset.core_methods]),
        (preset.task_adapt, [(m, TASK_MLM) for m in preset.core_methods]),
        (preset.datasets, [(m, preset.embedding_backbone) for m in preset.sentence_baselines]),
        (preset.datasets, [(m, primary) for m in preset.other_methods]),
        (preset.ablation_datasets, [(m, primary) for m in preset.ablations]),
    ]
    for datasets, pairs in stages:
        for seed in preset.seeds:
            for dataset in datasets:
                for method, backbone in pairs:
                    yield dataset, method, backbone, seed


def _literal(raw: str) -> Any:
    """A number, ``None`` (``null``/``None``) or else the string itself."""
    if raw in ("None", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def preset_variant(preset: Preset, changes: list[str]) -> Preset:
    """``preset`` with ``FIELD=VALUE`` changes (``epochs.DATASET=N`` for one dataset), under a name listing them."""
    values: dict[str, Any] = {}
    for change in changes:
        key, sep, raw = change.partition("=")
        field_name, _, sub = key.partition(".")
        if not sep or field_name not in preset.to_dict() or field_name == "name":
            valid = ", ".join(k for k in preset.to_dict() if k != "name")
            raise SystemExit(f"--set {change!r}: expected FIELD=VALUE with FIELD one of {valid}.")
        current = getattr(preset, field_name)
        if sub:
            values[field_name] = {**values.get(field_name, current), sub: _literal(raw)}
        elif isinstance(current, tuple):
            values[field_name] = tuple(_literal(x) for x in raw.split(",") if x)
        else:
            values[field_name] = _literal(raw)
    return replace(preset, name=preset.name + "+" + "+".join(sorted(changes)), **values)
