"""Continued masked-LM training ("re-warming"): objective, loop, saved directory and the ``pretrain`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_cli import call  # the CLI runner shared with the CLI tests
from transformers import AutoModelForMaskedLM

from hpt_core.backbones import REWARMED_BACKBONE, SHIPPED_DIR, load_backbone, resolve_backbone
from hpt_core.errors import BackboneError, ConfigError
from hpt_core.losses import mask_tokens
from hpt_core.pretrain import MaskedLMObjective, masked_accuracy, pretrain, save_backbone
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
    result = pretrain(backbone, tiny_tokenizer, texts, TrainConfig(max_steps=30, batch_size=8, lr=3e-3), max_length=64)
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

    monkeypatch.setattr(backbones, "SHIPPED_DIR", tmp_path)
    with pytest.raises(BackboneError, match="pretrain"):
        resolve_backbone(REWARMED_BACKBONE)


def test_pretrain_rejects_no_texts(make_backbone, tiny_tokenizer):
    with pytest.raises(ConfigError, match="No texts"):
        pretrain(make_backbone(), tiny_tokenizer, ["  ", ""], TrainConfig(max_steps=1))


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
