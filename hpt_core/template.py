"""The prompt template: how a text becomes the backbone's input.

Layouts (``L`` levels, ``x`` the text's wordpieces):

- ``hpt``:  ``[CLS] x [SEP] [V1] [PRED] … [VL] [PRED] [SEP]`` (paper, Table 5); ``middle_sep=False`` (official
  code) drops the middle ``[SEP]``; without the hierarchy constraint ``[CLS] x [SEP] [V1] … [VL] [PRED] [SEP]``
  (one slot).
- ``soft``: ``[CLS] x [SEP] [V1] … [Vk] [MASK] [SEP]`` (k learnable vectors, real ``[MASK]``).
- ``hard``: ``[CLS] x [SEP] The text is about [MASK] [SEP]``.
- ``none``: ``[CLS] x [SEP]`` (plain fine-tuning; the scored slot is ``[CLS]``).

``[Vm]`` and ``[PRED]`` are not vocabulary tokens: their ids are placeholders (the ``[MASK]`` id) whose embeddings the
model overwrites, so user text containing the string "[PRED]" stays plain text. The text is truncated to the budget
left after the template; the template is never cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from hpt_core.errors import ConfigError

__all__ = ["TemplateBatch", "PromptTemplate", "TEMPLATE_KINDS"]

TEMPLATE_KINDS = ("hpt", "soft", "hard", "none")


@dataclass
class TemplateBatch:
    """A collated batch. ``S`` is the longest row (dynamic padding, right side)."""

    input_ids: torch.Tensor  # (B, S) placeholder ids at [Vm]/[PRED]
    attention_mask: torch.Tensor  # (B, S)
    pred_pos: torch.Tensor  # (B, P) positions of the scored slots ([PRED], [MASK] or [CLS])
    tmpl_pos: torch.Tensor  # (B, T) positions of the virtual template words [V1..VT] (T may be 0)
    text_mask: torch.Tensor  # (B, S) bool, True on text wordpieces (the MLM candidates)
    special_mask: torch.Tensor  # (B, S) bool, True on [CLS]/[SEP] (MLM candidates under mlm_mask_special_tokens)
    labels: torch.Tensor | None = None  # (B, C) multi-hot float targets
    text_lengths: torch.Tensor | None = None  # (B,) text wordpieces before truncation (> budget: truncated)

    def to(self, device: torch.device | str) -> TemplateBatch:
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return TemplateBatch(**moved)

    def __len__(self) -> int:
        return self.input_ids.shape[0]


class PromptTemplate:
    """Turns texts into ``TemplateBatch``es for one template layout.

    Args:
        tokenizer: the backbone's tokenizer (needs ``cls``, ``sep``, ``mask`` and ``pad`` tokens).
        kind: one of ``TEMPLATE_KINDS``.
        num_levels: L, the hierarchy depth (``hpt`` only).
        constraint: one ``[PRED]`` per level (True) or a single ``[PRED]`` (False).
        middle_sep: put ``[SEP]`` between the text and the template (paper) or not (official code).
        soft_prompt_len: number of learnable template vectors of the ``soft`` layout.
        hard_prompt: words before ``[MASK]`` in the ``hard`` layout.
    """

    def __init__(
        self,
        tokenizer: Any,
        kind: str = "hpt",
        num_levels: int = 1,
        constraint: bool = True,
        middle_sep: bool = True,
        soft_prompt_len: int = 8,
        hard_prompt: str = "The text is about",
    ) -> None:
        if kind not in TEMPLATE_KINDS:
            raise ConfigError(f"Unknown template {kind!r}; choose one of {', '.join(TEMPLATE_KINDS)}.")
        self.tokenizer = tokenizer
        self.kind = kind
        cls_id, sep_id, mask_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # Tail after the text: list of (token id, role) with role in {"sep", "virtual", "pred", "word"}.
        tail: list[tuple[int, str]] = []
        if kind != "none" and middle_sep:
            tail.append((sep_id, "sep"))
        if kind == "hpt":
            if constraint:
                for _ in range(num_levels):
                    tail += [(mask_id, "virtual"), (mask_id, "pred")]
            else:
                tail += [(mask_id, "virtual")] * num_levels + [(mask_id, "pred")]
        elif kind == "soft":
            tail += [(mask_id, "virtual")] * soft_prompt_len + [(mask_id, "pred")]
        elif kind == "hard":
            words = tokenizer(hard_prompt, add_special_tokens=False)["input_ids"]
            tail += [(w, "word") for w in words] + [(mask_id, "pred")]
        tail.append((sep_id, "sep"))
        self._tail = tail
        self._cls_id = cls_id
        self.num_slots = 1 if kind == "none" else sum(role == "pred" for _, role in tail)
        self.num_virtual = sum(role == "virtual" for _, role in tail)

    @property
    def template_length(self) -> int:
        """Number of non-text positions (``[CLS]`` included)."""
        return 1 + len(self._tail)

    def text_budget(self, max_length: int) -> int:
        """Wordpieces of text that fit in ``max_length`` next to the template."""
        budget = max_length - self.template_length
        if budget < 1:
            raise ConfigError(
                f"max_length {max_length} leaves no room for text: the {self.kind} template alone takes "
                f"{self.template_length} tokens; use max_length >= {self.template_length + 16}."
            )
        return budget

    def encode(self, texts: list[str], max_length: int, labels: torch.Tensor | None = None) -> TemplateBatch:
        """Tokenise, truncate the text (never the template), append the template and pad to the longest row."""
        budget = self.text_budget(max_length)
        if not texts:
            raise ConfigError("No texts to encode; give at least one text.")
        # split_special_tokens: a literal "[MASK]" or "[SEP]" in user text stays plain text. No truncation here (it
        # costs the same, the tokenizer encodes the whole text either way): the full lengths tell what was cut.
        pieces = self.tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True, verbose=False)[
            "input_ids"
        ]
        rows = [[self._cls_id, *p[:budget]] + [tok for tok, _ in self._tail] for p in pieces]
        width = max(len(r) for r in rows)
        batch = len(rows)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((batch, width), dtype=torch.long)
        text_mask = torch.zeros((batch, width), dtype=torch.bool)
        special_mask = torch.zeros((batch, width), dtype=torch.bool)
        pred_pos = torch.zeros((batch, self.num_slots), dtype=torch.long)
        tmpl_pos = torch.zeros((batch, self.num_virtual), dtype=torch.long)
        roles = [role for _, role in self._tail]
        pred_offsets = [k for k, r in enumerate(roles) if r == "pred"]
        virt_offsets = [k for k, r in enumerate(roles) if r == "virtual"]
        sep_offsets = [k for k, r in enumerate(roles) if r == "sep"]
        for b, row in enumerate(rows):
            n = len(row)
            input_ids[b, :n] = torch.tensor(row)
            attention[b, :n] = 1
            n_text = n - self.template_length
            text_mask[b, 1 : 1 + n_text] = True
            start = 1 + n_text  # first tail position
            special_mask[b, 0] = True
            for k in sep_offsets:
                special_mask[b, start + k] = True
            if self.kind != "none":
                pred_pos[b] = torch.tensor([start + k for k in pred_offsets])
            if virt_offsets:
                tmpl_pos[b] = torch.tensor([start + k for k in virt_offsets])
        lengths = torch.tensor([len(p) for p in pieces], dtype=torch.long)
        return TemplateBatch(input_ids, attention, pred_pos, tmpl_pos, text_mask, special_mask, labels, lengths)
