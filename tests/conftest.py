"""Shared fixtures: tiny offline models, a hand-made tree and a slice of real WOS data.

Everything here runs offline (``HF_HUB_OFFLINE=1``) and in well under a second per model, following the
transformers "model tester" pattern: a 2-layer, 32-hidden ``BertForMaskedLM`` built from a ``BertConfig`` and a
``BertTokenizerFast`` whose ``vocab.txt`` is written at test time.

Fixtures (scope):

- ``shared_dir`` (session): the project's ``shared/`` folder (data and docs); tests using it are skipped when absent.
- ``wos_docs`` (session): the first 32 lines of ``shared/data/wos/subset_1k/wos_total_1k.json`` as
  ``(text, [domain, area])`` pairs; every pair is a valid path of ``wos_hierarchy``.
- ``wos_hierarchy`` (session): ``LabelHierarchy.from_taxonomy(shared/data/wos/wos.taxnomy)`` (141 labels, 2 levels).
- ``tiny_tree`` / ``tiny_tree_paths`` / ``tiny_docs``: a hand-made 3-level tree (2 top labels, 5 mid, 6 leaves; the
  mid label ``Science > Chemistry`` has no children, i.e. a partial path) and a few short documents with their paths.
- ``tiny_vocab`` / ``tiny_tokenizer`` (session): a word-level BERT vocabulary built from the WOS fixture texts, the
  label names of both trees and the hard-prompt words, plus ``[PAD] [UNK] [CLS] [SEP] [MASK]`` and a few ``##``
  pieces (so names such as "Parenting" split into wordpieces).
- ``tiny_bert`` (session) / ``make_backbone``: factory ``make_backbone(seed=0, **config_overrides)`` → a fresh,
  seeded tiny ``BertForMaskedLM`` (override e.g. ``hidden_size=256``).
- ``save_tiny_backbone`` (session): factory ``save_tiny_backbone(**config_overrides)`` → a directory holding a tiny
  backbone and the fixture tokenizer, usable as ``--backbone DIR`` or ``HPTConfig(backbone=DIR)``.
- ``make_model``: factory ``make_model(config=None, hierarchy=None, *, seed=0, backbone=None, **config_overrides)``
  → ``HPTModel`` on a tiny backbone. The same seed and config give bit-identical weights, so two calls can be diffed
  (ablation tests). Defaults: ``HPTConfig(max_length=128)`` and ``tiny_tree``.
- ``make_targets``: factory ``make_targets(hierarchy, paths)`` → ``(B, C)`` float multi-hot targets with every
  ancestor of each path switched on (the data format of spec §5.2).

The tiny backbone has ``max_position_embeddings=256``, so ``config.max_length`` must stay ≤ 256 (``make_model``
checks this).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

from hpt_core.hierarchy import LabelHierarchy  # noqa: E402
from hpt_core.model import HPTConfig, HPTModel  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
NUM_WOS_DOCS = 32
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SUBWORD_PIECES = ["##s", "##ing", "##ed", "##ly", "##er", "##ion"]
# Words of the hard-prompt layout ("The text is about [MASK]") and a few filler words for hand-written texts.
# "pred", "mask", ... make a literal "[PRED]" or "[MASK]" in user text tokenise as plain words ("[", "pred", "]").
EXTRA_WORDS = ["the", "text", "is", "about", "a", "of", "and", "we", "study", "results", "paper"]
EXTRA_WORDS += ["pred", "mask", "sep", "cls", "pad", "unk"]

TINY_TREE_PATHS: list[list[str]] = [
    ["Science", "Physics", "Quantum optics"],
    ["Science", "Physics", "Astronomy"],
    ["Science", "Biology", "Genetics"],
    ["Science", "Biology", "Ecology"],
    ["Science", "Chemistry"],  # partial path: a mid-level label without children
    ["Arts", "Music", "Jazz"],
    ["Arts", "Painting", "Portraits"],
]
TINY_DOCS: list[tuple[str, list[str]]] = [
    ("we study quantum optics of light", ["Science", "Physics", "Quantum optics"]),
    ("the paper is about astronomy and stars", ["Science", "Physics", "Astronomy"]),
    ("genetics results", ["Science", "Biology", "Genetics"]),
    ("a long text about ecology of the forest and the river and the animals in it", ["Science", "Biology", "Ecology"]),
    ("chemistry", ["Science", "Chemistry"]),
    ("jazz music is about rhythm", ["Arts", "Music", "Jazz"]),
    ("portraits of people in painting", ["Arts", "Painting", "Portraits"]),
]
_WORD = re.compile(r"\w+|[^\w\s]")


def _shared_dir() -> Path:
    """``shared/`` next to the repository (``../shared``), or inside it on machines that carry a copy."""
    for candidate in (REPO_ROOT.parent / "shared", REPO_ROOT / "shared"):
        if (candidate / "data").is_dir():
            return candidate
    return REPO_ROOT.parent / "shared"


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data/docs folder; skips the requesting test when it is missing."""
    path = _shared_dir()
    if not (path / "data").is_dir():
        pytest.skip(f"shared data folder not found at {path}")
    return path


