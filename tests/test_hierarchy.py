"""Tests of hpt_core.hierarchy: the shipped taxonomies, malformed files, path identity, serialisation (spec §8.1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from hpt_core.errors import HierarchyError
from hpt_core.hierarchy import LabelHierarchy


def write(tmp_path: Path, text: str | bytes, name: str = "bad.taxonomy") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- shipped taxonomies
def test_wos_taxonomy_has_141_labels_on_two_levels(wos_hierarchy: LabelHierarchy):
    h = wos_hierarchy
    assert h.num_labels == 141
    assert h.num_levels == 2
    assert h.level_sizes() == [7, 134]
    domains = set(h.labels_at_depth(0))
    for area in h.labels_at_depth(1):
        assert h.parents[area] in domains
        assert len(h.ancestors(area)) == 1
    assert sorted(h.name(i) for i in domains) == sorted(
        ["CS", "Medical", "Civil", "ECE", "biochemistry", "MAE", "Psychology"]
    )
    # Every area appears under exactly one domain: the children lists partition the areas.
    kids = [c for d in domains for c in h.children(d)]
    assert sorted(kids) == sorted(h.labels_at_depth(1))


@pytest.mark.parametrize(
    ("relative", "num_labels", "sizes"),
    [
        ("data/taxonomies/nyt.taxonomy", 166, [4, 27, 51, 47, 17, 12, 6, 2]),
        ("data/taxonomies/rcv1.taxonomy", 103, [4, 55, 43, 1]),
        ("data/20newsgroups/20ng.taxonomy", 27, [7, 20]),
    ],
)
def test_shipped_taxonomies(shared_dir: Path, relative: str, num_labels: int, sizes: list[int]):
    h = LabelHierarchy.from_taxonomy(shared_dir / relative)
    assert h.num_labels == num_labels
    assert h.level_sizes() == sizes
    assert all((p == -1) == (d == 0) for p, d in zip(h.parents, h.depth_of, strict=True))
    assert all(h.depth_of[i] == h.depth_of[p] + 1 for i, p in enumerate(h.parents) if p >= 0)


def test_label_ids_are_ordered_by_depth(shared_dir: Path):
    h = LabelHierarchy.from_taxonomy(shared_dir / "data/taxonomies/nyt.taxonomy")
    assert h.depth_of == sorted(h.depth_of)
    assert h.labels_at_depth(0) == list(range(4))


def test_short_name_strips_the_nyt_parent_prefix(shared_dir: Path):
    h = LabelHierarchy.from_taxonomy(shared_dir / "data/taxonomies/nyt.taxonomy")
    sports = h.index("Top/News/Sports")
    assert h.path(sports) == ["Top/News", "Top/News/Sports"]
    assert h.short_name(sports) == "Sports"
    assert h.short_name(h.index("Top/News")) == "News"
    assert h.short_name(h.index("Top/Features")) == "Features"


def test_short_name_keeps_plain_names(wos_hierarchy: LabelHierarchy):
    h = wos_hierarchy
    assert h.short_name(h.index(["CS", "Machine learning"])) == "Machine learning"
    assert h.short_name(h.index("Medical")) == "Medical"


def test_short_name_keeps_a_slash_inside_a_plain_name(wos_hierarchy: LabelHierarchy):
    """The '/' fallback is for NYT's top-level 'Top/Features' only: WOS 'HIV/AIDS' (child of Medical) stays whole."""
    hiv = wos_hierarchy.index(["Medical", "HIV/AIDS"])
    assert wos_hierarchy.short_name(hiv) == "HIV/AIDS"
    top = LabelHierarchy.from_paths([["Top/Features", "Top/Features/Arts"], ["A/B", "C/D"]])
    assert [top.short_name(i) for i in range(4)] == ["Features", "B", "Arts", "C/D"]


def test_taxonomy_without_root_line_is_an_edge_list(tmp_path: Path):
    h = LabelHierarchy.from_taxonomy(write(tmp_path, "A\tA1\tA2\nB\tB1\n"))
    assert h.level_sizes() == [2, 3]
    assert h.path(h.index("B1")) == ["B", "B1"]


