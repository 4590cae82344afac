"""Real-browser end-to-end tests of HPT Studio: Debian's chromium (``/usr/bin/chromium``) driven by Playwright.

Each test opens a fresh page on the ``app_server`` fixture (the real app on 127.0.0.1 with the shipped 20NG demo
checkpoints, a tiny fine-tune backbone and an 80-document WOS demo dataset) and checks what a user sees: the
Predict tab's summary, table and plotly tree; the Fine-tune tab's validation report on a broken upload; a whole
training run ending with the new model in the model picker; and label names carrying HTML shown as plain text.

Skipped when ``/usr/bin/chromium`` is missing (``apt-get install chromium fonts-liberation``; ``.ci/run`` does it).
Playwright's own browser download (``playwright install``) is not used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # minutes: a real app server and Chromium

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"real-browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium fonts-liberation)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLES_20NG = REPO / "assets" / "examples" / "20ng.json"
VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 60_000  # one UI step on a busy 2-core CPU (the first prediction loads the model)
TRAIN_TIMEOUT_MS = 180_000
expect.set_options(timeout=TIMEOUT_MS)  # assertions wait as long as actions (default: 5 s)
UPLOAD = "Upload my own data"
# Label names are untrusted (they come from uploads). ">" separates path levels, so a name cannot contain it and a
# real label can only carry an unclosed tag; inside innerHTML the next markup's ">" would close it, run onerror.
HTML_LABEL = "<img src=x onerror=window.__xss=1 x="
CLOSED_TAG_LABEL = "<img src=x onerror=window.__xss=1>"  # rejected by validation (contains ">")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless chromium for the module."""
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def app_page(app_server, chromium: Browser) -> Iterator[Page]:
    """A fresh browser context on the app, loaded (the Predict tab's Classify button is there)."""
    _, url = app_server
    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto(url)
        expect(page.locator("#predict-button")).to_be_visible()
        yield page
    finally:
        context.close()


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _upload(page: Page, data: Path) -> None:
    """Fine-tune tab: switch to 'Upload my own data' and put ``data`` into the data file input."""
    page.get_by_role("tab", name="Fine-tune").click()
    page.locator("#ft-source").get_by_label(UPLOAD).check()
    expect(page.locator("#ft-data")).to_be_visible()
    page.locator("#ft-data input[type=file]").set_input_files(str(data))
    # the upload finished: the file row shows the name (Gradio may render stem and extension as two spans)
    expect(page.locator("#ft-data")).to_contain_text(re.compile(re.escape(data.stem) + r"\s*" + re.escape(data.suffix)))


def _watch_dialogs(page: Page) -> list[str]:
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return dialogs


# ---------------------------------------------------------------------------------------------------- Predict
def test_predict_shows_summary_table_and_tree(app_server, app_page: Page) -> None:
    studio, _ = app_server
    predictor = studio.registry.predictor("20ng-hpt")
    # A real comp/rec test text the model gets right at the top level (the app's defaults: p > 0.5, paper rule).
    for example in json.loads(EXAMPLES_20NG.read_text(encoding="utf-8")):
        if example["label"][0] not in ("comp", "rec"):
            continue
        [prediction] = predictor.predict(example["text"], threshold=0.0, rule="paper")
        if prediction.paths and prediction.paths[0][0] == example["label"][0] and len(prediction.paths[0]) > 1:
            break
    else:
        pytest.fail("no comp/rec example of assets/examples/20ng.json is predicted down to a group of its top label")
    expected = prediction.paths[0]

    page = app_page
    expect(page.locator("#model-picker input")).to_have_value("20ng-hpt")
    page.locator("#predict-text textarea").fill(example["text"])
    page.locator("#predict-button").click()

    expect(page.locator("#predict-summary")).to_contain_text("predicted path")
    expect(page.locator("#predict-summary")).to_contain_text("20ng-hpt")
    table = page.locator("#predict-paths")
    cell = table.get_by_role("gridcell", name=" > ".join(expected), exact=True)
    expect(cell).to_be_visible()
    assert (cell.inner_text() or "").startswith(expected[0] + " > "), "the top-level label does not lead the path"
    plot = page.locator("#predict-tree .js-plotly-plot")
    expect(plot).to_be_visible()
    assert plot.locator("svg").count() > 0
    tree_text = plot.text_content() or ""
    # the tree names its nodes by the model's display names (20ng-hpt has a label-names file), else by label
    names = studio.registry.label_names("20ng-hpt")
    leaf = predictor.hierarchy.index(expected)
    shown = names[leaf].name if leaf in names else expected[-1]
    assert shown in tree_text, f"{shown!r} not drawn in the tree: {tree_text[:300]!r}"
    assert "Label tree" in tree_text


