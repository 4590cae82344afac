"""Tests of the training recipe (issue 20, item 1): parameter groups with their own learning rates, warm-up and
schedules, named recipes (``--recipe paper``), the attention-dropout override and CPU bf16 autocast.

Adam's first update of an element is ``lr * g / (|g| + eps)``, about ``±lr`` wherever the gradient is not tiny, so
after ONE step the largest movement in a group is its learning rate: that is how the group tests read the rates off
the weights themselves.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import hpt_core.device as device_module
from hpt_core.backbones import attention_dropout_modules
from hpt_core.cli import main
from hpt_core.data import Dataset, Document
from hpt_core.device import autocast
from hpt_core.errors import ConfigError
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.model import HPTConfig, HPTModel
from hpt_core.pretrain import pretrain, pretrain_config
from hpt_core.training import (
    RECIPES,
    Evaluation,
    TrainConfig,
    TrainResult,
    fit,
    lr_factor,
    parameter_groups,
    train,
)

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


@pytest.fixture
def tiny_train(tiny_docs, tiny_tree: LabelHierarchy) -> Dataset:
    documents = [Document(t, tiny_tree.closure([tiny_tree.index(p)]), line=k + 1) for k, (t, p) in enumerate(tiny_docs)]
    return Dataset(documents, tiny_tree, "tiny")


def snapshot(module: torch.nn.Module) -> dict[int, torch.Tensor]:
    return {id(p): p.detach().clone() for p in module.parameters()}


def largest_moves(module: torch.nn.Module, before: dict[int, torch.Tensor]) -> dict[str, float]:
    """The largest |Δ| of any element in each parameter group."""
    return {
        name: max((float((p.detach() - before[id(p)]).abs().max()) for p in params), default=0.0)
        for name, params in parameter_groups(module).items()
    }


# ------------------------------------------------------------------------------------------------ parameter groups
@pytest.mark.parametrize("variant", ["hpt", "finetune", "soft", "hard"])
def test_groups_split_the_models_parameters(make_model, variant: str):
    model = make_model(HPTConfig.for_variant(variant, max_length=64))
    groups = parameter_groups(model)
    assert set(groups) == {"new", "embeddings", "backbone"}
    named = dict(model.named_parameters())
    ids = [id(p) for params in groups.values() for p in params]
    assert sorted(ids) == sorted(id(p) for p in named.values())  # every parameter, once
    assert groups["embeddings"] == [model.word_embeddings.weight]
    assert model.head_decoder()[0] is model.word_embeddings.weight  # the tied decoder follows the embeddings
    new = {name for name, p in named.items() if any(p is q for q in groups["new"])}
    assert all(not name.startswith("backbone.") for name in new)
    expected = {
        "hpt": {"template_words", "pred_embedding", "verbalizer.label_words", "verbalizer.bias"},
        "finetune": {"verbalizer.weight", "verbalizer.bias"},
        "soft": {"template_words", "verbalizer.label_words", "verbalizer.bias"},
        "hard": {"verbalizer.bias"},
    }[variant]
    assert expected <= new
    assert (variant == "hpt") == any(name.startswith("graph.") for name in new)


def test_each_group_moves_by_its_own_learning_rate(make_model, tiny_train):
    model = make_model(HPTConfig(max_length=64))
    before = snapshot(model)
    config = TrainConfig(max_steps=1, batch_size=7, lr=1e-4, lr_new=1e-2, lr_embeddings=1e-3, device="cpu")
    result = train(model, tiny_train, None, config)
    moves = largest_moves(model, before)
    assert moves["new"] == pytest.approx(1e-2, rel=2e-2)
    assert moves["embeddings"] == pytest.approx(1e-3, rel=2e-2)
    assert moves["backbone"] == pytest.approx(1e-4, rel=2e-2)
    assert result.steps == 1


def test_a_zero_rate_freezes_the_embeddings_even_under_weight_decay(make_model, tiny_train):
    model = make_model(HPTConfig(max_length=64))
    before = snapshot(model)
    config = TrainConfig(
        max_steps=2,
        batch_size=4,
        lr=1e-4,
        lr_new=1e-3,
        lr_embeddings=0.0,
        optimizer="adamw",
        weight_decay=0.1,
        schedule="constant",
        warmup_ratio=0.0,
    )
    events: list[Any] = []
    result = train(model, tiny_train, tiny_train, config, events.append)
    words = model.word_embeddings.weight
    assert torch.equal(words.detach(), before[id(words)])  # not one element moved: no update, no decay
    assert torch.equal(model.head_decoder()[0].detach(), before[id(words)])  # nor the decoder tied to it
    moves = largest_moves(model, before)
    assert moves["new"] > 5e-4 and moves["backbone"] > 5e-5
    assert words.requires_grad  # the freeze lasts for the run only
    assert result.history[-1]["lr"] == {"new": 1e-3, "backbone": 1e-4}  # a frozen group is not in the optimizer


def test_the_paper_recipe_gives_every_group_the_one_rate(make_model, tiny_train):
    model = make_model(HPTConfig(max_length=64))
    before = snapshot(model)
    train(model, tiny_train, None, TrainConfig(max_steps=1, batch_size=7, **(RECIPES["paper"] | {"lr": 1e-3})))
    assert all(move == pytest.approx(1e-3, rel=2e-2) for move in largest_moves(model, before).values())


def test_a_plain_backbone_has_no_new_parameters_and_can_freeze_its_embeddings(make_backbone, tiny_tokenizer, tiny_docs):
    backbone = make_backbone(0)
    groups = parameter_groups(backbone)
    assert groups["new"] == [] and groups["embeddings"] == [backbone.get_input_embeddings().weight]
    before = snapshot(backbone)
    texts = [text for text, _ in tiny_docs]  # fewer than 20: no held-out set, no evaluation
    result = pretrain(backbone, tiny_tokenizer, texts, pretrain_config(max_steps=1, lr_embeddings=0.0))
    assert result.steps == 1
    moves = largest_moves(backbone, before)
    assert moves["embeddings"] == 0.0 and moves["backbone"] == pytest.approx(1e-4, rel=2e-2)


def test_every_group_frozen_is_refused(make_model, tiny_train):
    model = make_model(HPTConfig(max_length=64))
    for p in model.backbone.parameters():
        if p is not model.word_embeddings.weight:
            p.requires_grad_(False)
    with pytest.raises(ConfigError, match="Every parameter is frozen"):
        train(model, tiny_train, None, TrainConfig(max_steps=1, lr_new=0.0, lr_embeddings=0.0))


# ------------------------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        # steps 0 (first update), 9 (last warm-up update), 10 (first after it), 55 (middle), 99 (last), 100 (after)
        ("constant", [0.1, 1.0, 1.0, 1.0, 1.0, 1.0]),
        ("linear", [0.1, 1.0, 1.0, 0.5, 1 / 90, 0.0]),
        ("cosine", [0.1, 1.0, 1.0, 0.5, 0.5 * (1 + math.cos(math.pi * 89 / 90)), 0.0]),
    ],
)
def test_schedules_give_the_expected_factor_at_chosen_steps(schedule: str, expected: list[float]):
    got = [lr_factor(step, 100, schedule, warmup_ratio=0.1) for step in (0, 9, 10, 55, 99, 100)]
    assert got == pytest.approx(expected, abs=1e-12)
    assert lr_factor(0, 100, schedule) == 1.0  # without warm-up the first update runs at the full rate


def test_schedule_rejects_unknown_names():
    with pytest.raises(ConfigError, match="Unknown schedule 'step'"):
        lr_factor(0, 10, "step")


class _OneWeight(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, batch: torch.Tensor) -> Any:
        return SimpleNamespace(loss=(self.w * batch).pow(2).sum(), loss_parts={})


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_the_loop_steps_the_schedule_once_per_update(schedule: str):
    """The history holds each group's rate for the next update: after ``s`` updates, ``lr * lr_factor(s)``."""
    step = iter(range(1, 100))

    def evaluate() -> Evaluation:
        return Evaluation(next(step) / 100, 0.0, None, "rising")  # always a gain: no early stop

    config = TrainConfig(
        max_steps=10, epochs=10, eval_every=1, batch_size=1, lr=0.1, schedule=schedule, warmup_ratio=0.2, patience=1
    )
    result = fit(_OneWeight(), lambda g: iter([torch.ones(1)]), 1, evaluate, config)
    assert [h["step"] for h in result.history] == list(range(1, 11))
    got = [h["lr"]["backbone"] for h in result.history]
    assert got == pytest.approx([0.1 * lr_factor(s, 10, schedule, 0.2) for s in range(1, 11)], abs=1e-12)
    assert got[0] == pytest.approx(0.1)  # the second and last warm-up update (W = 2) is at the full rate
    if schedule != "constant":
        assert got[-1] == 0.0


