"""Tests of hpt_core.verbalizer: label-word init (Eq. 1), per-level scoring (Eq. 10), the hard-prompt scorer."""

from __future__ import annotations

import math

import pytest
import torch

from hpt_core.verbalizer import HardVerbalizer, Verbalizer, headword, label_name_embeddings


@pytest.fixture
def embeddings(tiny_vocab: list[str]) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(len(tiny_vocab), 8)


def test_label_words_are_the_mean_of_the_name_wordpieces(tiny_tokenizer, embeddings):
    tok = tiny_tokenizer
    names = ["Parenting", "Machine learning", "Alzheimer's Disease", "Jazz"]
    assert tok.tokenize("Parenting") == ["parent", "##ing"]  # a name of several wordpieces
    words = label_name_embeddings(tok, embeddings, names)
    assert words.shape == (4, 8)
    for row, name in zip(words, names, strict=True):
        ids = tok.convert_tokens_to_ids(tok.tokenize(name))
        assert tok.unk_token_id not in ids
        torch.testing.assert_close(row, embeddings[ids].mean(0))


def test_label_words_with_special_tokens_include_cls_and_sep(tiny_tokenizer, embeddings):
    tok = tiny_tokenizer
    words = label_name_embeddings(tok, embeddings, ["Machine learning"], include_special=True)
    ids = [tok.cls_token_id, *tok.convert_tokens_to_ids(["machine", "learning"]), tok.sep_token_id]
    torch.testing.assert_close(words[0], embeddings[ids].mean(0))


def test_label_words_are_a_detached_copy(tiny_tokenizer, embeddings):
    source = embeddings.clone().requires_grad_(True)
    words = label_name_embeddings(tiny_tokenizer, source, ["Jazz"])
    assert not words.requires_grad
    words += 1.0
    torch.testing.assert_close(source.detach(), embeddings)


def test_a_name_the_tokenizer_drops_falls_back_to_unk(tiny_tokenizer, embeddings):
    words = label_name_embeddings(tiny_tokenizer, embeddings, ["\x00\x01"])
    torch.testing.assert_close(words[0], embeddings[tiny_tokenizer.unk_token_id])


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("National Hockey League", "League"),
        ("Theory of computation", "Theory"),
        ("Machine learning", "learning"),
        ("comp.graphics", "graphics"),
        ("Top/News/Sports", "Sports"),
        ("CS", "CS"),
    ],
)
def test_headword(name: str, head: str):
    assert headword(name) == head


# ---------------------------------------------------------------------------------------------- Verbalizer
def test_each_label_is_scored_at_its_own_slot():
    torch.manual_seed(0)
    c, d, b, p = 5, 8, 3, 2
    slots = torch.tensor([0, 0, 1, 1, 1])
    verbalizer = Verbalizer(torch.randn(c, d), slots)
    z = torch.randn(b, p, d)
    scores = verbalizer(z)
    assert scores.shape == (b, c)
    for row in range(b):
        for i in range(c):
            expected = z[row, slots[i]] @ verbalizer.label_words[i] + verbalizer.bias[i]
            torch.testing.assert_close(scores[row, i], expected)


def test_verbalizer_parameters_and_bias_init():
    torch.manual_seed(0)
    init = torch.randn(400, 32)
    verbalizer = Verbalizer(init, torch.zeros(400), two_biases=False)
    assert verbalizer.decoder_bias is None
    assert verbalizer.label_words.data_ptr() != init.data_ptr()
    torch.testing.assert_close(verbalizer.label_words.detach(), init)
    bound = 1 / math.sqrt(32)
    assert verbalizer.bias.abs().max() <= bound
    assert verbalizer.bias.abs().max() > 0.9 * bound  # uniform over the whole interval, not 1/√768
    assert {n for n, _ in verbalizer.named_parameters()} == {"label_words", "bias"}


def test_two_biases_add_a_zero_initialised_decoder_bias():
    torch.manual_seed(0)
    verbalizer = Verbalizer(torch.randn(3, 4), torch.zeros(3), two_biases=True)
    assert torch.equal(verbalizer.decoder_bias, torch.zeros(3))
    z = torch.randn(2, 1, 4)
    with torch.no_grad():
        verbalizer.decoder_bias += torch.tensor([1.0, 2.0, 3.0])
    expected = z[:, 0] @ verbalizer.label_words.t() + verbalizer.bias + verbalizer.decoder_bias
    torch.testing.assert_close(verbalizer(z), expected)


# ---------------------------------------------------------------------------------------------- HardVerbalizer
def test_hard_verbalizer_scores_the_headword_logits(tiny_tokenizer):
    tok = tiny_tokenizer
    names = ["Parenting", "Theory of computation", "Jazz", "Contemporary Jazz"]
    torch.manual_seed(0)
    verbalizer = HardVerbalizer(tok, names, hidden_size=16)
    assert verbalizer.bias.abs().max() <= 1 / math.sqrt(16)
    weight, bias = torch.randn(len(tok), 16), torch.randn(len(tok))
    z = torch.randn(3, 1, 16)
    scores = verbalizer(z, weight, bias)
    assert scores.shape == (3, 4)
    logits = z[:, 0] @ weight.t() + bias  # (B, V): the full MLM logits
    for i, word in enumerate(["parenting", "theory", "jazz", "jazz"]):
        ids = tok(word, add_special_tokens=False)["input_ids"]
        torch.testing.assert_close(scores[:, i], logits[:, ids].mean(1) + verbalizer.bias[i])
    # Labels sharing a headword differ only by their own bias.
    torch.testing.assert_close(scores[:, 2] - verbalizer.bias[2], scores[:, 3] - verbalizer.bias[3])