def test_examples_threshold_and_empty_text_behave_as_a_user_expects(app_page: Page) -> None:
    page = app_page
    summary = page.locator("#predict-summary")
    # the examples follow the model's tree: a 20 Newsgroups model offers newsgroup messages, not WOS abstracts
    page.locator("#predict-example input").click()
    expect(page.get_by_role("option").first).to_be_visible()
    offered = page.get_by_role("option").all_inner_texts()
    assert offered and all(name.startswith("[20ng]") for name in offered), offered[:3]
    # picking one classifies it at once
    page.get_by_role("option").first.click()
    expect(page.locator("#predict-text textarea")).not_to_have_value("")
    expect(summary).to_contain_text("20ng-hpt")
    # a typed threshold and Enter re-run: at p > 0.95 little passes, and the best path is shown marked
    threshold = page.get_by_label("number input for Threshold: predict labels with p above")
    threshold.fill("0.95")
    threshold.press("Enter")
    expect(summary).to_contain_text("0.95")
    if "No label passes" in (summary.inner_text() or ""):
        expect(summary).to_contain_text("below the threshold")
        expect(page.locator("#predict-paths")).to_contain_text(" > ")
    # an empty text: one clear message, the old result cleared, no error badges
    page.locator("#predict-text textarea").fill("")
    page.locator("#predict-button").click()
    expect(summary).to_contain_text("The text is empty")
    expect(page.locator("#predict-paths")).not_to_contain_text(" > ")
    assert page.locator(".error").count() == 0, "an output shows an error badge"


# ---------------------------------------------------------------------------------------------------- Fine-tune
def test_validate_bad_upload_lists_problems_and_keeps_train_disabled(app_page: Page, tmp_path: Path) -> None:
    page = app_page
    # The demo dataset validates and enables Train, so the disabled button below is the validator's doing.
    page.get_by_role("tab", name="Fine-tune").click()
    page.locator("#ft-validate").click()
    expect(page.locator("#ft-report")).to_contain_text("ready to train")
    expect(page.locator("#ft-train")).to_be_enabled()

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"text": "a fine document about physics", "labels": [["Science", "Physics"]]})
        + "\n"
        + '{"text": "this line was cut off", "labels": [["Sci\n'
        + json.dumps({"text": "", "labels": [["Science", "Biology"]]})
        + "\n"
        + json.dumps({"text": "another fine document about jazz", "labels": [["Arts", "Music"]]})
        + "\n",
        encoding="utf-8",
    )
    _upload(page, bad)
    expect(page.locator("#ft-train")).to_be_disabled()
    page.locator("#ft-validate").click()

    report = page.locator("#ft-report")
    expect(report).to_contain_text("bad.jsonl")
    expect(report).to_contain_text("2 problems found")
    expect(report).to_contain_text("training is disabled")
    problems = page.locator("#ft-problems")
    expect(problems).to_be_visible()
    expect(problems).to_contain_text("bad.jsonl:2:")
    expect(problems).to_contain_text("invalid JSON")
    expect(problems).to_contain_text("bad.jsonl:3:")
    expect(problems).to_contain_text("text is empty")
    assert "bad.jsonl:1:" not in problems.inner_text() and "bad.jsonl:4:" not in problems.inner_text()
    page.wait_for_timeout(1000)  # the follow-up events (time estimate) have run
    expect(page.locator("#ft-train")).to_be_disabled()