# ---------------------------------------------------------------------------------------------- malformed files
@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        pytest.param("Root\tA\tB\nA\tX\nB\tX\n", r"bad\.taxonomy:3: label 'X' has two parents", id="two-parents"),
        pytest.param("Root\tA\nA\tA\n", r"bad\.taxonomy:2: label 'A' is listed as its own child", id="self-loop"),
        pytest.param("Root\tA\nA\n", r"bad\.taxonomy:2: line has a parent 'A' but no children", id="no-children"),
        pytest.param("Root\tA\nA\tRoot\n", r"bad\.taxonomy:2: 'Root' cannot be a child", id="root-as-child"),
        pytest.param(
            "Root\tA\nB\tB1\n", r"bad\.taxonomy: label 'B' has children but is not a child of Root", id="orphan"
        ),
        pytest.param("A\tB\nB\tA\n", r"bad\.taxonomy: cycle in the hierarchy", id="cycle"),
        pytest.param("Root\tA\nB\tC\nC\tB\n", r"bad\.taxonomy: cycle in the hierarchy", id="cycle-below-root"),
        pytest.param("\n\n", r"bad\.taxonomy: no labels found", id="empty"),
    ],
)
def test_malformed_taxonomy_names_file_and_line(tmp_path: Path, text: str, pattern: str):
    with pytest.raises(HierarchyError, match=pattern):
        LabelHierarchy.from_taxonomy(write(tmp_path, text))


def test_cycle_message_shows_the_cycle(tmp_path: Path):
    with pytest.raises(HierarchyError) as info:
        LabelHierarchy.from_taxonomy(write(tmp_path, "A\tB\nB\tA\n"))
    assert re.search(r"(A -> B -> A|B -> A -> B)", str(info.value))


def test_binary_file(tmp_path: Path):
    with pytest.raises(HierarchyError, match=r"bad\.taxonomy: looks like a binary file"):
        LabelHierarchy.from_taxonomy(write(tmp_path, b"Root\tA\x00\x01\x02\nA\tB\n"))


def test_non_utf8_file(tmp_path: Path):
    with pytest.raises(HierarchyError, match=r"bad\.taxonomy: not UTF-8 text \(byte 0\)"):
        LabelHierarchy.from_taxonomy(write(tmp_path, "Root\tA\u00e9\n".encode("utf-16")))


def test_latin1_file_reports_the_byte(tmp_path: Path):
    with pytest.raises(HierarchyError, match=r"not UTF-8 text \(byte 6\)"):
        LabelHierarchy.from_taxonomy(write(tmp_path, "Root\tA\u00e9\n".encode("latin-1")))


def test_missing_file(tmp_path: Path):
    with pytest.raises(HierarchyError, match=r"nope\.taxonomy does not exist"):
        LabelHierarchy.from_taxonomy(tmp_path / "nope.taxonomy")


def test_utf8_bom_and_blank_lines_are_accepted(tmp_path: Path):
    h = LabelHierarchy.from_taxonomy(write(tmp_path, "\ufeffRoot\tA\tB\n\nA\tA1\t\n"))
    assert h.names == ["A", "B", "A1"]


# ---------------------------------------------------------------------------------------------- from_paths, identity
def test_from_paths_keeps_duplicate_names_distinct():
    h = LabelHierarchy.from_paths(
        [["Medical", "Depression"], ["Psychology", "Depression"], ["Psychology", "Schizophrenia"]]
    )
    assert h.num_labels == 5
    med, psy = h.index(["Medical", "Depression"]), h.index("Psychology > Depression")
    assert med != psy
    assert h.name(med) == h.name(psy) == "Depression"
    assert h.parents[med] == h.index("Medical") and h.parents[psy] == h.index("Psychology")
    assert h.index("Schizophrenia") == h.index(["Psychology", "Schizophrenia"])  # unique name: accepted alone
    with pytest.raises(HierarchyError, match=r"'Depression' is ambiguous.*Medical > Depression.*Psychology"):
        h.index("Depression")


def test_index_errors_say_what_is_wrong(tiny_tree: LabelHierarchy):
    with pytest.raises(HierarchyError, match="deeper than the hierarchy: 'Jazz' has no children"):
        tiny_tree.index(["Arts", "Music", "Jazz", "Bebop"])
    with pytest.raises(HierarchyError, match="deeper than the hierarchy: 'Chemistry' has no children"):
        tiny_tree.index(["Science", "Chemistry", "Organic"])
    with pytest.raises(HierarchyError, match="'Genetcs' is not a child of 'Biology'.*'Genetics'"):
        tiny_tree.index(["Science", "Biology", "Genetcs"])
    with pytest.raises(HierarchyError, match="'Sport' is not a top-level label"):
        tiny_tree.index(["Sport"])


@pytest.mark.parametrize("bad", [[], ["A", ""], ["", "B"]])
def test_from_paths_rejects_empty_names(bad: list[str]):
    with pytest.raises(HierarchyError, match="empty"):
        LabelHierarchy.from_paths([["A", "B"], bad])


