"""Tests of hpt_core.losses against the paper's equations written out by hand (spec §1.6, §8.6, §8.7)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hpt_core.losses import bce_loss, mask_tokens, mlm_loss, zmlce_loss

GROUPS = torch.tensor([0, 0, 1, 1, 1, 1])  # C=6: 2 labels on layer 1, 4 on layer 2


def zmlce_pairs(s: list[float], pos: list[bool]) -> float:
    """Eq. 9, first line: log(1 + Σ_{i∈neg} Σ_{j∈pos} e^{s_i−s_j} + Σ_{i∈neg} e^{s_i} + Σ_{j∈pos} e^{−s_j})."""
    neg_i = [k for k in range(len(s)) if not pos[k]]
    pos_j = [k for k in range(len(s)) if pos[k]]
    total = 1.0
    total += sum(math.exp(s[i] - s[j]) for i, j in itertools.product(neg_i, pos_j))
    total += sum(math.exp(s[i]) for i in neg_i)
    total += sum(math.exp(-s[j]) for j in pos_j)
    return math.log(total)


def zmlce_factorised(s: list[float], pos: list[bool]) -> float:
    """Eq. 9, second line: log(1 + Σ_{i∈neg} e^{s_i}) + log(1 + Σ_{j∈pos} e^{−s_j})."""
    neg = sum(math.exp(v) for v, p in zip(s, pos, strict=True) if not p)
    posv = sum(math.exp(-v) for v, p in zip(s, pos, strict=True) if p)
    return math.log1p(neg) + math.log1p(posv)


def reference(scores: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor | None, fn) -> float:
    """mean over the batch of Σ over groups of ``fn`` on that group's labels (Eq. 10–11)."""
    groups = torch.zeros(scores.shape[1], dtype=torch.long) if groups is None else groups
    per_sample = []
    for s_row, y_row in zip(scores.tolist(), targets.bool().tolist(), strict=True):
        per_sample.append(
            sum(
                fn(
                    [s_row[k] for k in range(len(s_row)) if groups[k] == g],
                    [y_row[k] for k in range(len(s_row)) if groups[k] == g],
                )
                for g in groups.unique().tolist()
            )
        )
    return sum(per_sample) / len(per_sample)


@pytest.fixture
def random_case() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 6, generator=gen, dtype=torch.float64) * 3
    targets = torch.tensor(
        [
            [1, 0, 0, 1, 0, 0],  # one positive per layer
            [0, 1, 0, 0, 0, 0],  # layer 2 has no positive (partial path)
            [0, 0, 0, 0, 0, 0],  # nothing positive
            [1, 1, 1, 1, 1, 1],  # nothing negative
        ],
        dtype=torch.float64,
    )
    return scores, targets


# ---------------------------------------------------------------------------------------------- ZMLCE
def test_zmlce_per_layer_equals_eq9_brute_force(random_case):
    scores, targets = random_case
    loss = zmlce_loss(scores, targets, GROUPS)
    assert loss.dtype == torch.float32  # computed in fp32 by design
    pairs = reference(scores, targets, GROUPS, zmlce_pairs)
    assert pairs == pytest.approx(reference(scores, targets, GROUPS, zmlce_factorised), abs=1e-12)
    assert float(loss) == pytest.approx(pairs, rel=1e-6, abs=1e-6)


def test_zmlce_single_group_equals_eq9_over_all_labels(random_case):
    scores, targets = random_case
    expected = reference(scores, targets, None, zmlce_pairs)
    assert float(zmlce_loss(scores, targets, None)) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert float(zmlce_loss(scores, targets, torch.zeros(6, dtype=torch.long))) == pytest.approx(expected, rel=1e-6)


def test_zmlce_partial_path_layer_keeps_its_negative_term():
    """A layer without positive contributes log(1 + Σ e^{s_i}) (spec pitfall 10), not 0 and not NaN."""
    scores = torch.tensor([[2.0, -1.0, 0.5, 1.5, -3.0, 0.0]])
    targets = torch.tensor([[1.0, 0, 0, 0, 0, 0]])
    layer1 = math.log1p(math.exp(-1.0)) + math.log1p(math.exp(-2.0))
    layer2 = math.log1p(sum(math.exp(v) for v in (0.5, 1.5, -3.0, 0.0)))
    assert float(zmlce_loss(scores, targets, GROUPS)) == pytest.approx(layer1 + layer2, rel=1e-6)


