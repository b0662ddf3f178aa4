"""What a method declares about itself: the variants it keeps per prompt and the comparisons its report shows.

Every reader of variant names (save_images, the runner's summary, the report's tables, the human-eval pairs, the
benchmark) takes them from here, so that a new method is one class plus one yaml.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal


@dataclass(frozen=True)
class VariantSpec:
    """One kind of noise a method keeps for each prompt (a results.csv `variant`)."""

    name: str  # "stable"
    label: str  # the report's row label: "Stable noise"
    role: Literal["kept", "reference"]  # kept: the method's answer; reference: kept only to compare with
    saved: bool = True  # decoded to images/ when save_images is unset
    starts_from: str | None = None  # the variant it was optimized from (the summary's "ended less stable" count)
    paper_label: str | None = None  # the paper's wording where it differs (Table 3: "Opti. Noise")


@dataclass(frozen=True)
class Comparison:
    """"A vs B": the share of prompts on which A beats B (the winning rate is A's; docs/CONVENTIONS.md)."""

    a: str
    b: str

    @property
    def key(self) -> str:
        return f"{self.a}:{self.b}"

    @property
    def pair(self) -> tuple[str, str]:
        return self.a, self.b


@dataclass(frozen=True)
class Budget:
    """What the equal-compute study gives a method at one rung: b generations of G NFEs (a round trip costs R)."""

    generations: int  # b
    generation_nfe: int  # G
    roundtrip_nfe: int  # R
    latent_dim: int  # d
    verifier: str  # compare.verifier: the scorer a method that sees a verifier may use

    @property
    def roundtrips(self) -> int:
        """K = max(1, floor(bG / R)): the round trips of F(eps) the budget buys."""
        return max(1, self.generations * self.generation_nfe // self.roundtrip_nfe)


@dataclass(frozen=True)
class Declaration:
    """A method's variants (in report order) and comparisons, as a run folder records them (method.json)."""

    method: str
    variants: tuple[VariantSpec, ...]
    comparisons: tuple[Comparison, ...]
    main_variant: str
    sees: str | None = None  # "stability" | "verifier" | None: what the method looks at when it picks

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    def spec(self, name: str) -> VariantSpec | None:
        return next((v for v in self.variants if v.name == name), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Declaration":
        data = json.loads(text)
        return cls(method=str(data["method"]), variants=tuple(VariantSpec(**v) for v in data["variants"]),
                   comparisons=tuple(Comparison(**c) for c in data["comparisons"]),
                   main_variant=str(data["main_variant"]), sees=data.get("sees"))
