"""What is timed: interleaved medians, and one call of each compared step (an HPT training step, the backbone's
plain masked-LM step, an encoder forward), on pre-collated batches."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.speed.data import news_hierarchy, news_texts
from benchmarks.speed.settings import BATCH, LENGTH, LR

# torch, hpt_core and the app are imported inside the functions that use them (light start-up: `--report` and
# `--probe import` load neither more nor less than they need).


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, calling them round-robin so drift hits all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def _cycle(items: list[Any]) -> Callable[[], Any]:
    state = {"i": -1}

    def next_item() -> Any:
        state["i"] = (state["i"] + 1) % len(items)
        return items[state["i"]]

    return next_item


def hpt_model(hierarchy: Any, max_length: int = LENGTH, **config: Any) -> Any:
    from hpt_core.model import HPTConfig, HPTModel

    return HPTModel.from_backbone(HPTConfig(max_length=max_length, **config), hierarchy).train()


def hpt_step_fn(model: Any, batches: list[Any]) -> Callable[[], None]:
    """One HPT training step (forward, backward, Adam) per call, cycling over pre-collated ``batches``."""
    import torch

    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=LR)
    next_batch = _cycle(batches)

    def step() -> None:
        out = model(next_batch())
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()

    return step


def hpt_batches(model: Any, hierarchy: Any, texts: list[str], batch_size: int = BATCH) -> list[Any]:
    """Collated ``TemplateBatch``es with (arbitrary but fixed) first-label targets."""
    import torch

    batches = []
    for start in range(0, len(texts) - batch_size + 1, batch_size):
        chunk = texts[start : start + batch_size]
        labels = torch.zeros(len(chunk), hierarchy.num_labels)
        for row in range(len(chunk)):
            leaf = (start + row) % hierarchy.num_labels
            labels[row, hierarchy.closure([leaf])] = 1.0
        batches.append(model.encode(chunk, labels))
    return batches


def backbone_mlm_step_fn(texts: list[str], max_length: int, batch_size: int = BATCH) -> Callable[[], None]:
    """The floor: one plain masked-LM step of the default backbone on the same texts (encoder forward + backward +
    Adam, MLM head at the masked positions only, 15 % of the text tokens), no template, graph or verbalizer."""
    import torch
    import torch.nn.functional as F

    from hpt_core.backbones import load_backbone, mlm_head_decoder, mlm_head_transform
    from hpt_core.losses import mask_tokens

    tokenizer, backbone = load_backbone(None)
    backbone.train()
    special = set(tokenizer.all_special_ids)
    replacement = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    batches = []
    for start in range(0, len(texts) - batch_size + 1, batch_size):
        enc = tokenizer(
            texts[start : start + batch_size], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )
        candidates = enc["attention_mask"].bool() & ~torch.isin(enc["input_ids"], torch.tensor(sorted(special)))
        batches.append((enc["input_ids"], enc["attention_mask"], candidates))
    optimizer = torch.optim.Adam(backbone.parameters(), lr=LR)
    next_batch = _cycle(batches)

    def step() -> None:
        input_ids, attention, candidates = next_batch()
        masked = mask_tokens(input_ids, candidates, tokenizer.mask_token_id, replacement)
        hidden = backbone.base_model(input_ids=masked.input_ids, attention_mask=attention).last_hidden_state
        states = hidden[masked.positions[:, 0], masked.positions[:, 1]]  # (M, d)
        weight, bias = mlm_head_decoder(backbone)
        loss = F.cross_entropy(mlm_head_transform(backbone, states) @ weight.t() + bias, masked.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def encoder_forward_fn(model: Any, texts: list[str]) -> Callable[[], None]:
    """A plain encoder forward of ``texts`` (tokenisation included, as in prediction), no template or scoring."""
    import torch

    tokenizer, encoder, length = model.tokenizer, model.encoder, model.config.max_length

    @torch.inference_mode()
    def forward() -> None:
        enc = tokenizer(texts, truncation=True, max_length=length, padding=True, return_tensors="pt")
        encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])

    return forward


def pad_to(batch: Any, width: int) -> Any:
    """``batch`` right-padded to ``width`` positions (what a fixed-length pipeline feeds the encoder)."""
    import torch
    import torch.nn.functional as F

    from hpt_core.template import TemplateBatch

    extra = width - batch.input_ids.shape[1]

    def pad(t: torch.Tensor, value: int | bool = 0) -> torch.Tensor:
        return F.pad(t, (0, extra), value=value)

    return TemplateBatch(
        pad(batch.input_ids),
        pad(batch.attention_mask),
        batch.pred_pos,
        batch.tmpl_pos,
        pad(batch.text_mask, False),
        pad(batch.special_mask, False),
        batch.labels,
        batch.text_lengths,
    )


def news_train_step(batches: int) -> Callable[[], None]:
    """HPT training steps on the 20 Newsgroups tree, cycling over ``batches`` batches of real training messages at
    least ``LENGTH`` wordpieces long (batch ``BATCH``, default backbone)."""
    hierarchy = news_hierarchy()
    texts = news_texts("train", min_tokens=LENGTH, count=BATCH * batches)
    model = hpt_model(hierarchy)
    return hpt_step_fn(model, hpt_batches(model, hierarchy, texts))
