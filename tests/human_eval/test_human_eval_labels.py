"""The labelling mode ("is this image right for its prompt?") in a real Chromium, its API, and the audit command
checked against hand counts on a small labelled fixture."""
from __future__ import annotations

import math
from pathlib import Path

import httpx
import pandas as pd
import pytest
from PIL import Image

from noise_exp.human_eval.__main__ import main
from noise_exp.human_eval.app import db_path
from noise_exp.human_eval.audit import audit, audit_markdown
from noise_exp.human_eval.labels import Label, LabelStore, label_rule, labelling_order, read_labels
from noise_exp.report.tables import wilson_interval
from noise_exp.rundir.votes import utc_now
from tests.human_eval.helpers import LiveServer
from tests.human_eval.test_human_eval_browser import CHROMIUM, browser_on, open_page, wait_for_change


def wait_for_item_change(page, previous: str) -> str:
    return wait_for_change(page, previous, "item-key")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary found: run scripts/install_chromium.sh")
def test_browser_labels_with_clicks_and_keys_then_resumes(run_folder: Path):
    with browser_on(run_folder) as (server, browser):
        page = open_page(browser, server.url + "/label")
        page.fill("#annotator", "carol")
        page.click("#start")
        key = wait_for_item_change(page, "")
        order = labelling_order("carol", server.items)
        assert key == order[0].key and order[0].variant not in key  # the page never learns the variant
        assert page.inner_text("#progress-text") == "0 / 16 images labelled"
        assert order[0].prompt in page.inner_text("#prompt")
        assert page.inner_text("#rule") == label_rule(order[0].prompt)
        assert page.evaluate("document.getElementById('item-image').naturalWidth") == 48
        given = []
        for action, value in ((lambda: page.click("#label-yes"), "yes"), (lambda: page.keyboard.press("n"), "no"),
                              (lambda: page.keyboard.press("2"), "unsure"),
                              (lambda: page.click("#label-no"), "no")):
            given.append((order[len(given)].item_id, value))
            action()
            key = wait_for_item_change(page, key)
        assert page.inner_text("#progress-text") == "4 / 16 images labelled"
        stored = read_labels(server.store.path)
        assert list(zip(stored["item_id"], stored["label"])) == given
        assert set(stored["annotator"]) == {"carol"}

        page.reload()  # resume: the name is remembered, the next unlabelled image is shown after Start
        assert page.input_value("#annotator") == "carol"
        page.click("#start")
        assert wait_for_item_change(page, "") == order[4].key
        page.locator("#annotator").press("y")  # typing in the name field never labels
        page.wait_for_timeout(300)
        assert len(read_labels(server.store.path)) == 4


def test_label_image_replaced_by_an_outside_symlink_after_start_is_refused(live_server: LiveServer):
    item = live_server.items[0]
    secret = live_server.pair_set.root.parent / "secret.png"
    secret.write_bytes(b"top secret")
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        assert client.get("/api/label/image", params={"key": item.key}).status_code == 200
        item.image.unlink()
        item.image.symlink_to(secret)  # swapped after the server checked it at start
        response = client.get("/api/label/image", params={"key": item.key})
    assert response.status_code == 404 and b"top secret" not in response.content
    assert "no longer inside the served folder" in response.json()["error"]


def test_label_api_refuses_duplicates_and_bad_labels(live_server: LiveServer):
    item = live_server.items[0]
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        ok = client.post("/api/labels", json={"annotator": "dave", "key": item.key, "label": "yes"})
        assert ok.status_code == 201 and ok.json()["progress"] == {"done": 1, "total": 16}
        again = client.post("/api/labels", json={"annotator": "dave", "key": item.key, "label": "no"})
        assert again.status_code == 409 and "already labelled" in again.json()["error"]
        assert client.post("/api/labels", json={"annotator": "dave", "key": item.key, "label": "maybe"}).status_code == 422
        assert client.post("/api/labels", json={"annotator": "dave", "key": "nope", "label": "yes"}).status_code == 404
        assert client.get("/api/label/image", params={"key": "../results.csv"}).status_code == 404
        image = client.get("/api/label/image", params={"key": item.key})
        assert image.status_code == 200 and image.content == item.image.read_bytes()
    assert list(read_labels(live_server.store.path)["label"]) == ["yes"]


