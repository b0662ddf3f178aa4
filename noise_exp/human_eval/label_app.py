"""The labelling mode of the human-eval page: `/label` shows one image, its prompt and the rule, and asks "is this
image right for its prompt?" (yes / no / unsure). Added to the pairwise app by `add_label_routes`, so the token,
security headers and error format are the app's.

API: `GET /api/label/next?annotator=` (the next unlabelled item: its opaque key, prompt, rule, progress),
`GET /api/label/image?key=`, `POST /api/labels {annotator, key, label}` (201; a second label is refused with 409).
Keys: Y or 1 = yes, N or 3 = no, U or 2 = unsure.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from noise_exp.errors import NoiseExpError
from noise_exp.human_eval.app import ApiError, _check_annotator, create_app, db_path
from noise_exp.human_eval.labels import (DuplicateLabel, Item, Label, LabelStore, build_items, label_rule,
                                         labelling_order)
from noise_exp.human_eval.page import page_html, page_script
from noise_exp.human_eval.pairs import Comparisons, PairSet, build_pairs, served_image
from noise_exp.rundir.votes import utc_now

log = logging.getLogger(__name__)


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotator: str = Field(min_length=1, max_length=64)
    key: str = Field(min_length=1, max_length=64)
    label: Literal["yes", "no", "unsure"]


def build_app(folder: Path, comparisons: Comparisons | None = None,
              token: str | None = None) -> tuple[FastAPI, PairSet, tuple[Item, ...], LabelStore]:
    """The human-eval app of a run or sweep folder with both modes: pairs at `/`, labels at `/label`. A folder
    without pairs (e.g. one variant per prompt) is served for labelling only."""
    root, items, skipped = build_items(folder)
    for reason in skipped:
        log.warning("skipped image %s", reason)
    try:
        pair_set = build_pairs(root, comparisons)
    except NoiseExpError as err:
        log.warning("no pairs to compare: %s", err)
        pair_set = PairSet(root=root, pairs=(), skipped=())
    store = LabelStore(db_path(root))
    app = create_app(pair_set, store, token=token)
    add_label_routes(app, root, items, store)
    return app, pair_set, items, store


def add_label_routes(app: FastAPI, root: Path, items: tuple[Item, ...], store: LabelStore) -> None:
    by_key = {item.key: item for item in items}
    item_ids = frozenset(item.item_id for item in items)

    def item_or_404(key: str) -> Item:
        item = by_key.get(key)
        if item is None:
            raise ApiError(404, f"unknown item key {key[:64]!r}")
        return item

    def progress(labelled: set[str]) -> dict:
        return {"done": len(labelled & item_ids), "total": len(items)}

    @app.get("/label", response_class=HTMLResponse)
    def label_page() -> HTMLResponse:
        return HTMLResponse(LABEL_HTML)

    @app.get("/label.js")
    def label_script() -> Response:
        return Response(LABEL_JS, media_type="text/javascript")

    @app.get("/label.css")
    def label_style() -> Response:
        return Response(LABEL_CSS, media_type="text/css")

    @app.get("/api/label/next")
    def next_item(annotator: str = Query(min_length=1, max_length=64)) -> dict:
        annotator = _check_annotator(annotator)
        labelled = store.labelled_item_ids(annotator)
        status = progress(labelled)
        for item in labelling_order(annotator, items):
            if item.item_id not in labelled:
                return {"finished": False, "progress": status,
                        "item": {"key": item.key, "prompt": item.prompt, "rule": label_rule(item.prompt),
                                 "number": status["done"] + 1}}
        return {"finished": True, "progress": status, "item": None}

    @app.get("/api/label/image")
    def item_image(key: str = Query(min_length=1, max_length=64)) -> FileResponse:
        path = served_image(root, item_or_404(key).image)
        if path is None:  # checked at start too, but the file may have been replaced since (e.g. by a symlink)
            raise ApiError(404, "the image is gone or no longer inside the served folder")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/labels", status_code=201)
    def record(body: LabelIn) -> dict:
        annotator = _check_annotator(body.annotator)
        item = item_or_404(body.key)
        try:
            store.record_label(Label(annotator, item.item_id, item.run, item.dataset, item.prompt_id, item.variant,
                                     item.prompt, body.label, utc_now()))
        except DuplicateLabel as err:
            raise ApiError(409, str(err)) from err
        return {"status": "recorded", "progress": progress(store.labelled_item_ids(annotator))}


LABEL_HTML = page_html(
    title="Image Labelling", heading="Is this image right for its prompt?", script="/label.js",
    styles=("/style.css", "/label.css"),
    task="""      <h2 id="prompt"></h2>
      <p id="rule"></p>
      <figure class="single"><img id="item-image" alt="image to label"></figure>
      <div class="choices">
        <button type="button" id="label-yes" data-choice="yes" disabled>Yes, right <kbd>Y</kbd> <kbd>1</kbd></button>
        <button type="button" id="label-unsure" data-choice="unsure" disabled>Unsure <kbd>U</kbd> <kbd>2</kbd></button>
        <button type="button" id="label-no" data-choice="no" disabled>No, wrong <kbd>N</kbd> <kbd>3</kbd></button>
      </div>
""",
    finished="All images labelled. Thank you!",
)

LABEL_JS = page_script(
    {"nextPath": "/api/label/next", "postPath": "/api/labels", "field": "item", "idField": "key",
     "choiceField": "label", "idAttribute": "itemKey", "numberWord": "Image", "progressText": "images labelled",
     "savingState": "saving",
     "keys": {"y": "yes", "Y": "yes", "1": "yes", "u": "unsure", "U": "unsure", "2": "unsure", "n": "no", "N": "no",
              "3": "no"},
     "resumeOnLoad": False},
    r"""
  (item, page) => {
    page.byId("rule").textContent = item.rule;
    return page.loadImage("item-image", page.withToken("/api/label/image", { key: item.key }),
                          "could not load the image; reload the page");
  }
""")

LABEL_CSS = """
#rule { color: #444; max-width: 60rem; }
figure.single { margin: 0; text-align: center; }
figure.single img { width: min(60vh, 100%); image-rendering: pixelated; background: #f4f4f4; }
"""
