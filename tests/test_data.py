"""Tests of hpt_core.data: the real WOS and 20 Newsgroups files, every format variant, every bad-input message
(``FILE:LINE: field: ...``), validation reports, splits, low-resource subsampling and a fuzzing property."""

from __future__ import annotations

import gzip
import json
import string
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpt_core.data import (
    Dataset,
    Document,
    ValidationReport,
    load_20newsgroups,
    load_dataset,
    low_resource,
    read_records,
    read_texts,
    split_dataset,
    strip_newsgroup_message,
    validate,
)
from hpt_core.errors import ConfigError, DatasetError, HierarchyError
from hpt_core.hierarchy import LabelHierarchy

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WOS_JSON = DATA / "wos" / "subset_1k" / "wos_total_1k.json"
WOS_TAXONOMY = DATA / "wos" / "wos.taxnomy"
NG_JSONL = DATA / "20newsgroups" / "20news-bydate.jsonl.gz"
NG_TAXONOMY = DATA / "20newsgroups" / "20ng.taxonomy"

TREE = LabelHierarchy.from_paths([["CS", "ML"], ["CS", "Vision"], ["Med", "Cancer"], ["Med", "Heart"]])


def write(path: Path, content: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to ``path`` and return it."""
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


def doc(text: str = "some text", labels: object = (("CS", "ML"),), **extra: object) -> dict[str, object]:
    return {"text": text, "labels": [list(p) for p in labels] if isinstance(labels, tuple) else labels, **extra}


def names(dataset: Dataset, document: Document) -> list[str]:
    return [dataset.hierarchy.path_string(i) for i in document.labels]


# ------------------------------------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def wos() -> Dataset:
    return load_dataset(WOS_JSON, hierarchy_file=WOS_TAXONOMY)


@pytest.fixture(scope="module")
def news() -> Dataset:
    return load_20newsgroups(NG_JSONL)


def test_wos_subset_loads_against_the_taxonomy(wos: Dataset) -> None:
    assert len(wos) == 1000
    assert wos.hierarchy.num_labels == 141
    assert wos.hierarchy.level_sizes() == [7, 134]
    assert all(len(d.labels) == 2 for d in wos.documents)
    assert all(sorted(wos.hierarchy.depth_of[i] for i in d.labels) == [0, 1] for d in wos.documents)
    first = wos.documents[0]
    assert names(wos, first) == ["Medical", "Medical > Senior Health"]
    assert first.line == 1 and first.split is None
    assert first.text.startswith("this paper investigates the research productivity")
    counts = wos.label_counts()
    top = {wos.hierarchy.name(i): counts[i] for i in wos.hierarchy.labels_at_depth(0)}
    assert top == {
        "Medical": 300,
        "CS": 152,
        "Psychology": 149,
        "ECE": 123,
        "biochemistry": 121,
        "Civil": 83,
        "MAE": 72,
    }
    assert sum(1 for i in wos.hierarchy.labels_at_depth(1) if counts[i]) == 128


def test_wos_without_taxonomy_builds_the_hierarchy_from_the_paths() -> None:
    dataset = load_dataset(WOS_JSON)
    assert dataset.hierarchy.level_sizes() == [7, 128]
    assert names(dataset, dataset.documents[0]) == ["Medical", "Medical > Senior Health"]


def test_wos_records_are_one_chain_path() -> None:
    records = read_records(WOS_JSON)
    assert len(records) == 1000
    assert records[0].paths == [["Medical", "Senior Health"]]
    assert records[999].line == 1000


def test_20newsgroups_loads_with_the_taxonomy(news: Dataset) -> None:
    assert len(news) == 18846
    assert news.hierarchy.num_labels == 27
    assert news.hierarchy.level_sizes() == [7, 20]
    assert Counter(d.split for d in news.documents) == {"train": 11314, "test": 7532}
    with gzip.open(NG_JSONL, "rt", encoding="utf-8") as f:
        raw = [json.loads(line) for line in f]
    for document, obj in zip(news.documents, raw, strict=True):
        assert names(news, document) == [obj["label_l1"], f"{obj['label_l1']} > {obj['label']}"]
    assert news.documents[0].text == raw[0]["text"]
    assert all(c > 0 for c in news.label_counts())


@pytest.mark.slow  # reads all 18,846 20 Newsgroups messages
def test_20newsgroups_generic_loader_matches_the_taxonomy(news: Dataset) -> None:
    plain = load_dataset(NG_JSONL, hierarchy_file=NG_TAXONOMY)
    assert [d.labels for d in plain.documents] == [d.labels for d in news.documents]
    built = load_dataset(NG_JSONL)  # hierarchy from the records' paths: same leaves as the taxonomy
    assert sorted(built.hierarchy.path_string(i) for i in range(27)) == sorted(
        news.hierarchy.path_string(i) for i in range(27)
    )


MESSAGE = """From: someone@example.edu (Some One)
Subject: Re: Shaft-drives
Organization: Example University
Lines: 12

In article <1r16ja$dpa@news.example.edu>, other@example.edu (Other) wrote:
> Is it possible to do a wheelie with shaft-drive?
|> an older quote
No. It is impossible due to the shaft effect.
The centripetal effects counteract it.

--
Some One   Example University
    All standard disclaimers apply.
"""


def test_strip_newsgroup_message_removes_headers_quotes_and_signature() -> None:
    assert strip_newsgroup_message(MESSAGE) == (
        "No. It is impossible due to the shaft effect.\nThe centripetal effects counteract it.\n"
    )
    assert strip_newsgroup_message("Subject: only headers\n") == ""
    no_signature = "From: a@b\n\nFirst line.\nSecond line."  # no blank/dash line: nothing is cut as a footer
    assert strip_newsgroup_message(no_signature) == "First line.\nSecond line."


@pytest.mark.slow  # reads all 18,846 20 Newsgroups messages
def test_stripped_20newsgroups_keeps_every_message_without_headers(news: Dataset) -> None:
    stripped = load_20newsgroups(NG_JSONL, strip=True)
    assert len(stripped) == len(news) == 18846
    assert [d.labels for d in stripped.documents] == [d.labels for d in news.documents]
    texts = [d.text for d in stripped.documents]
    headed = sum(1 for d in news.documents if d.text.startswith(("From:", "Subject:")))
    assert headed > 18000  # every raw message opens with its headers; only forwarded ones keep a second block
    assert sum(1 for t in texts if t.startswith(("From:", "Subject:"))) < 0.01 * len(texts)

    def quoting(text: str) -> bool:
        return any(line.startswith(">") or "writes:" in line or "wrote:" in line for line in text.split("\n"))

    assert sum(quoting(d.text) for d in news.documents) > 8000
    assert sum(quoting(t) for t in texts) < 0.01 * len(texts)  # indented quotes ("  > ...") stay, as in sklearn
    empty = sum(1 for t in texts if not t.strip())
    assert 0 < empty < 100  # a few messages are nothing but headers and quotes; they keep their place
    assert sum(len(t) for t in texts) < 0.7 * sum(len(d.text) for d in news.documents)


def test_validate_real_files() -> None:
    report = validate(WOS_JSON, hierarchy_file=WOS_TAXONOMY)
    assert report.ok() and report.problems == []
    assert (report.n_documents, report.n_labels, report.labels_per_depth) == (1000, 141, [7, 134])
    assert report.label_counts["Medical > Senior Health"] >= 1
    assert report.label_counts["Medical"] == 300
    assert report.splits == {"unsplit": 1000}
    data = json.loads(json.dumps(report.to_dict()))
    assert data["problems_found"] == 0 and data["ok"] is True


def test_read_texts_of_a_data_file_ignores_labels() -> None:
    texts = read_texts(WOS_JSON)
    assert len(texts) == 1000 and texts[0].startswith("this paper")


# ------------------------------------------------------------------------------------------------ formats
def test_jsonl_label_shapes(tmp_path: Path) -> None:
    file = write(
        tmp_path / "shapes.jsonl",
        jsonl(
            doc(labels=(("CS", "ML"),)),
            doc(labels=["CS", "Vision"]),
            doc(labels="Med > Cancer"),
            doc(labels=["CS > ML", "Med > Heart"]),
            doc(labels=[["Med"], "CS > Vision"]),
            doc(labels="Med", split="test", unknown_field={"ignored": True}),
        ),
    )
    dataset = load_dataset(file, hierarchy=TREE)
    got = [names(dataset, d) for d in dataset.documents]
    assert got == [
        ["CS", "CS > ML"],
        ["CS", "CS > Vision"],
        ["Med", "Med > Cancer"],
        ["CS", "Med", "CS > ML", "Med > Heart"],
        ["CS", "Med", "CS > Vision"],
        ["Med"],
    ]
    assert [d.split for d in dataset.documents] == [None] * 5 + ["test"]
    assert dataset.hierarchy is TREE
    assert dataset.label_counts()[TREE.index("CS")] == 4


def test_split_aliases_and_blank_lines(tmp_path: Path) -> None:
    file = write(
        tmp_path / "s.jsonl",
        jsonl(doc(split="Train"), doc(split="validation"), doc(split="val")) + "\n  \n" + jsonl(doc(split="")),
    )
    records = read_records(file)
    assert [r.split for r in records] == ["train", "dev", "dev", None]
    assert [r.line for r in records] == [1, 2, 3, 6]


def test_single_name_resolves_to_its_unique_path(tmp_path: Path) -> None:
    file = write(tmp_path / "short.jsonl", jsonl(doc(labels=["Senior Health"])))
    dataset = load_dataset(file, hierarchy_file=WOS_TAXONOMY)
    assert names(dataset, dataset.documents[0]) == ["Medical", "Medical > Senior Health"]


def test_hpt_doc_label_chain_and_set(tmp_path: Path) -> None:
    tree = LabelHierarchy.from_paths([["CCAT", "C15", "C151"], ["GCAT", "GSPO"], ["ECAT"]])
    file = write(
        tmp_path / "hpt.json",
        jsonl(
            {"doc_token": "chain", "doc_label": ["CCAT", "C15", "C151"], "doc_topic": []},
            {"doc_token": ["a", "token", "list"], "doc_label": ["CCAT", "C15", "GCAT", "GSPO"]},
            {"doc_token": "unordered set", "doc_label": ["C151", "ECAT"]},
        ),
    )
    dataset = load_dataset(file, hierarchy=tree)
    assert [names(dataset, d) for d in dataset.documents] == [
        ["CCAT", "CCAT > C15", "CCAT > C15 > C151"],
        ["CCAT", "GCAT", "CCAT > C15", "GCAT > GSPO"],
        ["CCAT", "ECAT", "CCAT > C15", "CCAT > C15 > C151"],
    ]
    assert dataset.documents[1].text == "a token list"
    # Without a hierarchy doc_label is one path.
    assert load_dataset(file).hierarchy.num_levels == 4


def test_hpt_doc_label_unknown_names(tmp_path: Path) -> None:
    file = write(
        tmp_path / "hpt.json",
        jsonl({"doc_token": "x", "doc_label": ["CS", "Quantum"]}, {"doc_token": "y", "doc_label": ["Nope", "ML"]}),
    )
    with pytest.raises(DatasetError) as info:
        load_dataset(file, hierarchy=TREE)
    assert info.value.problems[0].startswith(f"{file}:1: labels: label 'Quantum' is not a child of 'CS'")
    assert info.value.problems[1].startswith(f"{file}:2: labels: label 'Nope' is not a top-level label")


def test_json_array_file(tmp_path: Path) -> None:
    content = "[\n" + ",\n".join(json.dumps(doc(text=f"t{i}")) for i in range(3)) + "\n]\n"
    file = write(tmp_path / "array.json", content)
    records = read_records(file)
    assert [(r.text, r.line) for r in records] == [("t0", 2), ("t1", 3), ("t2", 4)]
    bad = write(tmp_path / "badarray.json", '[\n{"text": "a", "labels": "CS"},\n{"text": "b", "labels": }\n]\n')
    with pytest.raises(DatasetError, match=r"badarray\.json:3: invalid JSON"):
        read_records(bad)


def test_csv_with_quotes_and_newlines(tmp_path: Path) -> None:
    content = (
        "Text,Labels,Split\n"
        '"first, with a comma",CS > ML,train\n'
        '"second\nspans ""three""\nlines",CS > ML; Med > Heart,test\n'
        "\n"
        "fourth,Med,\n"
    )
    file = write(tmp_path / "data.csv", content)
    records = read_records(file)
    assert [r.line for r in records] == [2, 3, 7]
    assert records[1].text == 'second\nspans "three"\nlines'
    assert records[1].paths == [["CS", "ML"], ["Med", "Heart"]]
    assert [r.split for r in records] == ["train", "test", None]
    dataset = load_dataset(file, hierarchy=TREE)
    assert names(dataset, dataset.documents[2]) == ["Med"]


def test_tsv_with_bom_and_crlf(tmp_path: Path) -> None:
    file = write(tmp_path / "data.tsv", "\ufefftext\tlabels\r\nhello\tCS > Vision\r\nworld\tMed\r\n".encode())
    dataset = load_dataset(file)
    assert [d.text for d in dataset.documents] == ["hello", "world"]
    assert [d.line for d in dataset.documents] == [2, 3]
    assert dataset.hierarchy.num_labels == 3


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_decoded(tmp_path: Path, codec: str) -> None:
    bom = b"\xff\xfe" if codec.endswith("le") else b"\xfe\xff"
    file = write(tmp_path / "wide.jsonl", bom + jsonl(doc(text="café ✓"), doc()).encode(codec))
    assert [r.text for r in read_records(file)] == ["café ✓", "some text"]


def test_gzip_and_utf8_bom(tmp_path: Path) -> None:
    file = tmp_path / "data.jsonl.gz"
    file.write_bytes(gzip.compress(("\ufeff" + jsonl(doc(), doc(text="b"))).encode()))
    assert len(load_dataset(file)) == 2


def test_read_texts_variants(tmp_path: Path) -> None:
    txt = write(tmp_path / "in.txt", "first text\n\n   \nsecond text\r\n")
    assert read_texts(txt) == ["first text", "second text"]
    unlabeled = write(tmp_path / "in.jsonl", jsonl({"text": "a"}, {"doc_token": "b", "labels": 5}))
    assert read_texts(unlabeled) == ["a", "b"]
    csv_file = write(tmp_path / "in.csv", 'id,text\n1,hello\n2,"multi\nline"\n')
    assert read_texts(csv_file) == ["hello", "multi\nline"]
    with pytest.raises(DatasetError, match=r"in\.jsonl:1: text: the text is empty"):
        read_texts(write(tmp_path / "in.jsonl", jsonl({"text": " "})))
    with pytest.raises(DatasetError, match=r"supported extensions are \.txt"):
        read_texts(write(tmp_path / "in.docx", "x"))


# ------------------------------------------------------------------------------------------------ bad input
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nothere\.jsonl: the file does not exist"):
        load_dataset(tmp_path / "nothere.jsonl")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    with pytest.raises(DatasetError, match=r"folder\.jsonl: is a directory"):
        load_dataset(folder)
    with pytest.raises(DatasetError, match=rf"{tmp_path.name}: is a directory"):
        read_texts(tmp_path)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(DatasetError, match=r"empty\.jsonl: the file is empty"):
        load_dataset(write(tmp_path / "empty.jsonl", content))


def test_no_documents(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"header\.csv: no records found"):
        load_dataset(write(tmp_path / "header.csv", "text,labels\n"))
    with pytest.raises(DatasetError, match=r"array\.json: no records found"):
        load_dataset(write(tmp_path / "array.json", "[ ]"))


def test_binary_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"bin\.jsonl: looks like a binary file"):
        load_dataset(write(tmp_path / "bin.jsonl", b'{"text": "a"}\n\x00\x01\x02\xff'))
    with pytest.raises(DatasetError, match=r"sheet\.csv: looks like a ZIP archive or an Excel workbook"):
        load_dataset(write(tmp_path / "sheet.csv", b"PK\x03\x04rest"))
    with pytest.raises(DatasetError, match=r"packed\.jsonl: the file is gzip-compressed"):
        load_dataset(write(tmp_path / "packed.jsonl", gzip.compress(b"x")))
    with pytest.raises(DatasetError, match=r"broken\.jsonl\.gz: not a valid gzip file"):
        load_dataset(write(tmp_path / "broken.jsonl.gz", gzip.compress(jsonl(doc()).encode())[:15]))


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    content = jsonl(doc()).encode() + '{"text": "caf\xe9", "labels": "CS"}\n'.encode("latin-1")
    file = write(tmp_path / "latin.jsonl", content)
    with pytest.raises(DatasetError, match=r"latin\.jsonl:2: not valid UTF-8 \(byte 0xE9 at column 14\); save"):
        load_dataset(file)
    bom = write(tmp_path / "bom.csv", b"\xef\xbb\xbftext,labels\nna\xefve,CS\n")
    with pytest.raises(DatasetError, match=r"bom\.csv:2: not valid UTF-8 \(byte 0xEF at column 3\)"):
        load_dataset(bom)


def test_invalid_json_line(tmp_path: Path) -> None:
    file = write(tmp_path / "bad.jsonl", jsonl(doc(), doc()) + '{"text": "cut off", "lab\n' + jsonl(doc()))
    with pytest.raises(
        DatasetError, match=r"bad\.jsonl:3: invalid JSON at column 21: Unterminated string; each line must be one"
    ):
        load_dataset(file)


@pytest.mark.parametrize(("value", "kind"), [([1, 2], "a list"), (7, r"a number \(7\)"), ("x", "a string")])
def test_json_line_not_an_object(tmp_path: Path, value: object, kind: str) -> None:
    file = write(tmp_path / "bad.jsonl", jsonl(doc(), value))
    with pytest.raises(DatasetError, match=rf"bad\.jsonl:2: expected a JSON object like .*, got {kind}"):
        load_dataset(file)


def test_missing_fields(tmp_path: Path) -> None:
    file = write(tmp_path / "bad.jsonl", jsonl({"body": "x", "labels": "CS"}, {"text": "x", "tags": ["CS"]}))
    with pytest.raises(DatasetError) as info:
        load_dataset(file)
    assert info.value.problems == [
        f"""{file}:1: text: missing; each record needs a "text" field (or "doc_token"). Fields found: 'body', """
        "'labels'.",
        f"""{file}:2: labels: missing; each record needs a "labels" field such as [["CS", "Machine learning"]] or """
        '"CS > Machine learning".',
    ]
    assert "2 problems found" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "the text is empty"), ("  \n\t", "the text is empty"), (3, r"expected a string, got a number \(3\)")],
)
def test_bad_text(tmp_path: Path, text: object, message: str) -> None:
    file = write(tmp_path / "bad.jsonl", jsonl(doc(), doc(), doc(text=text)))
    with pytest.raises(DatasetError, match=rf"bad\.jsonl:3: text: {message}"):
        load_dataset(file)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (5, r"expected a list of label paths .*, got a number \(5\)"),
        ({"CS": "ML"}, "expected a list of label paths .*, got an object"),
        (None, "expected a list of label paths .*, got null"),
        (True, r"expected a list .*, got a boolean \(true\)"),
        ([], "no labels given"),
        ([[]], "path 1 is empty"),
        ([["CS"], [1, 2]], "path 2 has a name that is a number"),
        ([["CS", ["ML"]]], "path 1 has a name that is a list, not a string"),
        ([["CS"], 4], r"path 2 is a number \(4\); each path must be a list of names"),
        ("", "path 1 is an empty string"),
        ("CS >  > ML", "path 1 has an empty label name"),
        ([["CS", " "]], "path 1 has an empty label name"),
        ([["CS>ML"]], "path 1 has the label name 'CS>ML' containing '>'"),
        ("\ud800", r"path 1 contains an invalid character \('\\ud800', a lone surrogate\)"),
    ],
)
def test_bad_labels(tmp_path: Path, labels: object, message: str) -> None:
    file = write(tmp_path / "bad.jsonl", jsonl(doc(), doc(labels=labels)))
    with pytest.raises(DatasetError, match=rf"bad\.jsonl:2: labels: {message}"):
        load_dataset(file)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("CS > Robotics", r"label 'Robotics' is not a child of 'CS' \(children: 'ML', 'Vision'\); check the spelling"),
        ("Physics", "label 'Physics' is not a top-level label of the hierarchy"),
        ("CS > ML > Deep", "label path 'CS > ML > Deep' is deeper than the hierarchy"),
        ("Med > ML", "label 'ML' is not a child of 'Med'"),
    ],
)
def test_labels_not_in_the_hierarchy(tmp_path: Path, labels: str, message: str) -> None:
    file = write(tmp_path / "bad.jsonl", jsonl(doc(), doc(), doc(), doc(labels=labels)))
    with pytest.raises(DatasetError, match=rf"bad\.jsonl:4: labels: {message}"):
        load_dataset(file, hierarchy=TREE)


def test_labels_against_a_taxonomy_file(tmp_path: Path) -> None:
    file = write(tmp_path / "wos.csv", "text,labels\nok,CS > Machine learning\nbad,Medical > Machine learning\n")
    with pytest.raises(DatasetError, match=r"wos\.csv:3: labels: label 'Machine learning' is not a child of 'Medical'"):
        load_dataset(file, hierarchy_file=WOS_TAXONOMY)


def test_invalid_split(tmp_path: Path) -> None:
    file = write(tmp_path / "bad.jsonl", jsonl(doc(split="train"), doc(split="holdout"), doc(split=1)))
    with pytest.raises(DatasetError) as info:
        load_dataset(file)
    assert info.value.problems[0].startswith(f"{file}:2: split: invalid split 'holdout'; use 'train', 'dev' or 'test'")
    assert info.value.problems[1].startswith(f"{file}:3: split: expected 'train', 'dev' or 'test', got a number")


def test_csv_missing_columns(tmp_path: Path) -> None:
    file = write(tmp_path / "bad.csv", "body,Labels\nx,CS\n")
    with pytest.raises(
        DatasetError, match=r"bad\.csv:1: header: missing column 'text'; found columns: 'body', 'Labels'"
    ):
        load_dataset(file)
    file = write(tmp_path / "semi.csv", "text;labels\nx;CS\n")
    with pytest.raises(DatasetError, match=r"semi\.csv:1: header: missing columns 'text', 'labels'.*uses? ';'"):
        load_dataset(file)


def test_csv_row_problems(tmp_path: Path) -> None:
    file = write(tmp_path / "bad.csv", 'text,labels\na,CS\nb, ; \nc,CS,extra\nd\n"unterminated,CS\nmore\n')
    with pytest.raises(DatasetError) as info:
        load_dataset(file)
    problems = info.value.problems
    assert problems[0].startswith(f"{file}:3: labels: empty; give at least one label path")
    assert problems[1].startswith(f"{file}:4: the row has 3 fields but the header has 2; quote fields")
    assert problems[2] == f"{file}:5: labels: missing (the row has 1 of 2 fields)."
    assert problems[3].startswith(f"{file}:6: malformed CSV record (unexpected end of data); check the quoting")
    assert len(problems) == 4


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"data\.xlsx: unsupported file type '\.xlsx'; supported extensions are"):
        load_dataset(write(tmp_path / "data.xlsx", "x"))
    with pytest.raises(DatasetError, match=r"\.jsonl, \.json, \.csv, \.tsv"):
        read_records(write(tmp_path / "notes.txt", "x"))


def test_all_problems_collected_and_capped(tmp_path: Path) -> None:
    file = write(tmp_path / "many.jsonl", jsonl(doc()) + jsonl(*[doc(text="") for _ in range(30)]))
    with pytest.raises(DatasetError) as info:
        load_dataset(file)
    error = info.value
    assert len(error.problems) == 30
    assert all(p.startswith(f"{file}:{n}: text: ") for n, p in enumerate(error.problems, start=2))
    message = str(error)
    assert message.startswith(f"{file}: 30 problems found:")
    assert f"{file}:21: text:" in message and f"{file}:22: text:" not in message
    assert message.endswith("... and 10 more problems")
    assert "Traceback" not in message


def test_hierarchy_file_errors(tmp_path: Path) -> None:
    data = write(tmp_path / "d.jsonl", jsonl(doc()))
    with pytest.raises(HierarchyError, match="does not exist"):
        load_dataset(data, hierarchy_file=tmp_path / "missing.taxonomy")
    with pytest.raises(ConfigError, match="not both"):
        load_dataset(data, hierarchy=TREE, hierarchy_file=WOS_TAXONOMY)
    report = validate(data, hierarchy_file=tmp_path / "missing.taxonomy")
    assert not report.ok() and "missing.taxonomy" in report.problems[0]
    assert report.n_documents == 1  # still counted against the file's own paths


# ------------------------------------------------------------------------------------------------ validate
def test_validate_collects_problems_without_raising(tmp_path: Path) -> None:
    file = write(
        tmp_path / "mixed.jsonl",
        jsonl(doc(split="train"), doc(labels="CS > Vision", split="test"), doc(labels="CS > Nope"), doc(text=""))
        + "{oops\n",
    )
    report = validate(file, hierarchy=TREE)
    assert isinstance(report, ValidationReport)
    assert not report.ok()
    assert [p.split(": ")[0] for p in report.problems] == [f"{file}:3", f"{file}:4", f"{file}:5"]
    assert report.n_documents == 2
    assert report.splits == {"train": 1, "test": 1}
    assert report.label_counts == {
        "CS": 2,
        "Med": 0,
        "CS > ML": 1,
        "CS > Vision": 1,
        "Med > Cancer": 0,
        "Med > Heart": 0,
    }
    assert report.labels_per_depth == [2, 4] and report.n_labels == 6
    capped = validate(file, hierarchy=TREE, max_problems=1)
    assert len(capped.problems) == 1 and capped.problems_found == 3
    assert capped.to_dict()["problems_found"] == 3


@pytest.mark.parametrize("name", ["absent.jsonl", "data.parquet"])
def test_validate_unusable_file(tmp_path: Path, name: str) -> None:
    report = validate(tmp_path / name)
    assert not report.ok()
    assert report.problems[0].startswith(f"{tmp_path / name}: ")
    assert report.n_documents == 0 and report.to_dict()["problems_found"] == 1


# ------------------------------------------------------------------------------------------------ splits
def _texts(dataset: Dataset) -> list[str]:
    return [d.text for d in dataset.documents]


def _numbered(n: int, tree: LabelHierarchy = TREE) -> Dataset:
    leaves = [i for i in range(tree.num_labels) if tree.is_leaf(i)]
    docs = [Document(f"doc {k}", tree.closure([leaves[k % len(leaves)]])) for k in range(n)]
    return Dataset(docs, tree, "synthetic")


def test_split_sizes_disjoint_and_deterministic() -> None:
    dataset = _numbered(200)
    train, dev, test = split_dataset(dataset, dev_fraction=0.1, test_fraction=0.2, seed=1)
    assert (len(train), len(dev), len(test)) == (140, 20, 40)
    parts = [set(_texts(p)) for p in (train, dev, test)]
    assert set.union(*parts) == set(_texts(dataset)) and sum(map(len, parts)) == 200
    again = split_dataset(dataset, dev_fraction=0.1, test_fraction=0.2, seed=1)
    assert [_texts(p) for p in again] == [_texts(p) for p in (train, dev, test)]
    other = split_dataset(dataset, dev_fraction=0.1, test_fraction=0.2, seed=2)
    assert _texts(other[2]) != _texts(test)
    # stratified by leaf: 4 balanced leaves -> 10 of each in test
    assert Counter(d.labels[-1] for d in test.documents) == {i: 10 for i in (2, 3, 4, 5)}
    assert train.hierarchy is TREE


def test_split_falls_back_when_classes_are_tiny(wos: Dataset) -> None:
    train, dev, test = split_dataset(wos, seed=0)
    assert (len(train), len(dev), len(test)) == (800, 100, 100)
    assert len(set(_texts(train)) | set(_texts(dev)) | set(_texts(test))) == len(set(_texts(wos)))
    tiny = _numbered(3)
    assert [len(p) for p in split_dataset(tiny, dev_fraction=0.34, test_fraction=0.34)] == [1, 1, 1]


def test_given_split_is_honoured(news: Dataset) -> None:
    train, dev, test = split_dataset(news, dev_fraction=0.0, seed=3)
    assert (len(train), len(dev), len(test)) == (11314, 0, 7532)
    # 20NG has no dev split: a seeded dev_fraction of the standard train split becomes dev, test stays standard.
    train, dev, test = split_dataset(news, seed=3)
    assert (len(train), len(dev), len(test)) == (10183, 1131, 7532)
    assert all(d.split == "test" for d in test.documents)
    assert not set(_texts(train)) & set(_texts(dev))
    assert _texts(split_dataset(news, seed=3)[1]) == _texts(dev)
    docs = [Document("a", [0], "dev"), Document("b", [0], None), Document("c", [0], "test"), Document("d", [0])]
    parts = split_dataset(Dataset(docs, TREE, "x"))
    assert [_texts(p) for p in parts] == [["b", "d"], ["a"], ["c"]]


@pytest.mark.parametrize(("dev", "test"), [(-0.1, 0.1), (0.5, 0.5), (0.1, 1.2), (float("nan"), 0.1)])
def test_split_fraction_errors(dev: float, test: float) -> None:
    with pytest.raises(ConfigError):
        split_dataset(_numbered(20), dev_fraction=dev, test_fraction=test)


def test_split_too_small() -> None:
    with pytest.raises(ConfigError, match="too few"):
        split_dataset(_numbered(2), dev_fraction=0.3, test_fraction=0.3)


# ------------------------------------------------------------------------------------------------ low resource
def test_low_resource_20newsgroups_train(news: Dataset) -> None:
    train = split_dataset(news, dev_fraction=0.0)[0]
    small = low_resource(train, 0.1, seed=0)
    assert abs(len(small) - 1131) <= 3
    leaves = {max(d.labels, key=lambda i: news.hierarchy.depth_of[i]) for d in small.documents}
    assert len(leaves) == 20
    per_leaf = Counter(d.labels[-1] for d in small.documents)
    full = Counter(d.labels[-1] for d in train.documents)
    assert all(abs(per_leaf[c] - full[c] * 0.1) <= 1 for c in full)  # proportional
    assert _texts(low_resource(train, 0.1, seed=0)) == _texts(small)
    assert _texts(low_resource(train, 0.1, seed=1)) != _texts(small)
    assert set(_texts(small)) <= set(_texts(train))
    assert all(d.split == "train" for d in small.documents)


def test_low_resource_small_fractions() -> None:
    dataset = _numbered(100)
    assert len(low_resource(dataset, 1.0)) == 100
    one_each = low_resource(dataset, 0.04)
    assert len(one_each) == 4 and len({d.labels[-1] for d in one_each.documents}) == 4
    assert len(low_resource(dataset, 0.02)) == 2
    assert len(low_resource(dataset, 0.001)) == 1
    tree = LabelHierarchy.from_paths([TREE.path(i) for i in range(TREE.num_labels)] + [["Med", "Rare"]])
    rare = Document("rare", tree.closure([tree.index("Med > Rare")]))
    skewed = Dataset(dataset.documents[:97] + [rare], tree, "skewed")
    assert len(low_resource(skewed, 0.05)) == 5
    assert all("rare" in _texts(low_resource(skewed, 0.05, seed=s)) for s in range(5))


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5, float("nan")])
def test_low_resource_fraction_errors(fraction: float) -> None:
    with pytest.raises(ConfigError, match=r"fraction must be a number in \(0, 1\]"):
        low_resource(_numbered(10), fraction)


# ------------------------------------------------------------------------------------------------ fuzzing
_keys = st.sampled_from(["text", "labels", "doc_token", "doc_label", "split", "label", "label_l1", "label_path", "x"])
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(string.printable + "é>;\u2028", max_size=8)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4))
_line = st.one_of(
    st.dictionaries(_keys, _json, max_size=5).map(json.dumps),
    _json.map(json.dumps),
    st.text(max_size=30),
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _check_never_crashes(file: Path) -> None:
    report = validate(file, hierarchy=None)
    assert isinstance(report, ValidationReport)
    json.dumps(report.to_dict())
    assert all(isinstance(p, str) and p.startswith(str(file)) for p in report.problems)
    try:
        dataset = load_dataset(file)
    except DatasetError as e:
        assert not report.ok() and e.problems
    else:
        assert report.ok() and len(dataset) == report.n_documents > 0


@settings(max_examples=50, deadline=None)
@given(lines=st.lists(_line, max_size=6), ext=st.sampled_from([".jsonl", ".json", ".csv", ".tsv"]))
def test_fuzz_json_ish_lines(fuzz_dir: Path, lines: list[str], ext: str) -> None:
    file = fuzz_dir / f"fuzz{ext}"
    file.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    _check_never_crashes(file)


@settings(max_examples=50, deadline=None)
@given(content=st.binary(max_size=200), ext=st.sampled_from([".jsonl", ".csv", ".tsv", ".json.gz"]))
def test_fuzz_random_bytes(fuzz_dir: Path, content: bytes, ext: str) -> None:
    file = fuzz_dir / f"bytes{ext}"
    file.write_bytes(content)
    _check_never_crashes(file)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_split_and_low_resource_reject_bad_seeds(seed) -> None:
    with pytest.raises(ConfigError, match="seed must be a whole number"):
        split_dataset(_numbered(20), seed=seed)
    with pytest.raises(ConfigError, match="seed must be a whole number"):
        low_resource(_numbered(20), 0.5, seed=seed)