# --- the audit against hand counts --------------------------------------------------------------------
# (prompt, judge score, labels by two annotators); tags: single_object x6, colors x4.
FIXTURE = [
    ("a circle", 1.0, ("yes", "yes")),      # TP
    ("a circle", 1.0, ("yes", "unsure")),   # TP (unsure ignored)
    ("a square", 0.0, ("yes", "yes")),      # FN
    ("a square", 0.0, ("no", "no")),        # TN
    ("a triangle", 1.0, ("no", "yes")),     # tie: left out
    ("a triangle", 1.0, ("no", "no")),      # FP
    ("a red square", 1.0, ("yes", "yes")),  # TP
    ("a red square", 0.0, ("yes", "no")),   # tie: left out
    ("a blue circle", 0.0, ("no", "no")),   # TN
    ("a blue circle", 0.0, ("yes", "yes")),  # FN
]


@pytest.fixture
def labelled_run(tmp_path: Path) -> Path:
    run = tmp_path / "sweep" / "run"
    (run / "images").mkdir(parents=True)
    rows = []
    for prompt_id, (prompt, score, _) in enumerate(FIXTURE):
        for variant in ("stable", "unstable"):
            Image.new("RGB", (8, 8), (prompt_id, 0, 0)).save(run / f"images/{prompt_id}_{variant}.png")
            rows.append({"dataset": "shapes_bench", "prompt_id": prompt_id, "prompt": prompt, "variant": variant,
                         "stability": 0.5 + 0.04 * prompt_id, "image": f"images/{prompt_id}_{variant}.png",
                         "shapes_geneval": score if variant == "stable" else 1.0})
    pd.DataFrame(rows).to_csv(run / "results.csv", index=False)
    store = LabelStore(db_path(run.parent))  # the sweep was served: its database holds the run's labels
    for prompt_id, (prompt, _, labels) in enumerate(FIXTURE):
        for annotator, label in zip(("ann", "bob"), labels):
            store.record_label(Label(annotator, f"run/shapes_bench/{prompt_id}/stable", "run", "shapes_bench",
                                     prompt_id, "stable", prompt, label, utc_now()))
    return run


def test_audit_matches_hand_counts(labelled_run: Path):
    result = audit(labelled_run, "shapes_geneval")
    rows = {row.group: row for row in (*result.by_tag, result.overall)}
    single, colors, overall = rows["single_object"], rows["colors"], rows["overall"]
    assert (single.n, single.true_positive, single.false_positive, single.false_negative, single.true_negative) == \
        (5, 2, 1, 1, 1)
    assert (colors.n, colors.true_positive, colors.false_positive, colors.false_negative, colors.true_negative) == \
        (3, 1, 0, 1, 1)
    assert (overall.n, overall.agreement.k, overall.precision.k, overall.precision.n, overall.recall.n) == (8, 5, 3, 4, 5)
    assert overall.agreement.value == pytest.approx(5 / 8) and overall.precision.value == pytest.approx(3 / 4)
    assert overall.recall.value == pytest.approx(3 / 5)
    assert single.agreement.interval == pytest.approx(wilson_interval(3, 5))
    assert result.unlabelled == 20 - 8  # two ties and every unstable image
    assert [row.group for row in result.by_variant] == ["stable"]
    wrong = result.table[~result.table["agree"]]
    assert sorted(wrong["prompt_id"]) == [2, 5, 9]
    report = audit_markdown(result)
    assert "| single_object | 5 | 0.600 | 0.600 | 3/5 = 0.600" in report
    assert "Disagreements (3)" in report and "images/5_stable.png" in report
    # s(eps) = 0.5 + 0.04 id: errors at ids 2, 5, 9 (mean 0.713) vs agreements at 0, 1, 3, 6, 8 (0.644)
    assert "mean 0.713 (n = 3)" in report and "0.644 (n = 5)" in report
    assert not math.isnan(overall.agreement.interval[0])


def test_audit_cli_and_its_errors(labelled_run: Path, tmp_path: Path, capsys):
    out = tmp_path / "audit.md"
    assert main(["audit", str(labelled_run), "--evaluator", "shapes_geneval", "--out", str(out)]) == 0
    assert "Disagreements (3)" in out.read_text()
    labels_csv = tmp_path / "labels.csv"
    assert main(["export", str(labelled_run.parent), "--labels", "--out", str(labels_csv)]) == 0
    assert len(pd.read_csv(labels_csv)) == 20
    assert main(["audit", str(labelled_run.parent), "--evaluator", "shapes_geneval", "--labels", str(labels_csv)]) == 0
    capsys.readouterr()
    assert main(["audit", str(labelled_run), "--evaluator", "hpsv2"]) == 2
    assert "no 'hpsv2' column" in capsys.readouterr().err
    (labelled_run.parent / "human_eval.sqlite").unlink()
    assert main(["audit", str(labelled_run), "--evaluator", "shapes_geneval"]) == 2
    assert "label it first" in capsys.readouterr().err
