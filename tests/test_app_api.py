"""The launched app through ``gradio_client``: every API endpoint on real models and real data.

Uses the ``app_server`` fixture (tests/conftest.py): the shipped 20 Newsgroups demo checkpoints, and fine-tune jobs
on a tiny backbone over 80 real WOS abstracts, so a whole training job takes seconds.
"""

from __future__ import annotations

import csv
import json
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a live app server, tiny fine-tune jobs through /train

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from tests.conftest import REPO, TINY_BACKBONE_CHOICE  # noqa: E402

DEMO = "Demo dataset (real Web of Science abstracts)"
UPLOAD = "Upload my own data"
EXAMPLES = json.loads((REPO / "assets" / "examples" / "20ng.json").read_text(encoding="utf-8"))
LABEL_NAMES = REPO / "assets" / "label-names" / "20ng.tsv"  # the display names the demo models were trained with


@pytest.fixture(scope="module")
def client(app_server) -> Client:
    _, url = app_server
    return Client(url, verbose=False)


@pytest.fixture(scope="module")
def studio(app_server):
    return app_server[0]


def _backbone(studio) -> str:
    return studio.config.backbones[TINY_BACKBONE_CHOICE]


def _train(client: Client, studio, epochs: int = 2, source: str = DEMO, data=None, adapt_steps: int = 0) -> Client:
    args = (source, data, None, "hpt", _backbone(studio), epochs, 16, 64, 1e-3, adapt_steps > 0, adapt_steps or 300)
    return client.submit(*args, api_name="/train")