def test_train_on_demo_dataset_adds_model_to_picker(app_server, app_page: Page) -> None:
    studio, _ = app_server
    assert not studio.jobs.status().running
    before = set(studio.registry.names())
    page = app_page
    page.get_by_role("tab", name="Fine-tune").click()
    page.locator("#ft-validate").click()
    expect(page.locator("#ft-report")).to_contain_text("wos-demo-80")
    expect(page.locator("#ft-report")).to_contain_text("ready to train")
    epochs = page.get_by_label("number input for Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    expect(epochs).to_have_value("1")
    expect(page.locator("#ft-train")).to_be_enabled()

    page.locator("#ft-train").click()
    expect(page.locator("#ft-status")).to_contain_text("Finished", timeout=TRAIN_TIMEOUT_MS)
    expect(page.locator("#ft-progress")).to_contain_text("finished")
    expect(page.locator("#ft-train")).to_be_enabled()
    expect(page.locator("#ft-cancel")).to_be_disabled()

    state = studio.jobs.status()
    assert state.state == "finished", state.to_dict()
    new = sorted(set(studio.registry.names()) - before)
    assert len(new) == 1 and "wos-demo-80" in new[0], new
    expect(page.locator("#ft-status")).to_contain_text(new[0])

    curves = page.locator("#ft-curves .js-plotly-plot")
    expect(curves).to_be_visible()
    assert curves.locator(".scatterlayer .trace").count() >= 1, "no loss curve drawn"
    assert "training loss" in (curves.text_content() or "")

    # The model picker at the top offers it: open the dropdown, pick it, and the picker shows it.
    page.locator("#model-picker input").click()
    option = page.get_by_role("option", name=new[0])
    expect(option).to_be_visible()
    option.click()
    expect(page.locator("#model-picker input")).to_have_value(new[0])

    # A page opened afterwards (a reload, another user) lists it too: the pickers are filled at every page load.
    later = page.context.new_page()
    later.goto(page.url)
    expect(later.locator("#predict-button")).to_be_visible()
    later.locator("#model-picker input").click()
    expect(later.get_by_role("option", name=new[0])).to_be_visible()
    later.close()


# ---------------------------------------------------------------------------------------------------- HTML in labels
def test_html_label_is_shown_as_text_in_hierarchy(app_page: Page, tmp_path: Path) -> None:
    page = app_page
    dialogs = _watch_dialogs(page)
    records = [
        {"text": "a document filed under the odd label", "labels": [[HTML_LABEL, "child"]]},
        {"text": "another document filed under it", "labels": [[HTML_LABEL, "child"]]},
        {"text": "physics of light and lenses", "labels": [["Science", "Physics"]]},
        {"text": "genes and cells", "labels": [["Science", "Biology"]]},
        {"text": "jazz and rhythm", "labels": [["Arts", "Music"]]},
        {"text": "portraits in oil", "labels": [["Arts", "Painting"]]},
    ]
    data = _write_jsonl(tmp_path / "html-label.jsonl", records)
    _upload(page, data)
    page.locator("#ft-validate").click()
    expect(page.locator("#ft-report")).to_contain_text("ready to train")

    page.get_by_role("tab", name="Hierarchy").click()
    page.get_by_label("Dataset of the Fine-tune tab").check()
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text(re.compile(r"html-label\.jsonl\W+8 labels in 2 levels"))).to_be_visible()

    # The label table shows the name literally, and so does the icicle.
    expect(page.get_by_role("gridcell", name=HTML_LABEL, exact=True)).to_be_visible()
    expect(page.get_by_role("gridcell", name=f"{HTML_LABEL} > child", exact=True)).to_be_visible()
    icicle = page.locator(".js-plotly-plot").filter(has_text="Click a block to zoom in")
    expect(icicle).to_be_visible()
    assert HTML_LABEL in (icicle.text_content() or "")
    page.wait_for_timeout(500)  # a broken <img> would have fired onerror by now
    assert page.locator("img[src='x']").count() == 0, "the label name became an <img> element"
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []


