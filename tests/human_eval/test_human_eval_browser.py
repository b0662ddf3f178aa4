"""A real headless Chromium votes with clicks and keys; the votes land in SQLite and in the report section.

Needs Debian's `chromium` (scripts/install_chromium.sh) driven by Playwright through `executable_path`, since
Playwright's own browser download is not available here. Skips, saying so, when no chromium binary is found.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from noise_exp.human_eval.pairs import annotator_sequence, shown_order
from noise_exp.report.human import human_report_markdown, human_winning_rates
from noise_exp.rundir.votes import read_votes
from tests.human_eval.helpers import LiveServer

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
# Offline machine: without these Chromium stalls on background connections.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary found: run scripts/install_chromium.sh (or set CHROMIUM_PATH)"
)


@contextmanager
def browser_on(folder: Path) -> Iterator[tuple[LiveServer, object]]:
    """(the real server of `folder`, a headless Chromium), both closed on exit."""
    with LiveServer(folder) as server, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield server, browser
        finally:
            browser.close()


def open_page(browser, url: str):
    """A fresh context's page at `url` (its own localStorage: a new annotator's browser)."""
    page = browser.new_context().new_page()
    page.set_default_timeout(20_000)
    page.goto(url)
    return page


def wait_for_change(page, previous: str, attribute: str = "pair-id") -> str:
    """Wait until the page is ready showing an item other than `previous`; its id (body's data-`attribute`)."""
    # Selectors, not wait_for_function: the page's CSP forbids the string evaluation that would need.
    page.locator(f'body[data-state="ready"]:not([data-{attribute}="{previous}"])').wait_for(state="attached")
    return page.get_attribute("body", f"data-{attribute}")


def wait_for_pair_change(page, previous: str) -> str:
    return wait_for_change(page, previous, "pair-id")


def test_browser_votes_with_clicks_and_keys_then_resumes(run_folder: Path, tmp_path: Path):
    with browser_on(run_folder) as (server, browser):
        alice = open_page(browser, server.url + "/")
        assert alice.locator("#criteria li").count() == 5
        assert alice.locator("#criteria").inner_text().count("correctness") == 2
        alice.fill("#annotator", "alice")
        alice.click("#start")
        pair_id = wait_for_pair_change(alice, "")
        sequence = annotator_sequence("alice", server.pair_set.pairs)
        assert pair_id == sequence[0].pair_id
        assert alice.inner_text("#progress-text") == "0 / 8 pairs judged"
        assert sequence[0].prompt in alice.inner_text("#prompt")
        widths = alice.evaluate("[...document.querySelectorAll('.pair img')].map((img) => img.naturalWidth)")
        assert widths == [48, 48]

        choices = []
        for action, choice in ((lambda: alice.click("#choose-left"), "left"),
                               (lambda: alice.keyboard.press("ArrowRight"), "right"),
                               (lambda: alice.keyboard.press("2"), "tie"),
                               (lambda: alice.click("#choose-right"), "right"),
                               (lambda: alice.keyboard.press("1"), "left")):
            choices.append((pair_id, choice))
            action()
            pair_id = wait_for_pair_change(alice, pair_id)
        assert alice.inner_text("#progress-text") == "5 / 8 pairs judged"

        by_id = server.pair_set.by_id()
        stored = {(v.pair_id, v.choice): v for v in read_votes(server.store.path)}
        assert set(stored) == set(choices)
        for (voted_pair, choice), vote in stored.items():
            left, right = shown_order("alice", by_id[voted_pair])
            assert (vote.annotator, vote.left_variant, vote.right_variant) == ("alice", left, right)
            assert vote.winner == {"left": left, "right": right, "tie": "tie"}[choice]

        alice.reload()  # resume: the name comes back from localStorage, the next unvoted pair is shown
        assert wait_for_pair_change(alice, "") == sequence[5].pair_id
        assert alice.input_value("#annotator") == "alice"
        alice.locator("#annotator").press("3")  # typing in the name field never votes
        alice.wait_for_timeout(300)
        assert len(read_votes(server.store.path)) == 5

        bob = open_page(browser, server.url + "/")
        bob.fill("#annotator", "bob")
        bob.keyboard.press("Enter")
        bob_pair = wait_for_pair_change(bob, "")
        for key in ("ArrowLeft", "ArrowDown", "3", "1", "2", "ArrowRight", "ArrowLeft"):
            bob.keyboard.press(key)
            bob_pair = wait_for_pair_change(bob, bob_pair)
        bob.keyboard.press("ArrowLeft")
        bob.locator('body[data-state="finished"]').wait_for(state="attached")
        assert bob.locator("#finished").is_visible() and bob.inner_text("#progress-text") == "8 / 8 pairs judged"

    summary = human_winning_rates(run_folder)
    assert (summary.n_votes, summary.n_annotators) == (13, 2)
    assert sum(rate.n_votes for rate in summary.rates) == 13
    report = human_report_markdown(run_folder)
    assert "13 votes from 2 annotator(s)" in report and "Fleiss' kappa" in report
