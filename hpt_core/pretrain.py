"""Continued masked-LM training ("re-warming") of a backbone before prompt tuning.

all-MiniLM-L6-v2 is a sentence-embedding fine-tune with no MLM head; HPT scores labels through that head, so the
backbone first relearns token prediction on unlabelled text (``checkpoints/minilm-l6-mlm/README.md``, the
``benchmarks.rewarm`` figures in ``docs/benchmarks.md``). The optimisation runs in the same loop as prompt tuning
(``training.fit``); this module only supplies the objective and the held-out masked top-1 accuracy that selects the
best state. ``PRETRAIN_DEFAULTS`` are the run's defaults (``pretrain_config()`` builds the ``TrainConfig``).

    tokenizer, backbone = load_backbone("minilm-l6")
    result = pretrain(backbone, tokenizer, texts, pretrain_config(max_steps=2000), max_length=128)
    save_backbone(backbone, tokenizer, "checkpoints/minilm-l6-mlm", result, fp16=True)

A long run survives being killed: with ``resume_dir`` (``resume.resume_directory(out)``, the sibling
``<out>.resume``) and ``save_every``, the whole loop state is saved there every N steps, and the same call on a
freshly loaded backbone continues from it (refused, listing the differences, when the settings differ). Remove it
(``resume.remove_state``) once the backbone is saved.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hpt_core.atomic import atomic_directory
from hpt_core.backbones import mlm_head_decoder, mlm_head_transform
from hpt_core.configs import AT_LEAST_ONE, ConfigBase, check_config, setting
from hpt_core.distributed import current
from hpt_core.errors import ConfigError
from hpt_core.losses import mask_tokens, mlm_loss
from hpt_core.resume import Checkpointing, differences, has_state, read_info, read_state, write_state
from hpt_core.template import PromptTemplate, TemplateBatch
from hpt_core.training import Evaluation, TrainConfig, TrainProgress, fit

__all__ = [
    "MaskedLMObjective",
    "MaskedLMOutput",
    "PretrainResult",
    "PRETRAIN_DEFAULTS",
    "ResumeConfig",
    "pretrain_config",
    "run_settings",
    "pretrain",
    "masked_accuracy",
    "save_backbone",
]

# Defaults of a re-warming run (``python -m hpt_core pretrain`` and ``finetune.adapt_backbone``), where they differ
# from prompt tuning's: ``TrainConfig`` fields, and ``max_length`` (an argument of ``pretrain``).
PRETRAIN_DEFAULTS: dict[str, Any] = {
    "max_steps": 1000,
    "epochs": 100,  # an upper bound; max_steps usually ends first
    "batch_size": 16,
    "lr": 1e-4,
    "schedule": "constant",  # the shipped backbone's re-warming; prompt tuning's default recipe decays
    "warmup_ratio": 0.0,
    "seed": 0,
    "eval_every": 200,  # held-out masked top-1 every N steps
    "patience": 1000,  # evaluations without gain before stopping
    "max_length": 128,
}


@dataclass
class ResumeConfig(ConfigBase):
    """How a re-warming run saves its resumable state (``pretrain --save-every``, ``--keep-resume-state``)."""

    save_every: int | None = setting(
        None,
        "save the whole training state to OUT.resume/ every N steps (replacing the previous one), so that the same "
        "command with --resume continues after a kill; off by default",
        check=AT_LEAST_ONE,
    )
    keep_resume_state: bool = setting(
        False, "keep OUT.resume/ (the state at the end of training) once the backbone is saved; removed by default"
    )

    def __post_init__(self) -> None:
        check_config(self)


@dataclass
class MaskedLMOutput:
    """Result of ``MaskedLMObjective.forward``."""

    logits: torch.Tensor  # (M, V) at the chosen positions only
    targets: torch.Tensor  # (M,) original ids
    loss: torch.Tensor  # scalar
    loss_parts: dict[str, torch.Tensor] = field(default_factory=dict)


class MaskedLMObjective(nn.Module):
    """BERT masked-LM on ``[CLS] text [SEP]``: 15 % of the text wordpieces, 80/10/10, head at masked rows only.

    Args:
        backbone: a Hugging Face masked-LM model (trained in place).
        tokenizer: its tokenizer.
        max_length: tokens per text, ``[CLS]``/``[SEP]`` included.
        probability: fraction of text wordpieces chosen.
        whole_word: choose whole words (all ``##`` pieces of a chosen word together).
    """

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: Any,
        max_length: int = 128,
        probability: float = 0.15,
        whole_word: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 < probability < 1.0:
            raise ConfigError(f"masking probability must be in (0, 1), got {probability}.")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.probability = probability
        self.whole_word = whole_word
        self.template = PromptTemplate(tokenizer, kind="none")
        vocab = backbone.get_input_embeddings().weight.shape[0]
        special = set(tokenizer.all_special_ids)
        tokens = tokenizer.convert_ids_to_tokens(list(range(vocab)))
        continuation = torch.tensor([bool(t) and t.startswith("##") for t in tokens])
        self.register_buffer("replacement_ids", torch.tensor([i for i in range(vocab) if i not in special]), False)
        self.register_buffer("continuation", continuation, persistent=False)

    def encode(self, texts: list[str]) -> TemplateBatch:
        return self.template.encode(texts, self.max_length)

    def word_start(self, batch: TemplateBatch) -> torch.Tensor:
        """``(B, S)`` position of the first wordpiece of each position's word."""
        ids = batch.input_ids
        positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        starts = torch.where(self.continuation[ids] & batch.text_mask, torch.zeros_like(ids), positions)
        return torch.cummax(starts, dim=1).values

    def logits_at(self, hidden: torch.Tensor) -> torch.Tensor:
        """MLM logits for gathered states only: ``(M, d)`` → ``(M, V)``."""
        weight, bias = mlm_head_decoder(self.backbone)
        return mlm_head_transform(self.backbone, hidden) @ weight.t() + bias

    def forward(
        self, batch: TemplateBatch, generator: torch.Generator | None = None, evaluation: bool = False
    ) -> MaskedLMOutput:
        """Masked-LM loss of a batch; ``evaluation=True`` masks every chosen token (no 10/10 replacement)."""
        masked = mask_tokens(
            batch.input_ids,
            batch.text_mask,
            self.tokenizer.mask_token_id,
            self.replacement_ids,
            self.probability,
            generator=generator,
            word_start=self.word_start(batch) if self.whole_word else None,
            mask_fraction=1.0 if evaluation else 0.8,
            random_fraction=0.0 if evaluation else 0.1,
        )
        hidden = self.backbone.base_model(input_ids=masked.input_ids, attention_mask=batch.attention_mask)
        states = hidden.last_hidden_state[masked.positions[:, 0], masked.positions[:, 1]]  # (M, d)
        logits = self.logits_at(states)  # (M, V)
        loss = mlm_loss(logits, masked.targets)
        return MaskedLMOutput(logits, masked.targets, loss, {"mlm": loss})


@torch.inference_mode()
def masked_accuracy(objective: MaskedLMObjective, texts: list[str], batch_size: int = 32, seed: int = 0) -> float:
    """Top-1 accuracy at masked positions on ``texts``: ``probability`` of the text wordpieces replaced by
    ``[MASK]``, the same positions for the same texts and seed (so before/after figures are comparable)."""
    if not texts:
        return float("nan")
    was_training = objective.training
    objective.eval()
    device = objective.backbone.get_input_embeddings().weight.device
    correct = total = 0
    for k, start in enumerate(range(0, len(texts), batch_size)):
        batch = objective.encode(texts[start : start + batch_size]).to(device)
        generator = torch.Generator().manual_seed(seed * 100_003 + k)
        out = objective(batch, generator=generator, evaluation=True)
        correct += int((out.logits.argmax(-1) == out.targets).sum())
        total += int(out.targets.numel())
    objective.train(was_training)
    return correct / total if total else float("nan")


@dataclass
class PretrainResult:
    """Summary of a re-warming run (fractions 0–1)."""

    steps: int
    seconds: float
    final_loss: float | None
    masked_top1_before: float
    masked_top1_after: float
    train_texts: int
    heldout_texts: int
    history: list[dict[str, Any]] = field(default_factory=list)
    cancelled: bool = False
    resumed_from_step: int | None = None  # the saved step this run continued from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pretrain_config(**overrides: Any) -> TrainConfig:
    """The ``TrainConfig`` of a re-warming run: ``PRETRAIN_DEFAULTS`` (without ``max_length``), then ``overrides``."""
    values = {k: v for k, v in PRETRAIN_DEFAULTS.items() if k != "max_length"}
    return TrainConfig(**(values | overrides))


def _heldout_split(texts: list[str], seed: int) -> tuple[list[str], list[str]]:
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_held = min(500, max(1, round(0.05 * len(texts)))) if len(texts) >= 20 else 0
    held = [texts[i] for i in order[:n_held]]
    return [texts[i] for i in order[n_held:]], held


def _weights_digest(module: nn.Module) -> str:
    """sha256 of the module's state (names, dtypes, shapes, bytes): which backbone a run started from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{data.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def run_settings(
    backbone: nn.Module,
    config: TrainConfig,
    texts: list[str],
    max_length: int,
    probability: float = 0.15,
    whole_word: bool = False,
) -> dict[str, Any]:
    """What a resumed run must share with the saved one: every ``TrainConfig`` field but ``device`` (where it runs),
    the masking, and fingerprints of the texts and of the starting weights (JSON-ready)."""
    texts_digest = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()
    return {k: v for k, v in config.to_dict().items() if k != "device"} | {
        "max_length": max_length,
        "probability": probability,
        "whole_word": whole_word,
        "texts": f"{len(texts)} texts, sha256 {texts_digest[:16]}",
        "backbone_weights": f"sha256 {_weights_digest(backbone)[:16]}",
    }


def _saved_run(directory: Path, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The state and info saved in ``directory`` (``None`` when it holds none); ``ConfigError`` when saved with other
    settings."""
    if not has_state(directory):
        return None
    info = read_info(directory)
    problems = differences(info.get("settings", {}), settings)
    if problems:
        raise ConfigError(
            f"The resume state in {directory} (step {info.get('step')} of {info.get('total')}) was saved with other "
            f"settings: {'; '.join(problems)}. Rerun with the saved settings, or delete {directory} to start over."
        )
    return read_state(directory), info


def pretrain(
    backbone: nn.Module,
    tokenizer: Any,
    texts: list[str],
    config: TrainConfig,
    max_length: int = PRETRAIN_DEFAULTS["max_length"],
    probability: float = 0.15,
    whole_word: bool = False,
    callback: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
    resume_dir: str | Path | None = None,
    save_every: int | None = None,
) -> PretrainResult:
    """Continue masked-LM training of ``backbone`` in place on ``texts``; keeps the state with the best held-out
    masked top-1 (5 % of the texts, at most 500, held out when there are at least 20).

    With ``resume_dir``, the training state is saved there every ``save_every`` steps, on ``cancel`` and at the end
    of training, and a state already there is continued from (same texts, starting weights and settings; a
    ``ConfigError`` lists what differs): on the CPU in fp32 the result is the uninterrupted run's, bitwise.
    """
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ConfigError("No texts to pretrain on; give at least one non-empty text.")
    train_texts, held = _heldout_split(texts, config.seed)
    objective = MaskedLMObjective(backbone, tokenizer, max_length, probability, whole_word)
    dist = current()  # under accelerate launch: held-out scores on the main process, shared with the others
    ResumeConfig(save_every=save_every)  # checks it
    state, info, settings = None, None, {}
    if resume_dir is not None:
        settings = run_settings(backbone, config, texts, max_length, probability, whole_word)
        state, info = _saved_run(Path(resume_dir), settings) or (None, None)
    last_loss: list[float] = []
    if info is None:
        before = dist.on_main(lambda: masked_accuracy(objective, held, config.eval_batch_size, config.seed))
    else:  # what the saved run measured before training, and its last loss
        before = info["masked_top1_before"]
        last_loss = [] if info["last_loss"] is None else [info["last_loss"]]

    def save(loop_state: dict[str, Any]) -> None:
        loop = loop_state["loop"]
        summary = {"step": loop["step"], "total": loop["total"], "epoch": loop["epoch"], "settings": settings}
        summary |= {"masked_top1_before": before, "last_loss": (last_loss or [None])[0], "history": loop["history"]}
        write_state(Path(resume_dir), loop_state, summary)

    checkpoint = Checkpointing(save_every, save, state) if resume_dir is not None else None

    def track(progress: TrainProgress) -> None:
        if progress.loss is not None:
            last_loss[:] = [progress.loss]
        if callback is not None:
            callback(progress)

    def evaluate() -> Evaluation:
        acc = masked_accuracy(objective, held, config.eval_batch_size, config.seed)
        return Evaluation(acc, acc, {"masked_top1": acc}, f"held-out masked top-1 {100 * acc:.2f} %", {"top1": acc})

    def batches(generator: torch.Generator) -> Iterator[TemplateBatch]:
        order = torch.randperm(len(train_texts), generator=generator).tolist()
        for start in range(0, len(order), config.batch_size):
            yield objective.encode([train_texts[i] for i in order[start : start + config.batch_size]])

    steps_per_epoch = math.ceil(len(train_texts) / config.batch_size)
    result = fit(objective, batches, steps_per_epoch, evaluate if held else None, config, track, cancel, checkpoint)

    def final_scores() -> tuple[float, float | None]:
        return masked_accuracy(objective, held, config.eval_batch_size, config.seed), (last_loss or [None])[0]

    after, final_loss = dist.on_main(final_scores)
    return PretrainResult(
        steps=result.steps,
        seconds=round(result.seconds, 1),
        final_loss=final_loss,
        masked_top1_before=before,
        masked_top1_after=after,
        train_texts=len(train_texts),
        heldout_texts=len(held),
        history=result.history,
        cancelled=result.cancelled,
        resumed_from_step=info["step"] if info is not None else None,
    )


def save_backbone(
    backbone: nn.Module,
    tokenizer: Any,
    directory: str | Path,
    result: PretrainResult | None = None,
    provenance: dict[str, Any] | None = None,
    fp16: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a Hugging Face directory (config, ``model.safetensors``, tokenizer, model card) atomically.

    ``fp16`` halves the file; ``AutoModelForMaskedLM.from_pretrained(dir, dtype=torch.float32)`` (what
    ``load_backbone`` does) loads it back in fp32.
    """
    target = Path(directory)
    with atomic_directory(target, overwrite) as staging:
        dtype = next(backbone.parameters()).dtype
        if fp16:
            backbone.to(torch.float16)
        try:
            backbone.save_pretrained(str(staging))
        finally:
            backbone.to(dtype)
        tokenizer.save_pretrained(str(staging))
        summary = {"result": result.to_dict() if result else None, "provenance": provenance or {}, "fp16": fp16}
        (staging / "pretrain.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (staging / "README.md").write_text(_backbone_card(result, provenance or {}, fp16), encoding="utf-8")
    return target


def _backbone_card(result: PretrainResult | None, provenance: dict[str, Any], fp16: bool) -> str:
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: fill-mask",
        "license: apache-2.0",
        "---",
        "# Re-warmed masked-LM backbone",
        "",
        "Continued masked-LM training with HPT Studio (`python -m hpt_core pretrain`): 15 % of text wordpieces "
        "chosen, 80 % `[MASK]` / 10 % random / 10 % unchanged, MLM head computed at masked positions only.",
        "",
    ]
    if provenance:
        lines += ["## Provenance", ""] + [f"- {k}: `{v}`" for k, v in provenance.items()] + [""]
    if result:
        lines += [
            "## Result",
            "",
            f"- steps: {result.steps} ({result.seconds:.0f} s); final training loss {result.final_loss}",
            f"- training texts: {result.train_texts}; held-out texts: {result.heldout_texts}",
            f"- held-out masked top-1 (15 % of wordpieces masked): {100 * result.masked_top1_before:.2f} % before, "
            f"{100 * result.masked_top1_after:.2f} % after",
            "",
        ]
    lines += [
        "## Loading",
        "",
        "```python",
        "from transformers import AutoModelForMaskedLM",
        'model = AutoModelForMaskedLM.from_pretrained("path/to/dir", dtype="float32")',
        "```",
        "",
        f"Weights are stored in {'fp16' if fp16 else 'fp32'} safetensors.",
        "",
    ]
    return "\n".join(lines)