@pytest.fixture(scope="session")
def wos_docs(shared_dir: Path) -> list[tuple[str, list[str]]]:
    """The first 32 WOS abstracts as ``(text, [domain, area])``."""
    docs = []
    with open(shared_dir / "data" / "wos" / "subset_1k" / "wos_total_1k.json", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            docs.append((record["doc_token"], list(record["doc_label"])))
            if len(docs) == NUM_WOS_DOCS:
                break
    return docs


@pytest.fixture(scope="session")
def wos_hierarchy(shared_dir: Path) -> LabelHierarchy:
    """The 141-label WOS tree (7 domains, 134 areas)."""
    return LabelHierarchy.from_taxonomy(shared_dir / "data" / "wos" / "wos.taxnomy")


@pytest.fixture(scope="session")
def tiny_tree_paths() -> list[list[str]]:
    """Root-first label paths of ``tiny_tree`` (one ends at depth 1)."""
    return [list(p) for p in TINY_TREE_PATHS]


@pytest.fixture
def tiny_tree() -> LabelHierarchy:
    """3 levels: 2 top labels, 5 mid labels, 6 leaves (13 labels); ``Science > Chemistry`` has no children."""
    return LabelHierarchy.from_paths(TINY_TREE_PATHS)


@pytest.fixture(scope="session")
def tiny_docs() -> list[tuple[str, list[str]]]:
    """Seven short texts (3 to 16 words) with their ``tiny_tree`` path, one per leaf plus the partial path."""
    return [(text, list(path)) for text, path in TINY_DOCS]


@pytest.fixture(scope="session")
def tiny_vocab(wos_docs: list[tuple[str, list[str]]], wos_hierarchy: LabelHierarchy) -> list[str]:
    """Special tokens, then the sorted lower-cased words of the fixture texts and label names, then ``##`` pieces."""
    words: set[str] = set(EXTRA_WORDS)
    texts = [text for text, _ in wos_docs] + [text for text, _ in TINY_DOCS]
    texts += wos_hierarchy.names + [name for path in TINY_TREE_PATHS for name in path]
    for text in texts:
        words.update(_words(text))
    words.discard("parenting")  # kept out on purpose: "Parenting" must split into "parent" + "##ing"
    words.add("parent")
    return SPECIAL_TOKENS + sorted(words - set(SPECIAL_TOKENS)) + SUBWORD_PIECES


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_vocab: list[str], tmp_path_factory: pytest.TempPathFactory):
    """A lower-casing ``BertTokenizerFast`` over ``tiny_vocab`` (no hub access)."""
    from transformers import BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    (folder / "vocab.txt").write_text("\n".join(tiny_vocab) + "\n", encoding="utf-8")
    # transformers 5 takes the vocabulary as ``vocab=`` (a path or a dict); ``vocab_file=`` is silently ignored there
    # and leaves a 5-token vocabulary that maps every word to [UNK].
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    assert len(tokenizer) == len(tiny_vocab), "the tiny vocabulary was not loaded"
    return tokenizer


@pytest.fixture(scope="session")
def tiny_bert(tiny_vocab: list[str]) -> Callable[..., torch.nn.Module]:
    """Factory of fresh seeded tiny ``BertForMaskedLM`` models; keyword arguments override ``BertConfig`` fields."""
    from transformers import BertConfig, BertForMaskedLM

    def factory(seed: int = 0, **overrides):
        values = dict(
            vocab_size=len(tiny_vocab),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=256,
        )
        values.update(overrides)
        torch.manual_seed(seed)
        return BertForMaskedLM(BertConfig(**values))

    return factory


