"""Every code block of docs/api.md runs, in order and in one namespace, on the tiny model of each hub id's family."""
from __future__ import annotations

import re

from tests.api.conftest import model_folder
from tests.conftest import ROOT

PAGE = ROOT / "docs" / "api.md"
STAND_INS = {  # hub id in the page -> family of its tiny random-weight stand-in
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "sd",
    "stabilityai/sdxl-turbo": "sdxl",
    "stabilityai/stable-diffusion-3-medium-diffusers": "sd3",
    "black-forest-labs/FLUX.1-schnell": "flux",
}


def runnable(block: str) -> str:
    """The block as it runs on this CPU: tiny stand-ins, float32, no `.to("cuda")` (the page says so)."""
    for hub_id, family in STAND_INS.items():
        block = block.replace(f'"{hub_id}"', repr(str(model_folder(family))))
    block = block.replace("torch.float16", "torch.float32").replace("torch.bfloat16", "torch.float32")
    return block.replace('.to("cuda")', "")


def test_every_block_of_the_api_page_runs(capsys):
    text = PAGE.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 8 and all(hub_id in text for hub_id in STAND_INS)
    namespace: dict = {}
    for block in blocks:
        exec(compile(runnable(block), str(PAGE), "exec"), namespace)
    out = capsys.readouterr().out
    for line in ("SDXL-turbo: seed", "SD 1.5: seed", "SD3: seed", "FLUX: seed", "optimized: s", "best of 4: seed",
                 "reward ", "select_fast: seed", "reused 4 of 4 candidates"):
        assert line in out, out
    assert namespace["image"].size == (128, 128)  # the tiny SDXL's default size
    assert namespace["fast"].candidates.stability.notna().sum() == 4  # shortlist=3 + unstable_shortlist=1
    assert [seed for seed, _ in namespace["seen"]] == [0, 1, 2, 3]


def test_the_readme_links_the_page_with_its_three_line_example():
    """README's example is the page's first (executed) example, call for call."""
    readme = (ROOT / "README.md").read_text()
    assert "(docs/api.md)" in readme
    example = next(block for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "import noise_exp" in block)
    first = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)[0]
    calls = [line for line in example.splitlines() if line.strip()]
    assert len(calls) == 3 and calls[0] in first
    squeeze = lambda text: re.sub(r"\s+|#[^\n]*", "", text)  # noqa: E731
    assert all(squeeze(call) in squeeze(first) for call in calls[1:])
