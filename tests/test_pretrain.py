"""Continued masked-LM training ("re-warming"): objective, loop, saved directory and the ``pretrain`` command."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from test_cli import call  # the CLI runner shared with the CLI tests
from transformers import AutoModelForMaskedLM

from hpt_core.backbones import REWARMED_BACKBONE, SHIPPED_DIR, load_backbone, resolve_backbone
from hpt_core.errors import BackboneError, ConfigError
from hpt_core.losses import mask_tokens
from hpt_core.pretrain import MaskedLMObjective, masked_accuracy, pretrain, pretrain_config, save_backbone
from hpt_core.resume import has_state, read_info, resume_directory
from hpt_core.training import TrainConfig


@pytest.fixture
def texts(wos_docs) -> list[str]:
    return [text for text, _ in wos_docs]


def test_training_lowers_the_mlm_loss_on_a_fixed_batch(make_backbone, tiny_tokenizer, texts):
    backbone = make_backbone(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    objective = MaskedLMObjective(backbone, tiny_tokenizer, max_length=64)
    batch = objective.encode(texts[:8])

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(objective(batch, generator=torch.Generator().manual_seed(7), evaluation=True).loss)

    before = fixed_loss()
    config = TrainConfig(max_steps=30, batch_size=8, lr=3e-3, schedule="constant", warmup_ratio=0.0)
    result = pretrain(backbone, tiny_tokenizer, texts, config, max_length=64)
    assert result.steps == 30
    assert fixed_loss() < before - 1.0
    assert result.masked_top1_after > result.masked_top1_before
    assert result.train_texts + result.heldout_texts == len(texts) and result.heldout_texts == 2


def test_only_masked_positions_reach_the_head(make_backbone, tiny_tokenizer, texts):
    objective = MaskedLMObjective(make_backbone(), tiny_tokenizer, max_length=64)
    batch = objective.encode(texts[:4])
    seen: list[torch.Size] = []
    transform = objective.backbone.cls.predictions.transform
    handle = transform.register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    out = objective(batch, generator=torch.Generator().manual_seed(0))
    handle.remove()
    n_masked = out.targets.numel()
    assert 0 < n_masked < int(batch.text_mask.sum())
    assert seen == [torch.Size([n_masked, 32])]  # (M, d), never (B, S, d)
    assert out.logits.shape == (n_masked, len(tiny_tokenizer))


def test_masking_stays_on_text_and_evaluation_masks_every_chosen_token(make_backbone, tiny_tokenizer, texts):
    objective = MaskedLMObjective(make_backbone(), tiny_tokenizer, max_length=64)
    batch = objective.encode(texts[:8])
    masked = mask_tokens(
        batch.input_ids,
        batch.text_mask,
        tiny_tokenizer.mask_token_id,
        objective.replacement_ids,
        0.15,
        generator=torch.Generator().manual_seed(1),
        mask_fraction=1.0,
        random_fraction=0.0,
    )
    assert batch.text_mask[masked.positions[:, 0], masked.positions[:, 1]].all()
    assert (masked.input_ids[masked.positions[:, 0], masked.positions[:, 1]] == tiny_tokenizer.mask_token_id).all()
    untouched = torch.ones_like(batch.text_mask)
    untouched[masked.positions[:, 0], masked.positions[:, 1]] = False
    assert torch.equal(masked.input_ids[untouched], batch.input_ids[untouched])


def test_whole_word_masking_takes_every_piece_of_a_word(make_backbone, tiny_tokenizer):
    objective = MaskedLMObjective(make_backbone(), tiny_tokenizer, max_length=64, probability=0.5, whole_word=True)
    text = " ".join(["parenting studies"] * 10)  # "parent ##ing" in the tiny vocabulary
    batch = objective.encode([text])
    tokens = tiny_tokenizer.convert_ids_to_tokens(batch.input_ids[0].tolist())
    assert "##ing" in tokens
    starts = objective.word_start(batch)[0]
    for k, token in enumerate(tokens):
        if token == "##ing":
            assert starts[k] == k - 1 and tokens[k - 1] == "parent"
    for seed in range(5):
        masked = mask_tokens(
            batch.input_ids,
            batch.text_mask,
            tiny_tokenizer.mask_token_id,
            objective.replacement_ids,
            0.5,
            generator=torch.Generator().manual_seed(seed),
            word_start=starts[None],
        )
        chosen = set(masked.positions[:, 1].tolist())
        assert chosen
        for k, token in enumerate(tokens):
            if token == "##ing":
                assert (k in chosen) == (k - 1 in chosen)


def test_masked_accuracy_is_repeatable(make_backbone, tiny_tokenizer, texts):
    objective = MaskedLMObjective(make_backbone(), tiny_tokenizer, max_length=64)
    first = masked_accuracy(objective, texts[:10], batch_size=4, seed=3)
    assert first == masked_accuracy(objective, texts[:10], batch_size=4, seed=3)
    assert 0.0 <= first <= 1.0


def test_saved_fp16_directory_loads_in_fp32_and_runs(make_backbone, tiny_tokenizer, texts, tmp_path):
    backbone = make_backbone()
    result = pretrain(backbone, tiny_tokenizer, texts, TrainConfig(max_steps=2, batch_size=8, lr=1e-3), max_length=64)
    out = save_backbone(backbone, tiny_tokenizer, tmp_path / "mlm", result, {"data": "wos"}, fp16=True)
    assert next(backbone.parameters()).dtype == torch.float32  # the in-memory model is left in fp32
    loaded = AutoModelForMaskedLM.from_pretrained(str(out), dtype=torch.float32)
    assert next(loaded.parameters()).dtype == torch.float32
    for name, tensor in loaded.state_dict().items():
        assert torch.allclose(tensor, backbone.state_dict()[name].half().float()), name
    tokenizer, again = load_backbone(str(out))
    ids = tokenizer(texts[:2], return_tensors="pt", padding=True)
    assert torch.isfinite(again(**ids).logits).all()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "masked top-1" in card and json.loads((out / "pretrain.json").read_text())["fp16"] is True
    with pytest.raises(Exception, match="not empty"):
        save_backbone(backbone, tiny_tokenizer, out)


def test_rewarmed_alias_resolves_to_the_shipped_directory_and_loads_in_fp32():
    assert Path(resolve_backbone(REWARMED_BACKBONE)) == SHIPPED_DIR / REWARMED_BACKBONE
    tokenizer, model = load_backbone(REWARMED_BACKBONE)  # fp16 on disk
    assert model.config.hidden_size == 384
    assert all(p.dtype == torch.float32 for p in model.parameters())
    ids = tokenizer(["the patient was given a [MASK] dose of the drug"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    assert torch.isfinite(logits).all()


def test_missing_rewarmed_directory_is_a_backbone_error(monkeypatch, tmp_path):
    import hpt_core.backbones as backbones

    monkeypatch.setattr(backbones, "SHIPPED_DIR", tmp_path)  # as in an installed package: no checkout beside it
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(backbones.CHECKPOINTS_ENV, raising=False)
    with pytest.raises(BackboneError, match="HPT_STUDIO_CHECKPOINTS.*pretrain"):
        resolve_backbone(REWARMED_BACKBONE)


def test_rewarmed_backbone_found_through_the_checkpoints_variable(monkeypatch, tmp_path):
    import hpt_core.backbones as backbones

    monkeypatch.setattr(backbones, "SHIPPED_DIR", tmp_path / "none")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(backbones.CHECKPOINTS_ENV, str(SHIPPED_DIR))
    assert Path(resolve_backbone(REWARMED_BACKBONE)) == SHIPPED_DIR / REWARMED_BACKBONE


def test_pretrain_rejects_no_texts(make_backbone, tiny_tokenizer):
    with pytest.raises(ConfigError, match="No texts"):
        pretrain(make_backbone(), tiny_tokenizer, ["  ", ""], TrainConfig(max_steps=1))


# ------------------------------------------------------------------------------------------------ resume
def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


class _Crash(Exception):
    pass


@pytest.mark.parametrize(
    ("eval_every", "save_every", "stop_at", "how", "resumed_from"),
    [
        (3, 4, 6, "cancel", 6),  # cancelled in the 2nd epoch (4 steps each): saved where it stopped
        (None, 4, 11, "crash", 8),  # killed: resumes from the last periodic save, at an epoch's end before its eval
    ],
)
def test_a_resumed_run_ends_with_the_uninterrupted_weights(
    make_backbone, tiny_tokenizer, texts, tmp_path, eval_every, save_every, stop_at, how, resumed_from
):
    config = TrainConfig(max_steps=12, batch_size=8, lr=1e-3, eval_every=eval_every, patience=100, seed=5)
    reference = make_backbone()  # dropout on: the resumed run must restore the generators too
    full = pretrain(reference, tiny_tokenizer, texts, config, max_length=32)
    assert full.steps == 12 and len(full.history) >= 3

    state = tmp_path / "run.resume"
    cancel = threading.Event()

    def stop(progress) -> None:
        if progress.phase == "train" and progress.step == stop_at:
            if how == "crash":
                raise _Crash
            cancel.set()

    if how == "crash":
        with pytest.raises(_Crash):
            pretrain(make_backbone(), tiny_tokenizer, texts, config, 32, callback=stop, resume_dir=state, save_every=4)
    else:
        stopped = pretrain(
            make_backbone(), tiny_tokenizer, texts, config, 32, callback=stop, cancel=cancel, resume_dir=state
        )
        assert stopped.cancelled and stopped.steps == stop_at
    assert has_state(state) and read_info(state)["step"] == resumed_from

    steps: list[int] = []
    resumed_backbone = make_backbone()  # a fresh copy of the starting weights, as after a restart
    resumed = pretrain(
        resumed_backbone,
        tiny_tokenizer,
        texts,
        config,
        32,
        callback=lambda p: steps.append(p.step) if p.phase == "train" else None,
        resume_dir=state,
        save_every=save_every,
    )
    assert steps == list(range(resumed_from + 1, 13))
    assert resumed.resumed_from_step == resumed_from and resumed.steps == 12 and not resumed.cancelled
    _assert_same_weights(_weights(resumed_backbone), _weights(reference))
    assert resumed.history == full.history
    assert (resumed.masked_top1_before, resumed.masked_top1_after) == (full.masked_top1_before, full.masked_top1_after)
    assert resumed.final_loss == full.final_loss

    # The state left at the end resumes to the same output without another step.
    assert read_info(state)["step"] == 12
    again_backbone, steps[:] = make_backbone(), []
    again = pretrain(
        again_backbone, tiny_tokenizer, texts, config, 32, callback=lambda p: steps.append(p.step), resume_dir=state
    )
    assert steps == [] and again.steps == 12
    _assert_same_weights(_weights(again_backbone), _weights(reference))


def test_resuming_with_other_settings_is_refused_listing_them(make_backbone, tiny_tokenizer, texts, tmp_path):
    config = TrainConfig(max_steps=6, batch_size=4, lr=1e-3)
    state = tmp_path / "run.resume"
    cancel = threading.Event()
    pretrain(
        make_backbone(),
        tiny_tokenizer,
        texts,
        config,
        32,
        callback=lambda p: cancel.set(),
        cancel=cancel,
        resume_dir=state,
    )
    assert read_info(state)["step"] == 1
    other = TrainConfig(max_steps=6, batch_size=8, lr=1e-3, device="cpu")  # device may differ, batch size may not
    with pytest.raises(ConfigError, match="step 1 of 6") as info:
        pretrain(make_backbone(), tiny_tokenizer, texts[:-1], other, 32, resume_dir=state)
    message = str(info.value)
    assert "batch_size: saved 4, requested 8" in message and "texts: saved '32 texts" in message
    assert "device" not in message and "lr" not in message
    with pytest.raises(ConfigError, match="backbone_weights"):
        pretrain(make_backbone(seed=1), tiny_tokenizer, texts, config, 32, resume_dir=state)
    assert read_info(state)["step"] == 1  # a refused resume leaves the state as it was


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_pretrain_end_to_end(capsys, tmp_path, texts):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts[:24]) + "\n", encoding="utf-8")
    out_dir = tmp_path / "rewarmed"
    code, out, err = call(
        capsys,
        [
            "pretrain",
            "--data",
            corpus,
            "--out",
            out_dir,
            "--max-steps",
            2,
            "--batch-size",
            4,
            "--max-length",
            32,
            "--fp16-weights",
        ],
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["steps"] == 2 and 0 <= summary["masked_top1_after"] <= 1
    assert {"config.json", "model.safetensors", "README.md", "pretrain.json"} <= {p.name for p in out_dir.iterdir()}
    tokenizer, model = load_backbone(str(out_dir))  # usable as --backbone DIR
    assert model.config.hidden_size == 384


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--data", "missing.txt"], "does not exist"),
        (["--data", "EMPTY"], "the file is empty"),
        (["--data", "CORPUS", "--backbone", "./no-such-dir"], "does not exist"),
        (["--data", "CORPUS", "--backbone", "some-org/not-a-model"], "offline"),
    ],
)
def test_cli_pretrain_user_errors_exit_2(capsys, tmp_path, argv, needle):
    corpus, empty = tmp_path / "corpus.txt", tmp_path / "empty.txt"
    corpus.write_text("one text\nanother text\n", encoding="utf-8")
    empty.write_text("\n\n", encoding="utf-8")
    argv = [{"CORPUS": corpus, "EMPTY": empty}.get(a, a) for a in argv]
    code, out, err = call(capsys, ["pretrain", *argv, "--out", tmp_path / "o", "--max-steps", 1])
    assert code == 2 and out == "" and "Traceback" not in err
    assert needle in err
    assert not (tmp_path / "o").exists()


def test_cli_pretrain_resumes_a_stopped_run_to_the_uninterrupted_weights(capsys, tmp_path, texts, save_tiny_backbone):
    from safetensors.torch import load_file

    from hpt_core.data import read_texts

    backbone_dir = save_tiny_backbone()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    flags = ["--data", corpus, "--backbone", backbone_dir, "--max-steps", 6, "--batch-size", 4, "--max-length", 32]
    flags += ["--eval-every", 2, "--save-every", 2]

    code, out, err = call(capsys, ["pretrain", *flags, "--out", tmp_path / "full"])
    assert code == 0, err
    assert not resume_directory(tmp_path / "full").exists()  # removed once the backbone is saved

    # A run stopped at step 3 (as SIGTERM does: the loop saves where it stopped), with the command's settings.
    out_dir = tmp_path / "resumed"
    state = resume_directory(out_dir)
    tokenizer, backbone = load_backbone(str(backbone_dir))
    cancel = threading.Event()
    config = pretrain_config(optimizer="adamw", max_steps=6, batch_size=4, eval_every=2)

    def stop(progress) -> None:
        if progress.step == 3:
            cancel.set()

    pretrain(backbone, tokenizer, read_texts(corpus), config, 32, callback=stop, cancel=cancel, resume_dir=state)
    assert read_info(state)["step"] == 3

    code, out, err = call(capsys, ["pretrain", *flags, "--out", out_dir])  # no --resume: refused, state kept
    assert code == 2 and "step 3 of 6" in err and "--resume" in err and has_state(state)
    code, out, err = call(capsys, ["pretrain", *flags, "--out", out_dir, "--resume", "--lr", "0.001"])
    assert code == 2 and "lr: saved 0.0001, requested 0.001" in err and not out_dir.exists()

    code, out, err = call(capsys, ["pretrain", *flags, "--out", out_dir, "--resume"])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["steps"] == 6 and summary["resumed_from_step"] == 3 and not state.exists()
    full, resumed = load_file(tmp_path / "full" / "model.safetensors"), load_file(out_dir / "model.safetensors")
    _assert_same_weights(resumed, full)

    code, out, err = call(capsys, ["pretrain", *flags, "--out", out_dir, "--resume"])  # finished: never overwritten
    assert code == 2 and "finished" in err


def test_rewarm_train_writes_a_partial_summary_and_continues_after_a_stop(tmp_path, texts, save_tiny_backbone):
    from benchmarks.rewarm import continue_training

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    out, summary = tmp_path / "more", tmp_path / "rewarm-train.json"
    run = {
        "steps": 6,
        "out": out,
        "corpus": corpus,
        "backbone": str(save_tiny_backbone()),
        "summary": summary,
        "save_every": 2,
        "eval_every": 2,
        "batch_size": 4,
        "max_length": 32,
        "messages": 0,
    }
    cancel = threading.Event()
    stopped = continue_training(**run, callback=lambda p: cancel.set() if p.step == 3 else None, cancel=cancel)
    assert stopped["status"] == "stopped" and not out.exists()
    partial = json.loads(summary.read_text(encoding="utf-8"))
    assert partial["status"] == "stopped" and partial["steps_done"] == 3
    assert [e["step"] for e in partial["evaluations"]] == [2]

    finished = continue_training(**run)
    assert finished["status"] == "finished" and finished["resumed_from_step"] == 3
    assert [e["step"] for e in finished["evaluations"]] == [2, 4, 6]
    assert finished["result"]["steps"] == 6 and json.loads(summary.read_text(encoding="utf-8")) == finished
    assert (out / "model.safetensors").is_file() and not resume_directory(out).exists()
    assert continue_training(**run)["status"] == "finished"  # launched again: nothing retrained
