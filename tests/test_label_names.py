"""Tests of hpt_core.label_names: name splitting, the label-names file (checked like data), and its use by the model
(initial label words, the checkpoint's label_names.json, old checkpoints unchanged)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from hpt_core.checkpoint import read_checkpoint
from hpt_core.errors import CheckpointError, DatasetError
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.label_names import (
    LabelName,
    label_names_from_dict,
    label_texts,
    load_label_names,
    readable_name,
    split_words,
)
from hpt_core.model import HPTConfig, HPTModel

REPO_ROOT = Path(__file__).resolve().parents[1]
NEWSGROUPS_FILE = REPO_ROOT / "assets" / "label-names" / "20ng.tsv"
NEWSGROUPS_PATHS = [
    ["alt", "alt.atheism"],
    ["comp", "comp.graphics"],
    ["comp", "comp.os.ms-windows.misc"],
    ["comp", "comp.sys.ibm.pc.hardware"],
    ["comp", "comp.sys.mac.hardware"],
    ["comp", "comp.windows.x"],
    ["misc", "misc.forsale"],
    ["rec", "rec.autos"],
    ["rec", "rec.motorcycles"],
    ["rec", "rec.sport.baseball"],
    ["rec", "rec.sport.hockey"],
    ["sci", "sci.crypt"],
    ["sci", "sci.electronics"],
    ["sci", "sci.med"],
    ["sci", "sci.space"],
    ["soc", "soc.religion.christian"],
    ["talk", "talk.politics.guns"],
    ["talk", "talk.politics.mideast"],
    ["talk", "talk.politics.misc"],
    ["talk", "talk.religion.misc"],
]


@pytest.fixture
def newsgroups() -> LabelHierarchy:
    return LabelHierarchy.from_paths(NEWSGROUPS_PATHS)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- splitting
@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("comp.sys.ibm.pc.hardware", ["comp", "sys", "ibm", "pc", "hardware"]),
        ("Toys_&_Games", ["toys", "games"]),
        ("comp.os.ms-windows.misc", ["comp", "os", "ms", "windows", "misc"]),
        ("HIV/AIDS", ["hiv", "aids"]),
        ("machineLearning", ["machine", "learning"]),
        ("XMLParser", ["xml", "parser"]),
        ("Alzheimer's Disease", ["alzheimer's", "disease"]),
        ("", []),
    ],
)
def test_split_words(name: str, words: list[str]):
    assert split_words(name) == words


@pytest.mark.parametrize(
    ("name", "readable"),
    [
        ("sys.ibm.pc.hardware", "ibm pc hardware"),  # comp.sys.ibm.pc.hardware once its parent's prefix is gone
        ("Toys_&_Games", "toys games"),
        ("politics.misc", "politics"),  # generic code words are dropped ...
        ("misc", "misc"),  # ... unless nothing else is left
        ("Machine learning", "machine learning"),
        ("\x00", "\x00"),  # no words at all: the name as it is (the tokenizer falls back to [UNK])
    ],
)
def test_readable_name(name: str, readable: str):
    assert readable_name(name) == readable


def test_label_texts_on_the_newsgroups_tree(newsgroups):
    texts = dict(zip(newsgroups.names, label_texts(newsgroups), strict=True))
    assert texts["comp.sys.ibm.pc.hardware"] == "ibm pc hardware"
    assert texts["comp.os.ms-windows.misc"] == "os ms windows"
    assert texts["rec.sport.hockey"] == "sport hockey" and texts["misc"] == "misc"
    old = dict(zip(newsgroups.names, label_texts(newsgroups, split=False), strict=True))
    assert old["comp.sys.ibm.pc.hardware"] == "sys.ibm.pc.hardware"  # the behaviour before, one flag away
    comp = newsgroups.index(["comp"])
    named = label_texts(newsgroups, names={comp: LabelName("computers", "long words that are never embedded")})
    assert named[comp] == "computers" and named[newsgroups.index("sci.med")] == "med"


# ---------------------------------------------------------------------------------------------- the file
def test_the_shipped_newsgroups_file_names_every_label(newsgroups):
    names = load_label_names(NEWSGROUPS_FILE, newsgroups)
    assert sorted(names) == list(range(27))
    assert names[newsgroups.index("alt")].name == "atheism"
    assert names[newsgroups.index("comp")].name == "computers"
    assert names[newsgroups.index("misc.forsale")].name == "for sale"
    assert names[newsgroups.index(["rec", "rec.sport.hockey"])].name == "hockey"
    assert names[newsgroups.index("sci.med")].name == "medicine"
    assert names[newsgroups.index("talk.politics.guns")].name == "guns politics"
    assert all(n.description for n in names.values())


def test_the_shipped_file_fits_the_real_taxonomy(shared_dir):
    hierarchy = LabelHierarchy.from_taxonomy(shared_dir / "data" / "20newsgroups" / "20ng.taxonomy")
    assert len(load_label_names(NEWSGROUPS_FILE, hierarchy)) == hierarchy.num_labels == 27


def test_json_and_tsv_give_the_same_mapping(tmp_path, newsgroups):
    tsv = write(
        tmp_path / "names.tsv",
        "# a comment\npath\tname\tdescription\ncomp\tcomputers\tcomputer hardware and software\n\n"
        "sci > sci.med\tmedicine\nmisc.forsale\tfor sale\n",
    )
    data = {
        "comp": {"name": "computers", "description": "computer hardware and software"},
        "sci > sci.med": "medicine",
        "misc.forsale": {"name": "for sale"},
    }
    js = write(tmp_path / "names.json", json.dumps(data, indent=2))
    expected = {
        newsgroups.index("comp"): LabelName("computers", "computer hardware and software"),
        newsgroups.index("sci.med"): LabelName("medicine"),
        newsgroups.index("misc.forsale"): LabelName("for sale"),
    }
    assert load_label_names(tsv, newsgroups) == load_label_names(js, newsgroups) == expected


def test_a_tsv_file_is_checked_line_by_line_and_nothing_is_applied(tmp_path, newsgroups):
    file = write(
        tmp_path / "names.tsv",
        "comp\tcomputers\n"  # 1: fine
        "sci > sci.medd\tmedicine\n"  # 2: unknown label
        "comp\tcomputing\n"  # 3: duplicate
        "rec\t  \n"  # 4: empty name
        "talk politics\n"  # 5: no tab
        "alt\ta\tb\tc\n",  # 6: too many columns
    )
    with pytest.raises(DatasetError) as caught:
        load_label_names(file, newsgroups)
    problems = caught.value.problems
    assert len(problems) == 5, problems
    assert problems[0].startswith(f"{file}:2: path: ") and "'sci.med'" in problems[0]
    assert "Closest known path: 'sci > sci.med'" in problems[0]
    assert problems[1].startswith(f"{file}:3: path: ") and "given twice (first at line 1)" in problems[1]
    assert problems[2].startswith(f"{file}:4: name: empty for 'rec'")
    assert problems[3].startswith(f"{file}:5: name: missing") and "tab" in problems[3]
    assert problems[4].startswith(f"{file}:6: ") and "4 tab-separated columns" in problems[4]
    assert str(caught.value).startswith(f"{file}: 5 problems found:")


def test_a_json_file_is_checked_with_line_numbers(tmp_path, newsgroups):
    text = '{\n  "comp": "computers",\n  "comp": "again",\n  "sci > space": "space",\n  "rec": {"nam": "x"},\n'
    text += '  "alt": 3,\n  "talk": {"name": ""}\n}\n'
    file = write(tmp_path / "names.json", text)
    with pytest.raises(DatasetError) as caught:
        load_label_names(file, newsgroups)
    problems = caught.value.problems
    assert [p.split(": ", 2)[0] for p in problems] == [f"{file}:{n}" for n in (3, 4, 5, 6, 7)], problems
    assert "given twice (first at line 2)" in problems[0]
    assert "Closest known path: 'sci > sci.space'" in problems[1]
    assert "unknown key(s) ['nam']" in problems[2] and "got a number" in problems[3] and "empty" in problems[4]
    bad = write(tmp_path / "bad.json", '{\n  "comp": "computers",\n  "sci": science\n}\n')
    with pytest.raises(DatasetError, match=rf"{bad}:3: invalid JSON"):
        load_label_names(bad, newsgroups)
    with pytest.raises(DatasetError, match="expected one JSON object"):
        load_label_names(write(tmp_path / "list.json", '["comp"]'), newsgroups)


def test_missing_file_and_wrong_type(tmp_path, newsgroups):
    with pytest.raises(DatasetError, match="does not exist"):
        load_label_names(tmp_path / "nope.tsv", newsgroups)
    with pytest.raises(DatasetError, match="use .tsv"):
        load_label_names(write(tmp_path / "names.csv", "comp,computers\n"), newsgroups)


# ---------------------------------------------------------------------------------------------- the model
def tiny_names(tree: LabelHierarchy) -> dict[int, LabelName]:
    return {
        tree.index(["Science"]): LabelName("stars and light", "what the universe is made of"),
        tree.index(["Arts", "Music", "Jazz"]): LabelName("rhythm"),
    }


def test_display_names_initialise_the_label_words(make_backbone, tiny_tokenizer, tiny_tree):
    tok = tiny_tokenizer
    names = tiny_names(tiny_tree)
    torch.manual_seed(0)
    plain = HPTModel(HPTConfig(max_length=128), tiny_tree, make_backbone(0), tok)
    named = HPTModel(HPTConfig(max_length=128), tiny_tree, make_backbone(0), tok, names)
    words = named.word_embeddings.weight.detach()
    for label, display in names.items():
        ids = tok.convert_tokens_to_ids(tok.tokenize(display.name))  # the name only, never the description
        assert tok.unk_token_id not in ids
        torch.testing.assert_close(named.verbalizer.label_words[label].detach(), words[ids].mean(0))
        assert not torch.allclose(named.verbalizer.label_words[label], plain.verbalizer.label_words[label])
    others = [i for i in range(tiny_tree.num_labels) if i not in names]
    torch.testing.assert_close(named.verbalizer.label_words[others], plain.verbalizer.label_words[others])
    assert named.label_names == {
        "Science": {"name": "stars and light", "description": "what the universe is made of"},
        "Arts > Music > Jazz": {"name": "rhythm", "description": ""},
    }
    assert plain.label_names == {}


def test_hard_prompt_headwords_come_from_the_display_name(make_backbone, tiny_tokenizer, tiny_tree):
    model = HPTModel(
        HPTConfig.for_variant("hard", max_length=128),
        tiny_tree,
        make_backbone(0),
        tiny_tokenizer,
        tiny_names(tiny_tree),
    )
    row = model.verbalizer.word_ids[tiny_tree.index(["Science"])]
    assert tiny_tokenizer.convert_ids_to_tokens(row[:1].tolist()) == ["light"]  # headword of "stars and light"


def test_label_names_round_trip_through_the_checkpoint(make_backbone, tiny_tokenizer, tiny_tree, tmp_path):
    names = tiny_names(tiny_tree)
    model = HPTModel(HPTConfig(max_length=128), tiny_tree, make_backbone(0), tiny_tokenizer, names)
    folder = model.save_pretrained(tmp_path / "named")
    stored = json.loads((folder / "label_names.json").read_text(encoding="utf-8"))
    assert stored == model.label_names
    loaded = HPTModel.from_pretrained(folder)
    assert loaded.label_names == model.label_names
    torch.testing.assert_close(loaded.verbalizer.label_words, model.verbalizer.label_words)
    # the stored file is itself a valid label-names file
    assert load_label_names(folder / "label_names.json", tiny_tree) == names
    plain = HPTModel(HPTConfig(max_length=128), tiny_tree, make_backbone(0), tiny_tokenizer)
    assert not (plain.save_pretrained(tmp_path / "plain") / "label_names.json").exists()
    assert HPTModel.from_pretrained(tmp_path / "plain").label_names == {}


def test_a_label_names_file_that_does_not_fit_the_checkpoint_is_refused(tiny_tree):
    with pytest.raises(CheckpointError, match="does not fit"):
        label_names_from_dict({"Nowhere": {"name": "x"}}, tiny_tree)
    with pytest.raises(CheckpointError, match="expected an object"):
        label_names_from_dict(["Science"], tiny_tree)


@pytest.mark.slow  # loads and scores the shipped checkpoint twice
def test_old_checkpoints_load_and_score_the_same_either_way(tmp_path):
    """A checkpoint saved before names splitting (``checkpoints/20ng-hpt`` as it was: no ``label_name_split`` field,
    no ``label_names.json``): its label words are stored, so the init rule is moot."""
    shipped = REPO_ROOT / "checkpoints" / "20ng-hpt"
    if not (shipped / "model.safetensors").is_file():
        pytest.skip("the demo checkpoint is not present")
    folder = tmp_path / "old-20ng-hpt"
    shutil.copytree(shipped, folder, ignore=shutil.ignore_patterns("label_names.json"))
    saved_file = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    saved_file["hpt_config"].pop("label_name_split", None)
    (folder / "config.json").write_text(json.dumps(saved_file), encoding="utf-8")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))["hpt_config"]
    assert "label_name_split" not in config and not (folder / "label_names.json").exists()
    model = HPTModel.from_pretrained(folder)
    assert model.label_names == {} and not model.config.label_name_split  # initialised from the raw names
    saved = read_checkpoint(folder, HPTConfig.from_dict)
    split = dataclasses.replace(saved.config, label_name_split=True)
    resplit = HPTModel(split, saved.hierarchy, saved.backbone, saved.tokenizer)
    saved.load_weights(resplit)
    resplit.eval()
    texts = ["The new graphics card renders 3D scenes fast.", "The goalie stopped every shot in the third period."]
    with torch.no_grad():
        torch.testing.assert_close(model(model.encode(texts)).scores, resplit(resplit.encode(texts)).scores)