# ------------------------------------------------------------------------------------------------ recipes
def test_the_paper_recipe_is_the_papers_training():
    paper = TrainConfig(**RECIPES["paper"])
    assert (paper.optimizer, paper.lr, paper.schedule, paper.warmup_ratio, paper.patience) == (
        "adam",
        3e-5,
        "constant",
        0.0,
        6,
    )
    assert paper.lr_new is None and paper.lr_embeddings is None  # one rate for every parameter


def test_a_recipe_round_trips_through_json():
    config = TrainConfig(lr=5e-5, lr_new=1e-3, lr_embeddings=0.0, schedule="cosine", warmup_ratio=0.1)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_recipe_paper_reaches_train_config_json(capsys, save_tiny_backbone, wos_40_file: Path, tmp_path: Path):
    backbone = save_tiny_backbone(max_position_embeddings=64)
    out = tmp_path / "ckpt"
    argv = ["train", "--data", str(wos_40_file), "--out", str(out), "--backbone", str(backbone), "--max-length", "32"]
    argv += ["--recipe", "paper", "--max-steps", "1", "--lr-new", "1e-3", "--schedule", "linear"]
    argv += ["--attention-dropout", "0"]
    assert main(argv) == 0, capsys.readouterr().err
    saved = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    assert saved["recipe"] == "paper"
    config = TrainConfig.from_dict({k: saved[k] for k in TrainConfig().to_dict()})
    # the recipe's values, then the flags typed (they win over the recipe)
    assert config == TrainConfig(**(RECIPES["paper"] | {"max_steps": 1, "lr_new": 1e-3, "schedule": "linear"}))
    model = HPTModel.from_pretrained(out)
    assert model.config.attention_dropout == 0.0
    assert all(m.p == 0.0 for m in attention_dropout_modules(model.backbone))


