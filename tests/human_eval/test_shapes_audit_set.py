"""The committed audit set (datasets/shapes_audit): its verdict column is the current judge's, and the documented
audit figures hold (docs/shapes_world.md, "The judge audited on the models' own samples")."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from noise_exp.evaluators.shapes import ShapesGenEval
from noise_exp.human_eval.audit import audit

AUDIT = Path(__file__).resolve().parents[2] / "datasets" / "shapes_audit"


def test_committed_verdicts_are_the_current_judges():
    judge = ShapesGenEval()
    for model, count in (("small_shapes", 166), ("small_shapes_l", 156)):
        frame = pd.read_csv(AUDIT / model / "results.csv")
        assert len(frame) == count and frame["stability"].notna().all()
        images = [Image.open(AUDIT / model / path).convert("RGB") for path in frame["image"]]
        fresh = judge.score(images, list(frame["prompt"])).numpy()
        changed = frame.loc[fresh != frame["shapes_geneval"].to_numpy(), "image"].tolist()
        assert not changed, (f"{model}: the judge changed; bump ShapesGenEval.revision (else a candidate bank serves "
                             f"the old verdicts), run python -m noise_exp.studies shapes_audit step=rescore and update the docs")


def test_documented_audit_figures():
    labels = AUDIT / "labels.csv"
    assert len(pd.read_csv(labels)) == 322
    after = audit(AUDIT, "shapes_geneval", labels_csv=labels)
    before = audit(AUDIT, "shapes_geneval_before", labels_csv=labels)
    assert (after.overall.n, after.unlabelled) == (294, 28)
    assert (before.overall.agreement.k, after.overall.agreement.k) == (266, 277)
    two_object = {row.group: row for row in after.by_tag}["two_object"]
    assert (two_object.agreement.k, two_object.n) == (42, 49)