def test_tiny_tree_shape(tiny_tree: LabelHierarchy):
    h = tiny_tree
    assert h.level_sizes() == [2, 5, 6]
    chemistry = h.index(["Science", "Chemistry"])
    assert h.depth_of[chemistry] == 1 and h.is_leaf(chemistry)
    assert [h.name(i) for i in h.children(None)] == ["Science", "Arts"]
    assert [h.name(i) for i in h.children(h.index("Physics"))] == ["Quantum optics", "Astronomy"]
    assert h.path(h.index("Jazz")) == ["Arts", "Music", "Jazz"]
    assert h.path_string(h.index("Jazz")) == "Arts > Music > Jazz"


# ---------------------------------------------------------------------------------------------- closure, graph
def test_closure_and_consistency(tiny_tree: LabelHierarchy):
    h = tiny_tree
    jazz, chem = h.index("Jazz"), h.index("Chemistry")
    assert h.closure([jazz]) == sorted([h.index("Arts"), h.index("Music"), jazz])
    assert h.closure([jazz, chem]) == sorted([h.index(n) for n in ("Arts", "Music", "Jazz", "Science", "Chemistry")])
    assert h.closure([]) == []
    assert h.is_consistent(h.closure([jazz]))
    assert not h.is_consistent([jazz])
    assert not h.is_consistent([h.index("Arts"), jazz])  # grandparent without parent
    assert h.is_consistent([h.index("Arts")])  # a parent without children is fine
    assert h.is_consistent([])


def test_edge_index(tiny_tree: LabelHierarchy):
    h = tiny_tree
    edges = h.edge_index()
    assert edges.shape == (2, h.num_labels - len(h.labels_at_depth(0)))
    assert edges.dtype == torch.long
    pairs = {tuple(e) for e in edges.t().tolist()}
    assert pairs == {(p, i) for i, p in enumerate(h.parents) if p >= 0}


def test_edge_index_of_a_flat_hierarchy():
    h = LabelHierarchy.from_paths([["a"], ["b"]])
    assert h.edge_index().shape == (2, 0)
    assert h.num_levels == 1


def test_to_networkx(tiny_tree: LabelHierarchy):
    graph = tiny_tree.to_networkx()
    assert graph.number_of_nodes() == tiny_tree.num_labels + 1
    assert graph.number_of_edges() == tiny_tree.num_labels
    assert set(graph.successors("Root")) == set(tiny_tree.labels_at_depth(0))


# ---------------------------------------------------------------------------------------------- serialisation
def test_dict_round_trip(wos_hierarchy: LabelHierarchy, tiny_tree: LabelHierarchy):
    import json

    for h in (wos_hierarchy, tiny_tree):
        data = json.loads(json.dumps(h.to_dict()))
        assert data["format"] == "hpt-hierarchy/1"
        back = LabelHierarchy.from_dict(data)
        assert back.names == h.names
        assert back.parents == h.parents
        assert back.depth_of == h.depth_of
        assert [back.path(i) for i in range(back.num_labels)] == [h.path(i) for i in range(h.num_labels)]


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"labels": [{"name": "a", "parent": 0}]}, "invalid parent id 0"),
        ({"labels": [{"name": "a", "parent": -1}, {"name": "b", "parent": 5}]}, "invalid parent id 5"),
        ({"labels": [{"name": "a"}]}, "malformed"),
        ({"nodes": []}, "malformed"),
        ({"labels": []}, "no labels"),
    ],
)
def test_from_dict_rejects_bad_data(data: dict, pattern: str):
    with pytest.raises(HierarchyError, match=pattern):
        LabelHierarchy.from_dict(data)


def test_unknown_label_hints_say_how_many_names_are_not_shown():
    tree = LabelHierarchy.from_paths([["Top", f"child{k:02d}"] for k in range(11)] + [[f"other{k}"] for k in range(9)])
    with pytest.raises(HierarchyError) as caught:
        tree.index(["Top", "nope"])
    assert "'child07' and 3 more); check" in str(caught.value) and "'child08'" not in str(caught.value)
    with pytest.raises(HierarchyError, match=r"top-level: 'Top', .*'other6' and 2 more\); check"):
        tree.index(["nope"])
    with pytest.raises(HierarchyError, match=r"\(children: 'Genetics', 'Zoology'\); check"):  # all shown: no "more"
        LabelHierarchy.from_paths([["Biology", "Genetics"], ["Biology", "Zoology"]]).index(["Biology", "x"])