# ------------------------------------------------------------------------------------------------ attention dropout
def test_attention_dropout_override_sets_only_the_attention_modules(make_model):
    default = make_model(HPTConfig(max_length=64))
    modules = attention_dropout_modules(default.backbone)
    assert len(modules) == 2 and all(m.p == 0.1 for m in modules)  # one per layer, the backbone's own 0.1
    off = make_model(HPTConfig(max_length=64, attention_dropout=0.0))
    assert all(m.p == 0.0 for m in attention_dropout_modules(off.backbone))
    assert off.backbone.config.attention_probs_dropout_prob == 0.0
    others = [m for m in off.backbone.modules() if isinstance(m, torch.nn.Dropout)]
    assert sum(m.p == 0.1 for m in others) == len(others) - 2  # hidden dropout is untouched
    with pytest.raises(ConfigError, match="attention_dropout must be"):
        HPTConfig(attention_dropout=1.5)


@pytest.mark.parametrize(("override", "deterministic"), [(None, False), (0.0, True)])
def test_attention_dropout_is_effective_in_training_mode(make_model, override, deterministic: bool):
    """With hidden dropout off, two training-mode forwards differ only through attention dropout."""
    model = make_model(HPTConfig(max_length=64, attention_dropout=override), hidden_dropout_prob=0.0)
    model.backbone.train()
    ids = torch.tensor([[2, 10, 11, 12, 13, 3]])
    first, second = (model.backbone(input_ids=ids).logits for _ in range(2))
    assert torch.equal(first, second) == deterministic


def test_a_saved_model_without_the_field_keeps_its_backbones_dropout(make_model, tmp_path: Path):
    model = make_model(HPTConfig(max_length=64))
    model.save_pretrained(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text(encoding="utf-8"))
    saved["hpt_config"].pop("attention_dropout")  # as checkpoints written before the field existed
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(saved), encoding="utf-8")
    loaded = HPTModel.from_pretrained(tmp_path / "ckpt")
    assert loaded.config.attention_dropout is None
    assert all(m.p == 0.1 for m in attention_dropout_modules(loaded.backbone))


