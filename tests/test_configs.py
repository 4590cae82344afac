"""Tests of ``hpt_core.configs``: one declaration per setting gives its check, its strict dict form and its flag.

The last tests add a field to ``TrainConfig`` (a subclass put in its place) and follow it, untouched by any other
module, into the ``train`` command's flags, the app's job and ``train_config.json``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

import hpt_core.training
from app.config import AppConfig
from app.jobs import JobManager, JobRequest, job_configs
from app.registry import ModelRegistry
from hpt_core.cli import build_parser, main
from hpt_core.configs import (
    AT_LEAST_ONE,
    POSITIVE,
    Check,
    ConfigBase,
    add_config_arguments,
    check_config,
    config_from_args,
    config_values,
    setting,
)
from hpt_core.errors import ConfigError
from hpt_core.model import HPTConfig
from hpt_core.pretrain import PRETRAIN_DEFAULTS, pretrain_config
from hpt_core.training import CODE_FAITHFUL_TRAINING, TrainConfig


@dataclass
class Toy(ConfigBase):
    count: int = setting(2, "how many", check=AT_LEAST_ONE)
    rate: float | None = setting(None, "how fast", check=POSITIVE, label="the rate")
    mode: str = setting("a", "which mode", choices=("a", "b"))
    flag: bool = setting(False, "a switch")
    name: str = setting("x", "a name")

    def __post_init__(self) -> None:
        check_config(self)


def parse(argv: list[str], **options) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="toy", exit_on_error=False)
    add_config_arguments(parser, Toy, **options)
    return parser, parser.parse_args(argv)


def parse_error(capsys, argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="toy")
    add_config_arguments(parser, Toy)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ checks and dicts
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"count": 0}, "count must be at least 1, got 0."),
        ({"rate": -1.0}, "the rate must be positive, got -1.0."),
        ({"rate": float("inf")}, "the rate must be positive, got inf."),
        ({"mode": "c"}, "Unknown mode 'c'; choose one of a, b."),
        ({"count": "2"}, "Toy.count must be int, got '2'."),
        ({"flag": "false"}, "Toy.flag must be bool, got 'false'."),
        ({"rate": "fast"}, "Toy.rate must be float (or null), got 'fast'."),
    ],
)
def test_each_value_is_checked_from_its_declaration(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Toy(**values)
    assert str(info.value) == message


@pytest.mark.parametrize("config_class", [Toy, TrainConfig, HPTConfig])
def test_from_dict_is_strict_and_round_trips(config_class) -> None:
    config = config_class()
    assert config_class.from_dict(config.to_dict()) == config
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()  # JSON-ready
    with pytest.raises(ConfigError) as info:
        config_class.from_dict(config.to_dict() | {"colour": "red"})
    message = str(info.value)
    assert f"Unknown {config_class.__name__} field(s) ['colour']" in message
    assert all(f.name in message for f in fields(config_class))  # the valid fields are listed


def test_train_and_model_configs_round_trip_with_every_field_changed() -> None:
    train = TrainConfig(epochs=3, max_steps=9, batch_size=4, eval_batch_size=8, lr=1e-3, optimizer="adamw")
    train = TrainConfig.from_dict(train.to_dict() | {"weight_decay": 0.01, "grad_clip": 1.0, "patience": 2})
    train = TrainConfig.from_dict(train.to_dict() | {"seed": 7, "precision": "fp32", "eval_every": 5})
    train = TrainConfig.from_dict(train.to_dict() | CODE_FAITHFUL_TRAINING)
    assert TrainConfig.from_dict(json.loads(json.dumps(train.to_dict()))) == train
    assert train.early_stopping == "macro_or_micro" and train.weight_decay == 0.01
    model = HPTConfig.for_variant("hpt", ["bce"], code_faithful=True, max_length=64, graph_layers=2)
    assert HPTConfig.from_dict(json.loads(json.dumps(model.to_dict()))) == model


# ------------------------------------------------------------------------------------------------ flags
def test_flags_come_from_the_fields() -> None:
    parser, args = parse([])
    assert config_from_args(Toy, args) == Toy()  # nothing given: the dataclass defaults
    _, args = parse(["--count", "3", "--rate", "0.5", "--mode", "b", "--flag", "--name", "y"])
    assert config_from_args(Toy, args) == Toy(count=3, rate=0.5, mode="b", flag=True, name="y")
    _, args = parse(["--flag", "--no-flag"])
    assert config_from_args(Toy, args).flag is False
    text = parser.format_help()
    assert "--count COUNT" in text and "how many (default: 2)" in text and "--flag, --no-flag" in text
    assert "{a,b}" in text and "how fast" in text and "(default: None)" not in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--count", "0"], "argument --count: expected a positive whole number, got '0'"),
        (["--count", "two"], "argument --count: expected a positive whole number, got 'two'"),
        (["--count", "2.5"], "argument --count: expected a positive whole number, got '2.5'"),
        (["--rate", "-1"], "argument --rate: expected a positive number, got '-1'"),
        (["--rate", "nan"], "argument --rate: expected a positive number, got 'nan'"),
        (["--mode", "c"], "argument --mode: invalid choice: 'c'"),
    ],
)
def test_bad_flag_values_are_one_friendly_line(capsys, argv: list[str], message: str) -> None:
    err = parse_error(capsys, argv)
    assert message in err and "Traceback" not in err


def test_include_exclude_defaults_and_help_per_command() -> None:
    parser, args = parse(["--count", "4"], include=("count", "mode"))
    assert "--flag" not in parser.format_help() and "--name" not in parser.format_help()
    assert config_values(Toy, args) == {"count": 4}
    parser, _ = parse([], exclude=("flag",))
    assert "--flag" not in parser.format_help() and "--name" in parser.format_help()
    parser, args = parse([], defaults={"count": 5}, help={"count": "how many, here"})
    assert config_from_args(Toy, args).count == 5 and "how many, here (default: 5)" in parser.format_help()
    with pytest.raises(ConfigError, match=r"Toy has no field\(s\) \['colour'\]"):
        parse([], include=("colour",))


def test_a_preset_sits_between_the_defaults_and_the_flags_given() -> None:
    _, args = parse([], defaults={"count": 5})
    assert config_from_args(Toy, args, {"count": 7, "mode": "b"}) == Toy(count=7, mode="b")
    _, args = parse(["--count", "9"], defaults={"count": 5})
    assert config_from_args(Toy, args, {"count": 7}).count == 9  # what was typed wins


def test_the_train_command_has_a_flag_for_every_train_config_field(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    for name in [f.name for f in fields(TrainConfig)] + ["backbone", "max_length", "variant", "code_faithful"]:
        assert "--" + name.replace("_", "-") + " " in text, name
    assert "(default: 20)" in text and "(default: 0.0001)" in text and "(default: minilm-l6-mlm)" in text
    args = build_parser().parse_args(["train", "--data", "d.json", "--out", "o"])
    assert config_from_args(TrainConfig, args) == TrainConfig()  # the defaults: 20 epochs, batch 16, the CPU recipe ...
    assert config_values(HPTConfig, args) == {}  # backbone and max_length keep the HPTConfig defaults
    args = build_parser().parse_args(
        ["train", "--data", "d", "--out", "o", "--code-faithful", "--early-stopping", "macro"]
    )
    assert config_from_args(TrainConfig, args, CODE_FAITHFUL_TRAINING).early_stopping == "macro"  # typed beats preset


def test_the_pretrain_command_uses_the_pretraining_defaults() -> None:
    args = build_parser().parse_args(["pretrain", "--data", "d.txt", "--out", "o"])
    fixed = {k: PRETRAIN_DEFAULTS[k] for k in ("schedule", "warmup_ratio")}  # no flags: cmd_pretrain presets them
    config = config_from_args(TrainConfig, args, {"optimizer": "adamw"} | fixed)
    assert config == pretrain_config(optimizer="adamw")
    assert {k: getattr(config, k) for k in PRETRAIN_DEFAULTS if k != "max_length"} == {
        k: v for k, v in PRETRAIN_DEFAULTS.items() if k != "max_length"
    }
    assert args.max_length == PRETRAIN_DEFAULTS["max_length"] == 128
    assert (config.max_steps, config.epochs, config.lr, config.seed, config.eval_every) == (1000, 100, 1e-4, 0, 200)


# ------------------------------------------------------------------------------------------------ a new field
@dataclass
class WarmupTrainConfig(TrainConfig):
    """``TrainConfig`` as if a field had been added to it: nothing else is edited."""

    warmup_steps: int = setting(
        0, "steps of linear learning-rate warm-up", check=Check(lambda v: v >= 0, "zero or more", "a whole number ≥ 0")
    )


def test_a_new_train_config_field_reaches_the_cli_and_train_config_json(
    monkeypatch, capsys, save_tiny_backbone, wos_40_file: Path, tmp_path: Path
) -> None:
    monkeypatch.setattr(hpt_core.training, "TrainConfig", WarmupTrainConfig)
    backbone = save_tiny_backbone(max_position_embeddings=64)
    out = tmp_path / "ckpt"
    argv = ["train", "--data", str(wos_40_file), "--out", str(out), "--backbone", str(backbone), "--max-length", "32"]
    assert main([*argv, "--max-steps", "1", "--warmup-steps", "5"]) == 0, capsys.readouterr().err
    saved = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    assert saved["warmup_steps"] == 5
    config = WarmupTrainConfig.from_dict({f.name: saved[f.name] for f in fields(WarmupTrainConfig)})
    assert config == WarmupTrainConfig(max_steps=1, warmup_steps=5)  # the run's config, read back from the file
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*argv, "--warmup-steps", "-1"])
    assert "argument --warmup-steps: expected a whole number ≥ 0, got '-1'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="warmup_steps must be zero or more, got -1"):
        WarmupTrainConfig(warmup_steps=-1)


def test_a_new_train_config_field_reaches_the_apps_job(save_tiny_backbone, wos_40_file: Path, tmp_path: Path) -> None:
    backbone = str(save_tiny_backbone(max_position_embeddings=64))
    app = AppConfig(
        models={},
        user_dir=tmp_path / "models",
        backbones={"tiny": backbone},
        train=WarmupTrainConfig(epochs=1, batch_size=16, lr=1e-3, seed=0, warmup_steps=3),
        model=HPTConfig(backbone=backbone, max_length=32),
    )
    train, model = job_configs(app, "hpt", warmup_steps=4)  # a setting by its field name
    assert isinstance(train, WarmupTrainConfig) and train.warmup_steps == 4
    jobs = JobManager(ModelRegistry(app), app)
    jobs.start(JobRequest(wos_40_file, wos_40_file.name, train, model))
    state = jobs.wait(120)
    assert state.state == "finished", state.message
    saved = jobs.registry.train_config(state.model_name)
    assert saved["warmup_steps"] == 4 and saved["epochs"] == 1
