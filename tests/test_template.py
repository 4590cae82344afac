"""Tests of hpt_core.template: layouts, truncation budget, positions, dynamic padding (spec §1.1, §8.2, §8.14)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hpt_core.errors import ConfigError
from hpt_core.template import PromptTemplate, TemplateBatch

MAX_LENGTH = 40
L = 3


@pytest.fixture(scope="module")
def plain_words(tiny_vocab: list[str]) -> list[str]:
    """Vocabulary words that are exactly one wordpiece each."""
    return [w for w in tiny_vocab if w.isalpha() and w.isascii() and not w.startswith("[")]


def text_of(words: list[str], n: int, offset: int = 0) -> str:
    return " ".join(words[(offset + k) % len(words)] for k in range(n))


def expected_tail(tok, kind: str, middle_sep: bool = True, constraint: bool = True, levels: int = L) -> list[int]:
    """The template after the text, written out by hand from spec §1.1 / §4."""
    sep, mask = tok.sep_token_id, tok.mask_token_id
    head = [sep] if middle_sep and kind != "none" else []
    if kind == "hpt":
        body = [mask, mask] * levels if constraint else [mask] * levels + [mask]
    elif kind == "soft":
        body = [mask] * 8 + [mask]
    elif kind == "hard":
        body = tok("The text is about", add_special_tokens=False)["input_ids"] + [mask]
    else:
        body = []
    return head + body + [sep]


def check_row(batch: TemplateBatch, b: int, text: str, tok, template: PromptTemplate, tail: list[int]) -> int:
    """Every layout invariant of one collated row."""
    ids = batch.input_ids[b].tolist()
    n = int(batch.attention_mask[b].sum())
    assert n <= MAX_LENGTH
    assert batch.attention_mask[b, :n].all() and not batch.attention_mask[b, n:].any()
    assert all(i == tok.pad_token_id for i in ids[n:])
    assert ids[0] == tok.cls_token_id
    assert ids[n - len(tail) : n] == tail
    start = n - len(tail)  # first template position
    # The kept text is a prefix of the full tokenisation, as long as the budget allows.
    full = tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]  # the text as plain text
    kept = ids[1:start]
    assert kept == full[: len(kept)]
    assert len(kept) == min(len(full), template.text_budget(MAX_LENGTH))
    assert batch.text_mask[b].tolist() == [1 <= k < start for k in range(len(ids))]
    special = [k for k in range(n) if k == 0 or (k >= start and ids[k] == tok.sep_token_id)]
    assert batch.special_mask[b].nonzero().flatten().tolist() == special
    return start


# ---------------------------------------------------------------------------------------------- the paper layout
@pytest.mark.parametrize("middle_sep", [True, False], ids=["paper", "code"])
@pytest.mark.parametrize("length", ["short", "at-budget", "10x-budget"])
def test_hpt_layout(tiny_tokenizer, plain_words, middle_sep: bool, length: str):
    tok = tiny_tokenizer
    template = PromptTemplate(tok, "hpt", num_levels=L, middle_sep=middle_sep)
    budget = template.text_budget(MAX_LENGTH)
    assert budget == MAX_LENGTH - (2 * L + 3 if middle_sep else 2 * L + 2)
    n_words = {"short": 3, "at-budget": budget, "10x-budget": 10 * budget}[length]
    text = text_of(plain_words, n_words)
    batch = template.encode([text], MAX_LENGTH)
    tail = expected_tail(tok, "hpt", middle_sep)
    start = check_row(batch, 0, text, tok, template, tail)
    first = start + (1 if middle_sep else 0)
    assert batch.tmpl_pos[0].tolist() == [first + 2 * m for m in range(L)]
    assert batch.pred_pos[0].tolist() == [first + 2 * m + 1 for m in range(L)]
    assert batch.pred_pos.shape == batch.tmpl_pos.shape == (1, L)
    assert (batch.input_ids[0, batch.pred_pos[0]] == tok.mask_token_id).all()
    if length != "short":
        assert int(batch.attention_mask.sum()) == MAX_LENGTH
        # Code layout: [CLS] + text is cut to max_len - (2L + 1) tokens (spec §1.1).
        if not middle_sep:
            assert start == MAX_LENGTH - (2 * L + 1)


def test_budgets_of_the_spec(tiny_tokenizer):
    """WOS L=2 → 505/506, RCV1 L=4 → 501/502, NYT L=8 → 493/494 (spec §1.1)."""
    for levels, paper, code in [(2, 505, 506), (4, 501, 502), (8, 493, 494)]:
        assert PromptTemplate(tiny_tokenizer, "hpt", num_levels=levels).text_budget(512) == paper
        assert PromptTemplate(tiny_tokenizer, "hpt", num_levels=levels, middle_sep=False).text_budget(512) == code
        assert PromptTemplate(tiny_tokenizer, "hpt", num_levels=levels).template_length == 2 * levels + 3


def test_dynamic_padding_with_rows_of_different_lengths(tiny_tokenizer, plain_words):
    tok = tiny_tokenizer
    template = PromptTemplate(tok, "hpt", num_levels=L)
    texts = [text_of(plain_words, n, offset=7 * n) for n in (5, 1, 60, 12, 0)]
    batch = template.encode(texts, MAX_LENGTH, labels=torch.ones(5, 13))
    lengths = batch.attention_mask.sum(1).tolist()
    assert batch.input_ids.shape == (5, max(lengths))
    assert max(lengths) == MAX_LENGTH  # the 60-word row is truncated to the budget
    assert lengths[1] == 1 + 1 + 2 * L + 2 and lengths[4] == 1 + 2 * L + 2  # 1 word / empty text
    tail = expected_tail(tok, "hpt")
    starts = [check_row(batch, b, text, tok, template, tail) for b, text in enumerate(texts)]
    # Positions depend on each row's length: never fixed offsets from the end of the padded batch.
    for b, start in enumerate(starts):
        assert batch.pred_pos[b].tolist() == [start + 2 + 2 * m for m in range(L)]
    assert len(set(batch.pred_pos[:, 0].tolist())) == len({*lengths})
    assert not batch.text_mask[4].any()
    assert batch.labels is not None and batch.labels.shape == (5, 13)
    assert len(batch) == 5
    moved = batch.to("cpu")
    assert isinstance(moved, TemplateBatch) and torch.equal(moved.pred_pos, batch.pred_pos)


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(0, 80), min_size=1, max_size=4), middle_sep=st.booleans())
def test_layout_invariants_hold_for_any_lengths(tiny_tokenizer, plain_words, lengths: list[int], middle_sep: bool):
    tok = tiny_tokenizer
    template = PromptTemplate(tok, "hpt", num_levels=L, middle_sep=middle_sep)
    texts = [text_of(plain_words, n, offset=3 * b) for b, n in enumerate(lengths)]
    batch = template.encode(texts, MAX_LENGTH)
    tail = expected_tail(tok, "hpt", middle_sep)
    for b, text in enumerate(texts):
        check_row(batch, b, text, tok, template, tail)
        # Exactly L [PRED] and L [Vm] placeholders per row, none of them in the text part.
        assert batch.pred_pos[b].unique().numel() == L
        assert not batch.text_mask[b, batch.pred_pos[b]].any()
        assert not batch.text_mask[b, batch.tmpl_pos[b]].any()


# ---------------------------------------------------------------------------------------------- special strings in text
def test_literal_pred_in_user_text_is_plain_text(tiny_tokenizer):
    tok = tiny_tokenizer
    template = PromptTemplate(tok, "hpt", num_levels=L)
    text = "the [PRED] of [PRED] [PRED]"
    pieces = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.mask_token_id not in pieces
    assert tok.convert_ids_to_tokens(pieces)[:4] == ["the", "[", "pred", "]"]
    batch = template.encode([text], MAX_LENGTH)
    assert batch.pred_pos.shape == (1, L)
    assert int((batch.input_ids[0] == tok.mask_token_id).sum()) == 2 * L  # only the template placeholders
    check_row(batch, 0, text, tok, template, expected_tail(tok, "hpt"))


def test_literal_mask_in_user_text_keeps_the_layout(tiny_tokenizer):
    """Whatever the tokenizer makes of "[MASK]", the slots are positional: still L of them, at the tail."""
    tok = tiny_tokenizer
    template = PromptTemplate(tok, "hpt", num_levels=L)
    text = "[MASK] is about [MASK] [SEP] [CLS]"
    batch = template.encode([text], MAX_LENGTH)
    start = check_row(batch, 0, text, tok, template, expected_tail(tok, "hpt"))
    assert batch.pred_pos[0].tolist() == [start + 2 + 2 * m for m in range(L)]
    assert batch.special_mask[0].nonzero().flatten().tolist() == [0, start, start + 2 * L + 1]


def test_literal_mask_in_user_text_is_plain_text(tiny_tokenizer):
    tok = tiny_tokenizer
    batch = PromptTemplate(tok, "hpt", num_levels=L).encode(["[MASK] is about [SEP] [CLS]"], MAX_LENGTH)
    text_ids = batch.input_ids[0][batch.text_mask[0]]
    assert tok.convert_ids_to_tokens(text_ids.tolist())[:5] == ["[", "mask", "]", "is", "about"]
    assert not torch.isin(text_ids, torch.tensor(tok.all_special_ids)).any()
    assert int((batch.input_ids[0] == tok.mask_token_id).sum()) == 2 * L


# ---------------------------------------------------------------------------------------------- other layouts
@pytest.mark.parametrize(
    ("kind", "constraint", "slots", "virtual"),
    [("hpt", False, 1, L), ("soft", True, 1, 8), ("hard", True, 1, 0), ("none", True, 1, 0)],
)
def test_other_layouts(tiny_tokenizer, plain_words, kind: str, constraint: bool, slots: int, virtual: int):
    tok = tiny_tokenizer
    template = PromptTemplate(tok, kind, num_levels=L, constraint=constraint)
    assert (template.num_slots, template.num_virtual) == (slots, virtual)
    tail = expected_tail(tok, kind, constraint=constraint)
    assert template.template_length == 1 + len(tail)
    texts = [text_of(plain_words, 4), text_of(plain_words, 200)]
    batch = template.encode(texts, MAX_LENGTH)
    assert batch.pred_pos.shape == (2, slots) and batch.tmpl_pos.shape == (2, virtual)
    for b, text in enumerate(texts):
        start = check_row(batch, b, text, tok, template, tail)
        if kind == "none":
            assert batch.pred_pos[b].tolist() == [0]  # the [CLS] slot
        else:
            pred = int(batch.pred_pos[b, 0])
            assert pred == start + len(tail) - 2  # the [PRED]/[MASK] right before the final [SEP]
            assert int(batch.input_ids[b, pred]) == tok.mask_token_id
            assert batch.tmpl_pos[b].tolist() == [start + 1 + k for k in range(virtual)]


def test_hard_prompt_words_are_real_vocabulary_ids(tiny_tokenizer):
    tok = tiny_tokenizer
    batch = PromptTemplate(tok, "hard").encode(["jazz"], MAX_LENGTH)
    assert tok.convert_ids_to_tokens(batch.input_ids[0].tolist()) == [
        "[CLS]", "jazz", "[SEP]", "the", "text", "is", "about", "[MASK]", "[SEP]",
    ]  # fmt: skip


def test_max_length_too_small(tiny_tokenizer):
    template = PromptTemplate(tiny_tokenizer, "hpt", num_levels=8)  # NYT depth: 19 template tokens
    assert template.template_length == 19
    with pytest.raises(ConfigError, match=r"max_length 19 leaves no room for text.*max_length >= 35"):
        template.encode(["a text"], 19)
    assert template.text_budget(20) == 1


def test_empty_list_of_texts(tiny_tokenizer):
    template = PromptTemplate(tiny_tokenizer, "hpt", num_levels=L)
    with pytest.raises(ConfigError, match="No texts to encode"):
        template.encode([], MAX_LENGTH)


def test_unknown_template_kind(tiny_tokenizer):
    with pytest.raises(ConfigError, match="Unknown template 'prefix'; choose one of hpt, soft, hard, none"):
        PromptTemplate(tiny_tokenizer, "prefix")