def test_label_with_closed_tag_is_a_validation_problem_shown_as_text(app_page: Page, tmp_path: Path) -> None:
    page = app_page
    dialogs = _watch_dialogs(page)
    records = [
        {"text": "a document filed under the odd label", "labels": [[CLOSED_TAG_LABEL, "child"]]},
        {"text": "physics of light and lenses", "labels": [["Science", "Physics"]]},
        {"text": "jazz and rhythm", "labels": [["Arts", "Music"]]},
    ]
    data = _write_jsonl(tmp_path / "tag-label.jsonl", records)
    _upload(page, data)
    page.locator("#ft-validate").click()
    expect(page.locator("#ft-report")).to_contain_text("1 problem found")
    problems = page.locator("#ft-problems")
    expect(problems).to_contain_text("tag-label.jsonl:1:")
    expect(problems).to_contain_text(CLOSED_TAG_LABEL)  # the name, literally, in the problem sentence
    expect(page.locator("#ft-train")).to_be_disabled()
    page.wait_for_timeout(500)
    assert page.locator("img[src='x']").count() == 0, "the label name became an <img> element"
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []


def test_error_toast_shows_label_name_as_text(app_page: Page, tmp_path: Path) -> None:
    page = app_page
    dialogs = _watch_dialogs(page)
    records = [
        {"text": "a document filed under the odd label", "labels": [[CLOSED_TAG_LABEL, "child"]]},
        {"text": "physics of light and lenses", "labels": [["Science", "Physics"]]},
    ]
    data = _write_jsonl(tmp_path / "tag-label.jsonl", records)
    _upload(page, data)
    page.get_by_role("tab", name="Hierarchy").click()
    page.get_by_label("Dataset of the Fine-tune tab").check()
    page.get_by_role("button", name="Show").click()
    toast = page.get_by_test_id("toast-text").first
    expect(toast).to_contain_text("tag-label.jsonl")
    page.wait_for_timeout(500)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []
    assert toast.locator("img").count() == 0, "the label name in the error message became an <img> element"
    expect(toast).to_contain_text(CLOSED_TAG_LABEL)


# ---------------------------------------------------------------------------------------------------- Classify a file
def test_classify_a_file_shows_the_table_and_downloads_csv(app_page: Page, tmp_path: Path) -> None:
    examples = json.loads(EXAMPLES_20NG.read_text(encoding="utf-8"))[::7]  # 3 real 20NG test messages
    data = tmp_path / "messages.txt"
    data.write_text("".join(" ".join(e["text"].split()) + "\n" for e in examples), encoding="utf-8")
    page = app_page
    page.locator("#predict-file-section").get_by_text("Classify a file").first.click()
    page.locator("#predict-file input[type=file]").set_input_files(str(data))
    expect(page.locator("#predict-file")).to_contain_text(re.compile(r"messages\s*\.txt"))
    page.locator("#predict-file-button").click()

    expect(page.locator("#predict-file-summary")).to_contain_text("3 texts classified")
    results = page.locator("#predict-file-results")
    expect(results.get_by_role("gridcell", name="3", exact=True)).to_be_visible()  # the .txt ids: line numbers
    expect(results).to_contain_text(" ".join(examples[0]["text"].split())[:40])
    downloads = page.locator("#predict-file-downloads")
    expect(downloads).to_be_visible()
    expect(downloads).to_contain_text(re.compile(r"messages-predictions\s*\.jsonl"))  # name and suffix: two spans
    with page.expect_download() as download:
        downloads.get_by_role("row", name=re.compile(r"messages-predictions\.csv")).get_by_role("link").click()
    saved = tmp_path / "downloaded.csv"
    download.value.save_as(saved)
    lines = saved.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id,text_preview,paths,probabilities,truncated,display_names,below_threshold"
    assert len(lines) == 4
    expect(page.locator("#predict-file-problems")).to_be_hidden()
