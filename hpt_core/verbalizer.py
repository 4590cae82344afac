"""Verbalizers: how hidden states at the scored slots become label scores.

- ``Verbalizer`` (HPT and soft prompt): virtual label words ``v_i`` (one trainable ``(C, d)`` parameter, initialised
  from the mean embedding of each label name's wordpieces), scored at their own level's slot through the MLM head's
  transform: ``s_i = v_i · Transform(h_P^{depth(i)}) + b_i`` (paper Eq. 3 / 10).
- ``HardVerbalizer`` (hard prompt baseline): fixed vocabulary words. ``s_i`` is the MLM logit at ``[MASK]`` of the
  headword of label i's name (mean over its wordpieces) plus a per-label bias ``b_i``.

The "name" of a label is the text ``hpt_core.label_names.label_texts`` gives: its display name from a label-names
file, else its name split into words (``comp.sys.ibm.pc.hardware`` → "ibm pc hardware"), else (``HPTConfig.
label_name_split=False``) the raw name without its parent's prefix.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn

__all__ = ["Verbalizer", "HardVerbalizer", "label_name_embeddings", "headword", "bias_bound"]


def bias_bound(hidden_size: int) -> float:
    """Init bound of the label bias, ``1/√d`` with d the backbone's hidden size (never a literal 768)."""
    return 1.0 / math.sqrt(hidden_size)


def label_name_embeddings(
    tokenizer: Any, word_embeddings: torch.Tensor, names: list[str], include_special: bool = False
) -> torch.Tensor:
    """Mean word-embedding row of each name's wordpieces: ``(V, d)`` → ``(C, d)`` (a detached copy).

    ``include_special=True`` adds ``[CLS]`` and ``[SEP]`` to the mean, as the official code does.
    """
    rows = []
    for name in names:
        ids = tokenizer(name, add_special_tokens=include_special)["input_ids"]
        if not ids:  # a name the tokenizer drops entirely (e.g. only control characters)
            ids = [tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.mask_token_id]
        rows.append(word_embeddings[torch.tensor(ids)].mean(dim=0))
    return torch.stack(rows).detach().clone()


def headword(name: str) -> str:
    """Head of an English label name: the last word, or the last word before "of"/"in"/"for".

    A stand-in for the dependency-parse root the paper uses ("National Hockey League" → "League",
    "Theory of computation" → "Theory"); separators like ``.``, ``/``, ``_`` split words.
    """
    words = [w for w in re.split(r"[\s./_\-]+", name.strip()) if w]
    if not words:
        return name
    for k, word in enumerate(words):
        if word.lower() in {"of", "in", "for"} and k > 0:
            return words[k - 1]
    return words[-1]


class Verbalizer(nn.Module):
    """Virtual label words scored at each label's slot.

    Args:
        label_words: ``(C, d)`` initial label words.
        slot_of_label: ``(C,)`` index of the slot each label is scored at (its depth, or 0 for one slot).
        two_biases: keep the official code's extra zero-initialised decoder bias next to the label bias.
    """

    def __init__(self, label_words: torch.Tensor, slot_of_label: torch.Tensor, two_biases: bool = False) -> None:
        super().__init__()
        num_labels, hidden = label_words.shape
        self.label_words = nn.Parameter(label_words.detach().clone())
        bound = bias_bound(hidden)
        self.bias = nn.Parameter(torch.empty(num_labels).uniform_(-bound, bound))
        self.decoder_bias = nn.Parameter(torch.zeros(num_labels)) if two_biases else None
        self.register_buffer("slot_of_label", slot_of_label.long().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``(B, P, d)`` (transformed slot states) → scores ``(B, C)``."""
        all_slots = z @ self.label_words.t()  # (B, P, C)
        index = self.slot_of_label[None, None, :].expand(z.shape[0], 1, -1)  # (B, 1, C)
        scores = all_slots.gather(1, index).squeeze(1) + self.bias  # (B, C)
        if self.decoder_bias is not None:
            scores = scores + self.decoder_bias
        return scores


class HardVerbalizer(nn.Module):
    """Fixed vocabulary headwords scored by the backbone's MLM decoder at the single ``[MASK]`` slot.

    Args:
        tokenizer: the backbone tokenizer.
        names: label names (C).
        hidden_size: d, for the bias init bound ``1/√d``.
    """

    def __init__(self, tokenizer: Any, names: list[str], hidden_size: int) -> None:
        super().__init__()
        pieces = [
            tokenizer(headword(n).lower(), add_special_tokens=False)["input_ids"] or [tokenizer.unk_token_id]
            for n in names
        ]
        width = max(len(p) for p in pieces)
        ids = torch.zeros(len(names), width, dtype=torch.long)
        mask = torch.zeros(len(names), width)
        for i, p in enumerate(pieces):
            ids[i, : len(p)] = torch.tensor(p)
            mask[i, : len(p)] = 1.0
        self.register_buffer("word_ids", ids)
        self.register_buffer("word_mask", mask)
        bound = bias_bound(hidden_size)
        self.bias = nn.Parameter(torch.empty(len(names)).uniform_(-bound, bound))

    def forward(self, z: torch.Tensor, decoder_weight: torch.Tensor, decoder_bias: torch.Tensor) -> torch.Tensor:
        """``z`` ``(B, 1, d)``; decoder ``(V, d)``, ``(V,)`` → scores ``(B, C)`` (only the needed vocabulary rows)."""
        rows = decoder_weight[self.word_ids]  # (C, K, d)
        logits = torch.einsum("bd,ckd->bck", z[:, 0], rows) + decoder_bias[self.word_ids]  # (B, C, K)
        mean = (logits * self.word_mask).sum(-1) / self.word_mask.sum(-1)  # (B, C)
        return mean + self.bias