def test_from_backbone_applies_the_override(save_tiny_backbone, tiny_tree):
    directory = str(save_tiny_backbone())
    model = HPTModel.from_backbone(HPTConfig(backbone=directory, max_length=64, attention_dropout=0.05), tiny_tree)
    assert [m.p for m in attention_dropout_modules(model.backbone)] == [0.05, 0.05]


# ------------------------------------------------------------------------------------------------ precision
def _encoder_dtype(model: HPTModel, run) -> torch.dtype:
    """The dtype of the first attention query projection's output while ``run()`` runs."""
    seen: list[torch.dtype] = []
    layer = model.backbone.bert.encoder.layer[0].attention.self.query
    handle = layer.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    try:
        run()
    finally:
        handle.remove()
    return seen[0]


def test_cpu_bf16_autocast_runs_the_forward_in_bf16(make_model, tiny_docs):
    model = make_model(HPTConfig(max_length=64)).eval()
    batch = model.encode([text for text, _ in tiny_docs])
    cpu = torch.device("cpu")
    with torch.no_grad():
        exact = model(batch).scores
        assert _encoder_dtype(model, lambda: model(batch)) == torch.float32
        with autocast(cpu, "bf16"):
            fast = model(batch).scores
            assert _encoder_dtype(model, lambda: model(batch)) == torch.bfloat16
        with autocast(cpu, "auto"):
            assert torch.equal(model(batch).scores, exact)  # auto keeps fp32 on the CPU
    assert not torch.equal(fast.float(), exact)  # rounded to bf16 ...
    assert torch.allclose(fast.float(), exact, atol=0.1)  # ... yet close


@pytest.mark.parametrize(
    ("precision", "native", "dtype"),
    [
        ("bf16", False, torch.bfloat16),
        ("fp32", True, torch.float32),
        ("auto", True, torch.bfloat16),  # a CPU with bf16 instructions: auto trains in bf16 ...
        ("auto", False, torch.float32),  # ... and in fp32 on one without (emulated bf16 is slower than fp32)
    ],
)
def test_training_on_cpu_autocasts_for_bf16_and_for_auto_where_native(
    make_model, tiny_train, monkeypatch, precision: str, native: bool, dtype: torch.dtype
):
    monkeypatch.setattr(device_module, "native_bf16", lambda device: native)  # the CPU's instructions, both ways
    model = make_model(HPTConfig(max_length=64))
    config = TrainConfig(max_steps=1, batch_size=7, device="cpu", precision=precision)
    seen: list[TrainResult] = []
    assert _encoder_dtype(model, lambda: seen.append(train(model, tiny_train, None, config))) == dtype
    assert seen[0].precision == ("bf16" if dtype == torch.bfloat16 else "fp32")  # recorded in metrics.json


def test_fp16_on_cpu_is_refused_before_training(make_model, tiny_train):
    model = make_model(HPTConfig(max_length=64))
    before = snapshot(model)
    with pytest.raises(ConfigError, match="precision fp16 is for GPUs; on the CPU use bf16"):
        train(model, tiny_train, None, TrainConfig(max_steps=1, device="cpu", precision="fp16"))
    assert largest_moves(model, before) == {"new": 0.0, "embeddings": 0.0, "backbone": 0.0}


def test_the_defaults_are_the_cpu_recipe_and_pretraining_keeps_its_constant_rate():
    from hpt_core.finetune import adaptation_config
    from hpt_core.pretrain import pretrain_config

    defaults = TrainConfig()
    assert {k: getattr(defaults, k) for k in RECIPES["cpu"]} == RECIPES["cpu"]
    assert (defaults.lr, defaults.lr_new, defaults.schedule, defaults.warmup_ratio) == (1e-4, 3e-3, "linear", 0.1)
    # re-warming a backbone is not prompt tuning: one rate, no warm-up, no decay, as the shipped backbone was trained
    for config in (pretrain_config(), adaptation_config(50)):
        assert (config.schedule, config.warmup_ratio) == ("constant", 0.0)
