"""Losses: zero-bounded multi-label cross entropy (ZMLCE, Eqs. 9–10), BCE (Eq. 6) and masked-LM (15 % masking).

All losses are computed in float32 (fp16 scores are upcast), with ``-inf`` masking and ``logsumexp`` — never ±1e12.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["zmlce_loss", "bce_loss", "mlm_loss", "MaskedTokens", "mask_tokens"]


def zmlce_loss(scores: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    """ZMLCE averaged over the batch and summed over groups.

    For each sample and group ``m`` (a level, Eq. 10): ``log(1 + Σ_{neg i} e^{s_i}) + log(1 + Σ_{pos j} e^{-s_j})``.
    ``groups`` (C,) gives each label's group (its depth); ``None`` puts all labels in one group (the official code,
    and the no-constraint ablation). An empty positive set contributes 0, an empty negative set too.

    Args:
        scores: ``(B, C)`` label scores.
        targets: ``(B, C)`` multi-hot {0, 1}.
        groups: ``(C,)`` long, group id of each label, or ``None``.
    Returns:
        scalar loss.
    """
    s = scores.float()
    pos = targets.bool()
    if groups is None:
        groups = torch.zeros(s.shape[1], dtype=torch.long, device=s.device)
    num_groups = int(groups.max()) + 1
    in_group = F.one_hot(groups, num_groups).t().bool()  # (G, C)
    neg_inf = torch.tensor(float("-inf"), device=s.device)
    # (B, G, C): scores of negatives / negated scores of positives, -inf outside the set.
    neg = torch.where(in_group[None] & ~pos[:, None], s[:, None, :], neg_inf)
    posv = torch.where(in_group[None] & pos[:, None], -s[:, None, :], neg_inf)
    zeros = torch.zeros(*neg.shape[:2], 1, device=s.device)
    neg_term = torch.logsumexp(torch.cat([zeros, neg], dim=-1), dim=-1)  # (B, G)
    pos_term = torch.logsumexp(torch.cat([zeros, posv], dim=-1), dim=-1)  # (B, G)
    return (neg_term + pos_term).sum(dim=1).mean()


def bce_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 6: binary cross entropy summed over the C labels, averaged over the batch. ``(B, C)`` → scalar."""
    per_label = F.binary_cross_entropy_with_logits(scores.float(), targets.float(), reduction="none")
    return per_label.sum(dim=1).mean()


def mlm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross entropy at the masked positions: ``(M, V)`` logits, ``(M,)`` targets → scalar (0 when M = 0)."""
    if targets.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), targets)


@dataclass
class MaskedTokens:
    """Result of ``mask_tokens``: the corrupted ids and what to predict where."""

    input_ids: torch.Tensor  # (B, S) corrupted
    positions: torch.Tensor  # (M, 2) (row, column) of each chosen position
    targets: torch.Tensor  # (M,) original ids


def mask_tokens(
    input_ids: torch.Tensor,
    candidates: torch.Tensor,
    mask_token_id: int,
    replacement_ids: torch.Tensor,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
    word_start: torch.Tensor | None = None,
    mask_fraction: float = 0.8,
    random_fraction: float = 0.1,
) -> MaskedTokens:
    """BERT masking: choose ``probability`` of the candidate positions; of those 80 % → ``[MASK]``, 10 % → a random
    id from ``replacement_ids`` (non-special vocabulary), 10 % unchanged.

    Args:
        input_ids: ``(B, S)``.
        candidates: ``(B, S)`` bool, positions that may be chosen (text wordpieces only, by default).
        replacement_ids: ``(R,)`` ids random replacements are drawn from.
        word_start: ``(B, S)`` position of the first wordpiece of each position's word: whole-word masking (all
            pieces of a word are chosen together and get the same treatment).
        mask_fraction, random_fraction: the 80/10/10 split (evaluation uses 1.0/0.0: every chosen token masked).
    """
    device = input_ids.device
    draw = torch.rand(input_ids.shape, generator=generator, device="cpu").to(device)
    kind = torch.rand(input_ids.shape, generator=generator, device="cpu").to(device)
    if word_start is not None:
        draw, kind = draw.gather(1, word_start), kind.gather(1, word_start)
    chosen = candidates & (draw < probability)
    to_mask = chosen & (kind < mask_fraction)
    to_random = chosen & (kind >= mask_fraction) & (kind < mask_fraction + random_fraction)
    picks = torch.randint(len(replacement_ids), input_ids.shape, generator=generator, device="cpu").to(device)
    corrupted = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    corrupted = torch.where(to_random, replacement_ids.to(device)[picks], corrupted)
    positions = chosen.nonzero()
    return MaskedTokens(corrupted, positions, input_ids[chosen])
