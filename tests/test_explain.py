"""Tests of hpt_core.explain: nearest vocabulary words of the label words and the 2-D label-word map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpt_core.errors import ConfigError
from hpt_core.explain import LabelWords, label_word_map, label_word_matrix, nearest_words, word_map
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.model import HPTConfig


@pytest.fixture
def model(make_model, tiny_tree):
    return make_model(HPTConfig(max_length=48), tiny_tree).eval()


def set_label_word(model, label: int, token: str, scale: float = 3.0) -> int:
    """Make label ``label``'s virtual label word a scaled copy of ``token``'s embedding row; returns the token id."""
    token_id = model.tokenizer.convert_tokens_to_ids(token)
    assert token_id != model.tokenizer.unk_token_id or token == "[UNK]", token
    with torch.no_grad():
        model.verbalizer.label_words[label] = scale * model.word_embeddings.weight[token_id]
    return token_id


def test_nearest_words_shape_order_and_filter(model, tiny_tree):
    out = nearest_words(model, top_k=6)
    assert [w.label for w in out] == tiny_tree.names
    special = set(model.tokenizer.all_special_tokens)
    for label, item in enumerate(out):
        assert isinstance(item, LabelWords)
        assert item.path == tiny_tree.path(label) and item.depth == tiny_tree.depth_of[label]
        assert len(item.words) == 6
        sims = [s for _, s in item.words]
        assert sims == sorted(sims, reverse=True)
        assert all(-1.0 - 1e-6 <= s <= 1.0 + 1e-6 for s in sims)
        words = [w for w, _ in item.words]
        assert len(set(words)) == 6
        assert not special & set(words)
        assert not any(w.startswith("##") or w.startswith("[") for w in words)
        assert all(any(c.isalnum() for c in w) for w in words)  # no pure punctuation


def test_label_word_equal_to_a_vocabulary_row_finds_that_word(model, tiny_tree):
    jazz = tiny_tree.index(["Arts", "Music", "Jazz"])
    set_label_word(model, jazz, "rhythm")
    (item,) = nearest_words(model, top_k=3, labels=[jazz])
    word, similarity = item.words[0]
    assert word == "rhythm"
    assert similarity == pytest.approx(1.0, abs=1e-5)
    assert item.words[1][1] < 1.0 - 1e-3
    assert item.label == "Jazz" and item.path == ["Arts", "Music", "Jazz"]


def test_whole_words_filters_pieces_and_punctuation(model, tiny_tree):
    a, b, c = (tiny_tree.index(p) for p in (["Science"], ["Arts"], ["Arts", "Music"]))
    set_label_word(model, a, "##ing")
    set_label_word(model, b, ",")
    mask_id = set_label_word(model, c, "[MASK]")
    loose = nearest_words(model, top_k=4, whole_words=False, labels=[a, b, c])
    assert loose[0].words[0][0] == "##ing" and loose[0].words[0][1] == pytest.approx(1.0, abs=1e-5)
    assert loose[1].words[0][0] == ","
    # Special tokens are never returned, not even a label word that is exactly the [MASK] row.
    assert model.tokenizer.convert_ids_to_tokens(mask_id) not in [w for w, _ in loose[2].words]
    strict = nearest_words(model, top_k=4, whole_words=True, labels=[a, b, c])
    assert "##ing" not in [w for w, _ in strict[0].words]
    assert "," not in [w for w, _ in strict[1].words]
    assert all(not w.startswith("##") for item in strict for w, _ in item.words)


def test_top_k_is_capped_and_validated(model):
    special = set(model.tokenizer.all_special_tokens)
    vocab_words = [t for t in model.tokenizer.get_vocab() if t not in special]  # "[" alone is plain punctuation
    (item,) = nearest_words(model, top_k=10**6, whole_words=False, labels=[0])
    assert len(item.words) == len(vocab_words)
    with pytest.raises(ConfigError, match="top_k must be at least 1, got 0"):
        nearest_words(model, top_k=0)


def test_to_dict(model):
    (item,) = nearest_words(model, top_k=2, labels=[0])
    data = item.to_dict()
    assert set(data) == {"label", "path", "depth", "words"}
    assert [set(w) for w in data["words"]] == [{"word", "similarity"}] * 2
    assert data["words"][0]["similarity"] == round(item.words[0][1], 4)


def test_hard_prompt_label_words_are_headword_embeddings(make_model, tiny_tree):
    model = make_model(HPTConfig(template="hard", max_length=48), tiny_tree)
    jazz = tiny_tree.index(["Arts", "Music", "Jazz"])
    vectors = label_word_matrix(model)
    assert vectors.shape == (tiny_tree.num_labels, model.hidden_size)
    jazz_id = model.tokenizer.convert_tokens_to_ids("jazz")
    torch.testing.assert_close(vectors[jazz], model.word_embeddings.weight[jazz_id].detach())
    (item,) = nearest_words(model, top_k=1, labels=[jazz])
    assert item.words[0][0] == "jazz"


def test_finetune_model_has_no_label_words(make_model, tiny_tree):
    model = make_model(HPTConfig(template="none", max_length=48), tiny_tree)
    with pytest.raises(ConfigError, match="fine-tune"):
        nearest_words(model)
    with pytest.raises(ConfigError, match="fine-tune"):
        label_word_map(model)


@pytest.mark.slow  # UMAP compiles its numba kernels (~20 s)
@pytest.mark.filterwarnings("ignore:n_jobs value:UserWarning")  # umap: a seeded run is single-threaded
def test_label_word_map_umap(model, tiny_tree):
    coords = label_word_map(model, seed=0)
    assert coords.shape == (tiny_tree.num_labels, 2)
    assert np.isfinite(coords).all()
    assert np.ptp(coords, axis=0).min() > 0  # a real 2-D layout, not a collapsed line or point


@pytest.mark.parametrize("paths", [[["Science", "Physics"], ["Arts", "Music"]], [["Science"]]])
def test_label_word_map_pca_for_few_labels(make_model, paths):
    hierarchy = LabelHierarchy.from_paths(paths)  # 4 labels (and 1): below UMAP's minimum, PCA instead
    model = make_model(HPTConfig(max_length=48), hierarchy)
    coords = label_word_map(model)
    assert coords.shape == (hierarchy.num_labels, 2)
    assert np.isfinite(coords).all()
    np.testing.assert_allclose(coords.mean(axis=0), 0.0, atol=1e-5)  # PCA coordinates are centred
    if hierarchy.num_labels > 2:
        # The first two principal components keep the pairwise distances' dominant structure: the spread along the
        # first axis is at least that along the second.
        assert coords[:, 0].std() >= coords[:, 1].std() - 1e-6
    np.testing.assert_array_equal(label_word_map(model), coords)  # deterministic


def test_initial_label_words_explain_the_label_names(model, tiny_tree):
    from hpt_core.explain import initial_label_words

    set_label_word(model, tiny_tree.index(["Science", "Biology"]), "jazz")  # training moved the label word away
    label = tiny_tree.index(["Science", "Biology"])
    [after] = nearest_words(model, top_k=3, labels=[label])
    [before] = nearest_words(model, top_k=3, labels=[label], initial=True)
    assert after.words[0][0] == "jazz"
    assert before.words[0][0] == "biology" and before.words[0][1] == pytest.approx(1.0, abs=1e-5)
    assert initial_label_words(model).shape == label_word_matrix(model).shape


@pytest.mark.slow  # UMAP compiles its numba kernels (~20 s)
def test_word_map_places_each_labels_nearest_words(model, tiny_tree):
    result = word_map(model, top_k=4)
    assert result.label_coords.shape == (tiny_tree.num_labels, 2)
    assert len(result.words) == len(result.word_coords) == tiny_tree.num_labels
    for words, coords in zip(result.words, result.word_coords):
        assert coords.shape == (len(words.words), 2) and np.isfinite(coords).all()
