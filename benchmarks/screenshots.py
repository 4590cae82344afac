"""README screenshots of HPT Studio: the real app in Debian's chromium, one full-page PNG per tab after a real action.

    python -m benchmarks.screenshots [--out docs/screenshots]

Launches the app with its default settings (the shipped 20NG checkpoints, the WOS-1k demo dataset) but fine-tuned
models in a temporary folder, on 127.0.0.1, and saves ``{predict,label-words,finetune,hierarchy,compare,evaluate}.png``:

- predict: a 20 Newsgroups test text classified with 20ng-hpt;
- label-words: "comp > comp.graphics" explained, with the UMAP map of every label word (about a minute the first time);
- finetune: the demo dataset validated and a training job a few steps in (progress and loss curve), then cancelled;
- hierarchy: the tree of 20ng-hpt after Show;
- compare: a 20NG text on 20ng-hpt vs 20ng-finetune (one HPT gets right and the baseline does not);
- evaluate: the metrics, the test documents 20ng-hpt gets wrong and the first mistake on the tree (skipped, with a
  note, when the model has no evaluation file).

Needs ``/usr/bin/chromium`` (``apt-get install chromium fonts-liberation``) and ``playwright``; no ``playwright
install``. Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT

OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 120_000
MAP_TIMEOUT_MS = 300_000  # the first UMAP map of a model
TRAIN_STEPS = 4  # training steps to wait for before the fine-tune screenshot
TRAIN_TIMEOUT_S = 600
PREDICT_LABEL = "comp.sys.ibm.pc.hardware"
EXPLAIN_LABEL = "comp > comp.graphics"
# playwright and the app are imported inside the functions that use them (light start-up: ``--help`` loads neither).


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _examples(studio: Any) -> tuple[dict[str, str], list[tuple[str, list[str]]]]:
    from app.tabs.predict import load_examples

    names = load_examples(studio.config.examples)
    items = json.loads(studio.config.examples["20ng"].read_text(encoding="utf-8"))
    return names, [(item["text"], item["label"]) for item in items]


def _example_name(names: dict[str, str], text: str) -> str:
    return next(name for name, value in names.items() if value == text)


def _pick_compare_text(studio: Any, items: list[tuple[str, list[str]]]) -> str:
    """A 20NG example that 20ng-hpt gets right and 20ng-finetune gets wrong, at the leaf when possible."""
    hpt, baseline = studio.registry.predictor("20ng-hpt"), studio.registry.predictor("20ng-finetune")
    ranked = []
    for k, (text, gold) in enumerate(items):
        [a], [b] = hpt.predict(text), baseline.predict(text)
        if a.paths == [gold] and b.paths and b.paths != a.paths:
            ranked.append((0 if all(len(p) == len(gold) for p in b.paths) else 1, k, text))
        elif sorted(a.paths) != sorted(b.paths):
            ranked.append((2, k, text))
    return min(ranked)[2] if ranked else items[0][0]


def _choose(page: Any, scope: Any, option: str, typed: str | None = None) -> None:
    """Open a Gradio dropdown (``scope`` holds its input), type to filter, click ``option`` (the option named so, or
    the label-word explorer's ``"<path> · <display name>"`` of that path)."""
    box = scope.locator("input").first
    box.click()
    if typed:
        box.fill(typed)
    named = re.compile(rf"^{re.escape(option)}( · .*)?$")
    page.get_by_role("option", name=named).first.click()


def _panel(page: Any) -> Any:
    """The visible tab panel."""
    return page.locator("[role=tabpanel]:visible").first


def _settle(page: Any, ms: int = 1500) -> None:
    """Let plotly finish drawing and Gradio its transitions."""
    page.wait_for_timeout(ms)


def _shot(page: Any, out: Path, name: str) -> Path:
    page.mouse.move(0, 0)  # no hover labels in the picture
    _settle(page, 800)
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    _log(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def take(out: Path) -> list[str]:
    """Launch the app, take the six screenshots into ``out``; returns notes (skipped actions)."""
    from playwright.sync_api import expect, sync_playwright

    from app import build_demo, launch_options
    from app.common import Studio
    from app.config import AppConfig

    notes: list[str] = []
    out.mkdir(parents=True, exist_ok=True)
    config = AppConfig(user_dir=Path(tempfile.mkdtemp(prefix="hpt-screenshots-")))
    studio = Studio.create(config)
    demo = build_demo(studio=studio)
    demo.queue(default_concurrency_limit=4).launch(
        server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **launch_options(config)
    )
    _log(f"app at {demo.local_url}")
    names, items = _examples(studio)
    predict_text = next(text for text, label in items if label[-1] == PREDICT_LABEL)
    compare_text = _pick_compare_text(studio, items)

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
    try:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        page.goto(demo.local_url)
        expect(page.locator("#predict-button")).to_be_visible()

        # Predict: pick a 20NG example from the dropdown, classify.
        _choose(page, page.locator("#predict-example"), _example_name(names, predict_text), PREDICT_LABEL)
        expect(page.locator("#predict-text textarea")).to_have_value(predict_text)
        page.locator("#predict-button").click()
        expect(page.locator("#predict-summary")).to_contain_text("predicted path")
        expect(page.locator("#predict-tree .js-plotly-plot")).to_be_visible()
        _settle(page)
        _shot(page, out, "predict")

        # Label words: picking comp > comp.graphics explains it (as the Explain button does) and draws the UMAP map.
        page.get_by_role("tab", name="Label words").click()
        panel = _panel(page)
        _choose(page, panel.locator(".block").filter(has_text="Type to search").first, EXPLAIN_LABEL, "comp.graphics")
        expect(panel.get_by_text("depth 1").first).to_be_visible()
        started = time.perf_counter()
        expect(panel.locator(".js-plotly-plot")).to_be_visible(timeout=MAP_TIMEOUT_MS)
        _log(f"label-word map drawn after {time.perf_counter() - started:.0f} s")
        _settle(page)
        _shot(page, out, "label-words")

        # Hierarchy: the tree of the selected model.
        page.get_by_role("tab", name="Hierarchy").click()
        panel = _panel(page)
        panel.get_by_role("button", name="Show").click()
        expect(panel.locator(".js-plotly-plot").first).to_be_visible()
        expect(panel.get_by_text(re.compile(r"20ng-hpt\W+\d+ labels in")).first).to_be_visible()
        _settle(page)
        _shot(page, out, "hierarchy")

        # Compare: one 20NG text through both shipped models.
        page.get_by_role("tab", name="Compare").click()
        panel = _panel(page)
        _choose(
            page,
            panel.locator(".block").filter(has_text="Or pick an example").first,
            _example_name(names, compare_text),
            dict(items)[compare_text][-1],
        )
        expect(panel.get_by_label("Text", exact=True)).to_have_value(compare_text)
        panel.get_by_role("button", name="Compare").click()
        expect(panel.locator(".js-plotly-plot")).to_have_count(2)
        expect(panel.get_by_text("The two models").first).to_be_visible()
        _settle(page)
        _shot(page, out, "compare")

        # Evaluate: metrics, then the mistakes and the first one on the tree.
        page.get_by_role("tab", name="Evaluate").click()
        panel = _panel(page)
        expect(panel.get_by_text("micro-F1").first).to_be_visible()
        eval_file = studio.registry.eval_file("20ng-hpt")
        if eval_file is not None and Path(eval_file).is_file():
            panel.get_by_role("button", name="Find the test documents it gets wrong").click()
            expect(panel.get_by_text(re.compile(r"\d+ of \d+ documents")).first).to_be_visible()
            panel.get_by_role("gridcell").first.click()
            expect(panel.locator(".js-plotly-plot").filter(has_text="Mistake 1")).to_be_visible()
            panel.get_by_text("have a predicted label set").click()  # drop the cell's selection outline
        else:
            notes.append(f"evaluate: no evaluation file for 20ng-hpt ({eval_file}); mistakes not shown")
        _settle(page)
        _shot(page, out, "evaluate")

        # Fine-tune: validate the demo dataset, start training, a few steps in take the picture, then cancel.
        page.get_by_role("tab", name="Fine-tune").click()
        page.locator("#ft-validate").click()
        expect(page.locator("#ft-report")).to_contain_text("ready to train")
        page.locator("#ft-train").click()
        started = time.perf_counter()
        progress = page.locator("#ft-progress")
        while True:  # until the page shows a few steps done (the job's own state says why it stopped, if it did)
            shown = re.search(r"step (\d+)/", progress.inner_text())
            if shown and int(shown.group(1)) >= TRAIN_STEPS:
                break
            state = studio.jobs.status()
            if state.state in ("finished", "cancelled", "failed"):
                raise RuntimeError(f"training ended before step {TRAIN_STEPS}: {state.state}: {state.message}")
            if time.perf_counter() - started > TRAIN_TIMEOUT_S:
                raise TimeoutError(f"training shows no step {TRAIN_STEPS} after {TRAIN_TIMEOUT_S} s: {state.message}")
            page.wait_for_timeout(1000)
        expect(page.locator("#ft-curves .js-plotly-plot .scatterlayer .trace").first).to_be_attached()
        _log(f"training at step {studio.jobs.status().step} after {time.perf_counter() - started:.0f} s")
        _settle(page)
        _shot(page, out, "finetune")
        page.locator("#ft-cancel").click()
        studio.jobs.wait()
        _log(f"training ended: {studio.jobs.status().state}")
    finally:
        browser.close()
        playwright.stop()
        if studio.jobs.status().running:
            studio.jobs.cancel()
            studio.jobs.wait()
        demo.close()
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the PNGs (default: docs/screenshots)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if not Path(CHROMIUM).exists():
        print(f"needs Debian's chromium at {CHROMIUM}: apt-get install chromium fonts-liberation", file=sys.stderr)
        return 2
    for note in take(args.out.resolve()):
        print("note:", note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