@pytest.fixture
def make_backbone(tiny_bert: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
    """``tiny_bert`` for one test (kept as the name most tests use)."""
    return tiny_bert


@pytest.fixture(scope="session")
def save_tiny_backbone(tiny_bert, tiny_tokenizer, tmp_path_factory) -> Callable[..., Path]:
    """Factory: a tiny backbone and the fixture tokenizer saved as a local Hugging Face directory (``--backbone``)."""

    def factory(**overrides) -> Path:
        folder = tmp_path_factory.mktemp("tiny_backbone")
        tiny_bert(**overrides).save_pretrained(folder)
        tiny_tokenizer.save_pretrained(folder)
        return folder

    return factory


@pytest.fixture
def make_model(make_backbone, tiny_tokenizer, tiny_tree: LabelHierarchy) -> Callable[..., HPTModel]:
    """Factory ``make_model(config=None, hierarchy=None, *, seed=0, backbone=None, **config_overrides)``.

    The backbone and the HPT parameters are both drawn after ``torch.manual_seed(seed)``, so equal arguments give
    equal weights. ``config_overrides`` go to ``make_backbone`` (e.g. ``hidden_size=256``). The model is returned in
    training mode, as ``nn.Module`` does.
    """

    def factory(
        config: HPTConfig | None = None,
        hierarchy: LabelHierarchy | None = None,
        *,
        seed: int = 0,
        backbone: torch.nn.Module | None = None,
        **config_overrides,
    ) -> HPTModel:
        config = config if config is not None else HPTConfig(max_length=128)
        backbone = backbone if backbone is not None else make_backbone(seed, **config_overrides)
        limit = backbone.config.max_position_embeddings
        if config.max_length > limit:
            raise ValueError(f"config.max_length={config.max_length} exceeds the tiny backbone's {limit} positions")
        torch.manual_seed(seed)
        return HPTModel(config, hierarchy if hierarchy is not None else tiny_tree, backbone, tiny_tokenizer)

    return factory


@pytest.fixture
def make_targets() -> Callable[[LabelHierarchy, Sequence[Sequence[str]]], torch.Tensor]:
    """Factory ``make_targets(hierarchy, paths)`` → ``(B, C)`` float multi-hot with all ancestors switched on."""

    def factory(hierarchy: LabelHierarchy, paths: Sequence[Sequence[str]]) -> torch.Tensor:
        y = torch.zeros(len(paths), hierarchy.num_labels)
        for row, path in enumerate(paths):
            y[row, hierarchy.closure([hierarchy.index(list(path))])] = 1.0
        return y

    return factory


# ---------------------------------------------------------------------------------------------------- the app
REPO = Path(__file__).resolve().parent.parent
TINY_BACKBONE_CHOICE = "tiny (test backbone)"


@pytest.fixture(scope="session")
def app_server(save_tiny_backbone, tmp_path_factory):
    """The real app launched on 127.0.0.1 (a free port): the shipped demo checkpoints, fine-tuned models in a temp
    folder, a tiny backbone as the only fine-tune choice and as the duel's encoder, and the first 80 WOS-1k abstracts
    as the demo dataset.

    Yields ``(studio, url)``; the server closes at the end of the session.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from app import build_demo, launch_options
    from app.common import Studio
    from app.config import AppConfig
    from hpt_core.training import TrainConfig

    folder = tmp_path_factory.mktemp("app")
    demo_data = folder / "wos-demo-80.json"
    lines = (REPO / "assets" / "wos-1k" / "wos_total_1k.json").read_text(encoding="utf-8").splitlines()[:80]
    demo_data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tiny = str(save_tiny_backbone())
    config = AppConfig(
        user_dir=folder / "models",
        demo_dataset=demo_data,
        demo_hierarchy=None,
        backbones={TINY_BACKBONE_CHOICE: tiny},
        baseline_backbone=tiny,  # the duel's encoder: tiny here too (test_app_jobs covers it with the real flow)
        train=TrainConfig(epochs=2, batch_size=16, lr=1e-4, seed=0),
        model=HPTConfig(max_length=64),
    )
    studio = Studio.create(config)
    demo = build_demo(studio=studio)
    demo.queue(default_concurrency_limit=4).launch(
        server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **launch_options(config)
    )
    try:
        yield studio, demo.local_url
    finally:
        demo.close()


@pytest.fixture
def wos_40_file(tmp_path: Path) -> Path:
    """The first 40 real WOS abstracts of ``assets/wos-1k`` as a data file (a tiny training set for CLI/job tests)."""
    lines = (REPO_ROOT / "assets" / "wos-1k" / "wos_total_1k.json").read_text(encoding="utf-8").splitlines()[:40]
    path = tmp_path / "wos40.json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------- a fresh clone
@pytest.fixture
def clone_files(tmp_path) -> Callable[[str], Path]:
    """Factory ``clone_files(name)``: the repository's files as a fresh clone has them (those git tracks or would add),
    copied to ``tmp_path/name`` outside the checkout, without the weights, benchmark results and docs."""

    def factory(name: str) -> Path:
        import shutil
        import subprocess

        copy = tmp_path / name
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        for relative in listed:
            if (
                not relative.startswith(("checkpoints/", "benchmarks/results/", "docs/"))
                and (REPO_ROOT / relative).is_file()
            ):
                (copy / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO_ROOT / relative, copy / relative)
        return copy

    return factory