def test_zmlce_is_not_the_mean_over_layers():
    scores = torch.zeros(1, 6)
    targets = torch.zeros(1, 6)
    # Each layer: log(1 + C_m) with all scores 0 and no positives; summed, not averaged.
    assert float(zmlce_loss(scores, targets, GROUPS)) == pytest.approx(math.log(3) + math.log(5), rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.tuples(st.floats(-20, 20, allow_nan=False), st.booleans()), min_size=6, max_size=6).map(
        lambda row: ([v for v, _ in row], [p for _, p in row])
    )
)
def test_zmlce_matches_brute_force_property(data):
    values, positives = data
    scores = torch.tensor([values], dtype=torch.float64)
    targets = torch.tensor([positives], dtype=torch.float64)
    expected = reference(scores, targets, GROUPS, zmlce_pairs)
    assert float(zmlce_loss(scores, targets, GROUPS)) == pytest.approx(expected, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_zmlce_is_finite_for_large_scores(dtype: torch.dtype):
    scores = torch.tensor([[80.0, -80.0, 80.0, -80.0, 80.0, -80.0]], dtype=dtype, requires_grad=True)
    targets = torch.tensor([[0.0, 1, 1, 0, 0, 1]])  # every score on the wrong side: a huge but finite loss
    loss = zmlce_loss(scores, targets, GROUPS)
    loss.backward()
    # Each of the 4 terms (2 layers × neg/pos) is log(1 + e^80 + ...) ≈ 80.
    assert torch.isfinite(loss) and float(loss.detach()) == pytest.approx(80 * 4, rel=1e-3)
    assert torch.isfinite(scores.grad).all()
    right = torch.tensor([[-80.0, 80.0, 80.0, -80.0, -80.0, 80.0]], dtype=dtype)
    assert 0 <= float(zmlce_loss(right, targets, GROUPS)) < 1e-6


def test_zmlce_gradient_signs(random_case):
    scores, targets = random_case
    scores = scores.float().requires_grad_(True)
    zmlce_loss(scores, targets, GROUPS).backward()
    assert (scores.grad[targets.bool()] < 0).all()  # positives are pushed up
    assert (scores.grad[~targets.bool()] > 0).all()  # negatives are pushed down


# ---------------------------------------------------------------------------------------------- BCE
def test_bce_is_eq6_summed_over_labels_averaged_over_batch(random_case):
    scores, targets = random_case
    expected = 0.0
    for s_row, y_row in zip(scores.tolist(), targets.tolist(), strict=True):
        expected += -sum(
            y * math.log(1 / (1 + math.exp(-s))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-s)))
            for s, y in zip(s_row, y_row, strict=True)
        )
    expected /= scores.shape[0]
    assert float(bce_loss(scores, targets)) == pytest.approx(expected, rel=1e-6)


def test_bce_is_finite_in_fp16():
    scores = torch.tensor([[80.0, -80.0]], dtype=torch.float16)
    assert float(bce_loss(scores, torch.tensor([[0.0, 1.0]]))) == pytest.approx(160.0, rel=1e-3)


# ---------------------------------------------------------------------------------------------- MLM
def test_mlm_loss_is_cross_entropy_and_zero_without_targets():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    expected = -(math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1))) + math.log(math.e / (math.e + 2))) / 2
    assert float(mlm_loss(logits, torch.tensor([0, 1]))) == pytest.approx(expected, rel=1e-6)
    empty = torch.zeros(0, 3, requires_grad=True)
    loss = mlm_loss(empty, torch.zeros(0, dtype=torch.long))
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()  # still part of the graph


def test_mask_tokens_statistics():
    gen = torch.Generator().manual_seed(0)
    original = torch.full((200, 300), 5, dtype=torch.long)  # every token is id 5
    candidates = torch.rand(200, 300, generator=gen) < 0.5  # ≈ 3·10⁴ candidate positions
    replacement = torch.arange(10, 60)
    out = mask_tokens(original, candidates, mask_token_id=4, replacement_ids=replacement, generator=gen)
    changed_or_chosen = torch.zeros_like(candidates)
    changed_or_chosen[out.positions[:, 0], out.positions[:, 1]] = True
    n_cand, n_chosen = int(candidates.sum()), out.positions.shape[0]
    assert n_cand > 10_000
    assert abs(n_chosen / n_cand - 0.15) < 0.01
    assert not (changed_or_chosen & ~candidates).any()  # non-candidates never chosen
    assert torch.equal(out.input_ids[~changed_or_chosen], original[~changed_or_chosen])  # nor corrupted
    picked = out.input_ids[changed_or_chosen]
    masked, kept = (picked == 4).float().mean(), (picked == 5).float().mean()
    randomised = torch.isin(picked, replacement)
    assert abs(float(masked) - 0.8) < 0.02
    assert abs(float(randomised.float().mean()) - 0.1) < 0.02
    assert abs(float(kept) - 0.1) < 0.02
    assert bool(((picked == 4) | (picked == 5) | randomised).all())  # random ids only from the allowed set
    assert torch.equal(out.targets, original[changed_or_chosen])
    assert len(set(picked[randomised].tolist())) > 40  # spread over the allowed ids


def test_mask_tokens_positions_follow_row_major_order():
    gen = torch.Generator().manual_seed(1)
    ids = torch.arange(2 * 50).view(2, 50)
    out = mask_tokens(
        ids, torch.ones(2, 50, dtype=torch.bool), 999, torch.tensor([1000]), probability=0.5, generator=gen
    )
    assert torch.equal(out.targets, ids[out.positions[:, 0], out.positions[:, 1]])


def test_mask_tokens_with_no_candidate():
    ids = torch.arange(12).view(2, 6)
    out = mask_tokens(ids, torch.zeros(2, 6, dtype=torch.bool), 4, torch.tensor([7]))
    assert out.positions.shape == (0, 2) and out.targets.numel() == 0
    assert torch.equal(out.input_ids, ids)
