"""docs/extending.md quotes the walk-throughs' files whole: each `<!-- file: PATH -->` block equals the file, every
walk-through file is quoted, and the model family's command is the one its test runs."""
from __future__ import annotations

import re

from tests.extending import HERE, REPO
from tests.extending.test_add_a_model_family import COMMAND

DOC = REPO / "docs" / "extending.md"
QUOTED = re.compile(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```\n", re.DOTALL)


def test_each_quoted_block_is_its_file_and_every_walk_through_file_is_quoted():
    text = DOC.read_text()
    quoted = dict(QUOTED.findall(text))
    assert text.count("<!-- file: ") == len(quoted), "a file marker without a fenced block after it"
    stale = [path for path, block in quoted.items() if (REPO / path).read_text() != block]
    assert stale == [], f"paste these files into docs/extending.md again: {stale}"
    files = {str(path.relative_to(REPO)) for path in [*HERE.glob("my_*.py"), *(HERE / "conf").rglob("*.yaml")]}
    assert files - set(quoted) == set(), "walk-through files docs/extending.md does not show"
    assert COMMAND in text