def _wait_idle(studio, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while studio.jobs.status().running and time.time() < deadline:
        time.sleep(0.5)
    assert not studio.jobs.status().running, "the job did not end in time"


def test_endpoints_have_api_names(client: Client) -> None:
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/predict", "/explain", "/validate", "/train", "/job_status", "/cancel"} <= names


def test_predict_matches_the_library_and_finds_the_gold_top_label(client: Client, studio) -> None:
    predictor = studio.registry.predictor("20ng-hpt")
    hits = tops = 0
    for example in EXAMPLES:
        tree, table, summary, result, icicle = client.predict(
            example["text"], "20ng-hpt", 0.5, "paper", "auto", api_name="/predict"
        )
        expected = predictor.predict(example["text"], best=True)[0]  # the app shows the best path by default
        assert result["paths"] == expected.paths  # the UI shows exactly what the library predicts
        assert result.get("below_threshold", False) == expected.below_threshold
        assert [row[1] for row in table["data"]] == [" > ".join(p) for p in expected.paths]
        assert tree["type"] == "plotly" and icicle["type"] == "plotly"
        hits += any(path[0] == example["label"][0] for path in result["paths"])
        tops += len({path[0] for path in result["paths"]})
    # 21 real test messages, 3 per top-level label: chance would find about 3 gold top levels; the demo model finds
    # 12 (its depth-0 macro-F1 on the whole test split is 74 %), predicting about one top level per message
    assert hits >= 10, hits
    assert tops <= 2 * len(EXAMPLES), tops


def test_threshold_changes_the_predicted_paths(client: Client) -> None:
    text = EXAMPLES[5]["text"]
    low = client.predict(text, "20ng-hpt", 0.05, "paper", "full", api_name="/predict")[3]
    high = client.predict(text, "20ng-hpt", 0.95, "paper", "full", api_name="/predict")[3]
    assert len(low["labels"]) > len(high["labels"])


def test_predict_errors_are_one_clear_sentence(client: Client) -> None:
    with pytest.raises(AppError, match="text is empty"):
        client.predict("   ", "20ng-hpt", 0.5, "paper", "auto", api_name="/predict")
    with pytest.raises(AppError, match="Unknown model 'no-such-model'"):
        client.predict("some text", "no-such-model", 0.5, "paper", "auto", api_name="/predict")


def test_long_text_is_cut_with_a_visible_note(client: Client, studio) -> None:
    text = "graphics card driver " * (studio.config.max_text_chars // 10)
    summary, result = client.predict(text, "20ng-hpt", 0.5, "paper", "auto", api_name="/predict")[2:4]
    assert "cut to its first" in summary and "cut to its first" in result["note"]


def test_explain_lists_the_label_words_nearest_words(client: Client) -> None:
    table, about = client.predict("20ng-hpt", "comp > comp.graphics", 5, api_name="/explain")
    words = [row[1] for row in table["data"]]
    assert len(words) == 5 and "graphics" in words
    assert "comp > comp.graphics" in about
    with pytest.raises(AppError, match="no label words"):
        client.predict("20ng-finetune", "comp", 5, api_name="/explain")
    with pytest.raises(AppError, match="not a child"):
        client.predict("20ng-hpt", "comp > no-such-group", 5, api_name="/explain")


def test_validate_reports_the_demo_dataset_and_bad_uploads(client: Client, tmp_path: Path) -> None:
    text, problems, report = client.predict(DEMO, None, None, api_name="/validate")
    assert report["ok"] and report["n_documents"] == 80 and "ready to train" in text
    bad = tmp_path / "upload.jsonl"
    bad.write_text(
        '{"text": "a fine document", "labels": [["CS", "Machine learning"]]}\n'
        '{"text": "truncated", "labels": [["CS"\n'
        '{"text": "", "labels": [["CS", "Machine learning"]]}\n',
        encoding="utf-8",
    )
    text, problems, report = client.predict(UPLOAD, handle_file(str(bad)), None, api_name="/validate")
    assert not report["ok"] and report["problems_found"] == 2
    assert "training is disabled" in text
    lines = [row[1] for row in problems["data"]]
    assert any("upload.jsonl:2" in line for line in lines) and any("upload.jsonl:3" in line for line in lines)
    assert not any(str(tmp_path) in line for line in lines)  # the upload's own name, never a server path
    with pytest.raises(AppError, match="Upload a data file first"):
        client.predict(UPLOAD, None, None, api_name="/validate")


def test_train_a_tiny_job_to_completion(client: Client, studio) -> None:
    _wait_idle(studio)
    before = set(studio.registry.names())
    job = _train(client, studio, epochs=2)
    job.result(timeout=300)
    status = client.predict(api_name="/job_status")
    assert status["state"] == "finished", status
    name = status["model_name"]
    assert name.startswith("wos-demo-80-hpt-") and name in set(studio.registry.names()) - before
    assert status["total_steps"] == 2 * 4  # 64 training documents / batch 16 × 2 epochs
    # 8 steps < 8 evaluations' worth: the dev set is scored after every step (until early stopping, if it stops)
    assert status["metrics"]["test"]["n_documents"] == 8 and len(status["evals"]) == status["step"]
    assert status["stopped_early"] == (status["step"] < 8) and status["estimate"]["plan"]["evaluations"] == 8
    directory = studio.registry.directory(name)
    assert {"model.safetensors", "config.json", "metrics.json", "test.jsonl", "README.md"} <= {
        p.name for p in directory.iterdir()
    }
    # the new model serves predictions, its metrics and its mistakes in the other tabs
    result = client.predict(
        "A study of machine learning for image data", name, 0.5, "paper", "auto", api_name="/predict"
    )
    assert result[3]["model"] == name
    summary = client.predict(name, api_name="/metrics")[0]
    assert "| test | 8 |" in summary
    mistakes_md = client.predict(name, 0.5, api_name="/mistakes")[0]
    assert "of 8 documents" in mistakes_md
    # the zip download holds the checkpoint
    archive = studio.config.user_dir / ".downloads" / f"{name}.zip"
    with zipfile.ZipFile(archive) as z:
        assert "model.safetensors" in z.namelist()


def test_label_names_go_in_last_and_show_in_predict(client: Client, studio, tmp_path: Path) -> None:
    _wait_idle(studio)
    names = tmp_path / "wos-names.tsv"
    names.write_text("CS\tcomputer science\talgorithms, software and systems\nMedical\tmedicine\n", encoding="utf-8")
    text, _, report = client.predict(DEMO, None, None, handle_file(str(names)), api_name="/validate")
    assert report["ok"] and "**Label names** (wos-names.tsv): 2 of" in text
    bad = tmp_path / "bad-names.tsv"
    bad.write_text("CS > Machine learnin\tML\n", encoding="utf-8")
    text, problems, report = client.predict(DEMO, None, None, handle_file(str(bad)), api_name="/validate")
    assert not report["ok"] and problems["data"][0][1].startswith("bad-names.tsv:1: path:")
    args = (DEMO, None, None, "hpt", _backbone(studio), 1, 16, 64, 1e-3, False, 300, handle_file(str(names)))
    client.submit(*args, api_name="/train").result(timeout=300)
    status = client.predict(api_name="/job_status")
    assert status["state"] == "finished", status
    name = status["model_name"]
    assert studio.registry.train_config(name)["label_names"] == "wos-names.tsv"
    _, table, _, result, _ = client.predict(
        "Parallel algorithms for sorting on many processors", name, 0.05, "paper", "full", api_name="/predict"
    )
    assert table["headers"][-1] == "display names" and table["data"]
    cs = [row for row in table["data"] if row[1].split(" > ")[0] == "CS"]
    assert all(row[4].startswith("computer science") for row in cs)
    assert result["display_names"] == [row[4] for row in table["data"]]


def test_busy_then_cancel(client: Client, studio) -> None:
    _wait_idle(studio)
    job = _train(client, studio, epochs=30)
    deadline = time.time() + 120
    while not (studio.jobs.status().running and studio.jobs.status().step >= 2) and time.time() < deadline:
        time.sleep(0.2)
    assert studio.jobs.status().running
    started = time.time()
    with pytest.raises(AppError, match="Busy"):
        _train(client, studio, epochs=1).result(timeout=60)
    assert time.time() - started < 30  # answered at once, not queued behind the job
    # prediction keeps working while the job trains
    assert client.predict(EXAMPLES[0]["text"], "20ng-hpt", 0.5, "paper", "auto", api_name="/predict")[3]["paths"]
    before = set(studio.registry.names())
    client.predict(api_name="/cancel")
    job.result(timeout=120)
    status = studio.jobs.status()
    assert status.state == "cancelled" and "nothing was saved" in status.message
    assert set(studio.registry.names()) == before
    # the next job starts normally
    _train(client, studio, epochs=1).result(timeout=300)
    assert studio.jobs.status().state == "finished"


def test_adapt_the_backbone_first(client: Client, studio) -> None:
    _wait_idle(studio)
    _train(client, studio, epochs=1, adapt_steps=50).result(timeout=300)
    status = client.predict(api_name="/job_status")
    assert status["state"] == "finished", status
    assert status["adapt"]["steps"] == 50 and 0 <= status["adapt"]["masked_top1_after"] <= 1
    config = studio.registry.model_config(status["model_name"])
    assert config["backbone"].endswith("+ 50 masked-LM steps on the data")  # never the job's temporary directory
    assert studio.registry.train_config(status["model_name"])["adapt_steps"] == 50


def test_train_refuses_bad_settings_and_bad_data(client: Client, studio, tmp_path: Path) -> None:
    _wait_idle(studio)
    with pytest.raises(AppError, match="not in the list of choices|not offered here"):
        client.predict(DEMO, None, None, "hpt", "gpt2", 1, 16, 64, 1e-3, False, 300, api_name="/train")
    with pytest.raises(AppError, match="less than minimum value 1|epochs must be at least 1, got 0"):
        client.predict(DEMO, None, None, "hpt", _backbone(studio), 0, 16, 64, 1e-3, False, 300, api_name="/train")
    bad = tmp_path / "bad.csv"
    bad.write_text("text,labels\nfirst,A > B\n,A > C\n", encoding="utf-8")
    with pytest.raises(AppError, match="problem"):
        _train(client, studio, epochs=1, source=UPLOAD, data=handle_file(str(bad))).result(timeout=60)


def test_compare_highlights_differences(client: Client) -> None:
    text = EXAMPLES[5]["text"]
    tree_a, tree_b, diff, summary = client.predict(text, "20ng-hpt", "20ng-finetune", 0.5, api_name="/compare")
    assert diff["headers"][3:] == ["predicted by", "display name"]
    assert all(row[3] in ("both", "A only", "B only") for row in diff["data"]) and diff["data"]
    names = dict(line.split("\t")[:2] for line in LABEL_NAMES.read_text(encoding="utf-8").splitlines()[3:])
    assert [row[4] for row in diff["data"]] == [names[row[0]] for row in diff["data"]]  # the 20NG display names
    assert "differ" in summary or "agree" in summary


def test_hierarchy_search_and_counts(client: Client) -> None:
    icicle, table, summary, tree = client.predict(
        "Selected model", "20ng-hpt", "graphics", DEMO, None, None, api_name="/hierarchy"
    )
    assert [row[0] for row in table["data"]] == ["comp > comp.graphics"]
    assert table["data"][0][3] > 100  # training messages of comp.graphics in the demo split
    assert table["data"][0][4] == "computer graphics"  # its display name
    assert "27 labels in 2 levels" in summary
    _, table, summary, _ = client.predict(  # the search finds display names too
        "Selected model", "20ng-hpt", "for sale", DEMO, None, None, api_name="/hierarchy"
    )
    assert [row[0] for row in table["data"]][:1] == ["misc"] and "label(s) match 'for sale'" in summary


def test_mistakes_of_the_demo_model(client: Client) -> None:
    summary, table, *_ = client.predict("20ng-hpt", 0.5, api_name="/mistakes")
    assert "of 197 documents" in summary
    assert 10 < len(table["data"]) < 197
    number, text, gold, predicted = table["data"][0]
    assert number == 1 and text and gold != predicted
    names = {line.split("\t")[1] for line in LABEL_NAMES.read_text(encoding="utf-8").splitlines()[3:]}
    assert all(part in names for row in table["data"] for part in row[2].split(" > "))  # gold in display names


def test_limits_are_enforced_before_work_starts(client: Client, studio, tmp_path: Path) -> None:
    deep = tmp_path / "deep.jsonl"
    path = [f"level{k}" for k in range(studio.config.max_depth + 1)]
    deep.write_text(json.dumps({"text": "a deep document", "labels": [path]}) + "\n", encoding="utf-8")
    text, problems, report = client.predict(UPLOAD, handle_file(str(deep)), None, api_name="/validate")
    assert not report["ok"] and any("over this app's limit" in row[1] for row in problems["data"])
    with pytest.raises(AppError, match="problem"):
        _train(client, studio, epochs=1, source=UPLOAD, data=handle_file(str(deep))).result(timeout=60)


@pytest.mark.parametrize(
    ("error", "expected"),
    [(MemoryError(), "Out of memory"), (RuntimeError("CUDA out of memory. Tried to allocate"), "Out of memory")],
)
def test_a_job_that_runs_out_of_memory_fails_cleanly(client: Client, studio, monkeypatch, error, expected) -> None:
    import hpt_core.finetune

    _wait_idle(studio)

    def boom(*args, **kwargs):
        raise error

    monkeypatch.setattr(hpt_core.finetune, "finetune", boom)
    _train(client, studio, epochs=1).result(timeout=120)
    status = studio.jobs.status()
    assert status.state == "failed" and expected in status.message and "Traceback" not in status.message
    monkeypatch.undo()
    _train(client, studio, epochs=1).result(timeout=300)  # the next job starts normally
    assert studio.jobs.status().state == "finished"


def test_classify_file_gives_a_table_and_both_downloads(client: Client, studio, tmp_path: Path) -> None:
    assert "/classify_file" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    data = tmp_path / "messages.csv"
    picked = EXAMPLES[::5]  # 5 real 20NG test messages of 5 top-level labels
    with open(data, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows([f"m{k}", e["text"]] for k, e in enumerate(picked))
    summary, table, problems, files, result = client.predict(
        handle_file(str(data)), "20ng-hpt", 0.5, "paper", True, api_name="/classify_file"
    )
    assert result["ok"] and result["n_texts"] == len(picked) and "5 texts classified" in summary
    assert problems["data"] == [] and result["best_path"] is True, problems
    predictor = studio.registry.predictor("20ng-hpt")
    expected = predictor.predict([e["text"] for e in picked], best=True)  # p > 0.5: score > 0
    assert [row[0] for row in table["data"]] == [f"m{k}" for k in range(len(picked))]
    names = predictor.model.label_names  # the table shows the model's display names ("computers > graphics")
    shown = [[names[" > ".join(p[: k + 1])]["name"] for k in range(len(p))] for e in expected for p in e.paths[:1]]
    assert [row[2].split("; ")[0].split(" > ") for row in table["data"]] == shown
    downloads = {Path(f).suffix: Path(f) for f in files}
    assert set(downloads) == {".csv", ".jsonl"} and all(
        p.name.startswith("messages-predictions") for p in downloads.values()
    )
    rows = [json.loads(line) for line in downloads[".jsonl"].read_text(encoding="utf-8").splitlines()]
    assert [r["paths"] for r in rows] == [e.paths for e in expected]
    assert [r["below_threshold"] for r in rows] == [e.below_threshold for e in expected]
    assert [r["display_names"][0] for r in rows] == shown
    with open(downloads[".csv"], encoding="utf-8", newline="") as f:
        as_csv = list(csv.DictReader(f))
    assert [r["id"] for r in as_csv] == [r["id"] for r in rows] and list(as_csv[0]) == result["columns"]


def test_classify_file_lists_problems_with_the_uploads_name(client: Client, tmp_path: Path) -> None:
    bad = tmp_path / "upload.jsonl"
    bad.write_text(
        '{"id": 1, "text": "a fine message about graphics cards"}\n{"id": 2, "text": "cut off\n{"id": 3, "text": ""}\n',
        encoding="utf-8",
    )
    summary, table, problems, files, result = client.predict(
        handle_file(str(bad)), "20ng-hpt", 0.5, "paper", api_name="/classify_file"
    )
    assert not result["ok"] and result["problems_found"] == 2 and "nothing was classified" in summary
    lines = [row[1] for row in problems["data"]]
    assert lines[0].startswith("upload.jsonl:2: invalid JSON") and lines[1].startswith("upload.jsonl:3: text:")
    assert not any(str(tmp_path) in line for line in lines) and table["data"] == [] and not files
    with pytest.raises(AppError, match="Upload a file of texts first"):
        client.predict(None, "20ng-hpt", 0.5, "paper", api_name="/classify_file")
