"""CLIP BPE tokenizer files made offline from the BPE file open_clip ships (OpenAI CLIP's vocabulary).

`write_clip_tokenizer` writes the whole 49,408-token vocabulary (the tiny models, the test scorers);
`write_digit_tokenizer` writes only the merges that spell a fixed word list (the trained digits and shapes worlds).
"""
from __future__ import annotations

import gzip
import json
import math
import tempfile
from pathlib import Path
from typing import Any, Sequence


def clip_merges() -> list[str]:
    """OpenAI CLIP's BPE merges ("a b" per line) in rank order."""
    from open_clip.tokenizer import default_bpe

    with gzip.open(default_bpe()) as handle:
        return handle.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]


def _write_vocabulary(out_dir: Path, merges: Sequence[tuple[str, ...]]) -> tuple[Path, Path]:
    """HF `vocab.json`/`merges.txt`: CLIP's byte tokens, their word-final forms, then one token per merge."""
    from open_clip.tokenizer import bytes_to_unicode

    byte_tokens = list(bytes_to_unicode().values())
    vocab = byte_tokens + [t + "</w>" for t in byte_tokens] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = out_dir / "vocab.json", out_dir / "merges.txt"
    vocab_file.write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    merges_file.write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return vocab_file, merges_file


def write_clip_tokenizer(out_dir: Path) -> tuple[Path, Path]:
    """Write HF `vocab.json`/`merges.txt` of OpenAI CLIP's full 49,408-token BPE (ids equal open_clip's)."""
    return _write_vocabulary(Path(out_dir), [tuple(m.split()) for m in clip_merges()])


def clip_tokenizers() -> tuple[Any, Any]:
    """OpenAI CLIP's tokenizer twice: SDXL and SD3 pad the second one (OpenCLIP bigG) with '!'."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tok_dir:
        vocab, merges = write_clip_tokenizer(Path(tok_dir))
        return (CLIPTokenizer(str(vocab), str(merges), model_max_length=77),
                CLIPTokenizer(str(vocab), str(merges), pad_token="!", model_max_length=77))


def _bpe_merges_used(word: str, ranks: dict[tuple[str, str], int]) -> list[tuple[str, str]]:
    """The merges CLIP's BPE applies, in order, to one byte-encoded word."""
    parts = list(word[:-1]) + [word[-1] + "</w>"]
    used = []
    while len(parts) > 1:
        pairs = {(parts[i], parts[i + 1]) for i in range(len(parts) - 1)}
        best = min(pairs, key=lambda pair: ranks.get(pair, math.inf))
        if best not in ranks:
            break
        used.append(best)
        merged, i = [], 0
        while i < len(parts):
            if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                merged.append(parts[i] + parts[i + 1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return used


def write_digit_tokenizer(out_dir: Path, words: Sequence[str]) -> tuple[Path, Path]:
    """HF `vocab.json`/`merges.txt` holding CLIP's byte tokens plus only the merges that spell `words`.

    A subset of BPE merges kept in rank order segments those words exactly as the full CLIP tokenizer
    does (the lowest-ranked applicable merge is always in the subset); other text falls back to bytes.
    The text encoder's embedding table shrinks from 49,408 rows to ~540.
    """
    from open_clip.tokenizer import bytes_to_unicode

    ranks = {tuple(m.split()): i for i, m in enumerate(clip_merges())}
    byte_encoder = bytes_to_unicode()
    needed: set[tuple[str, str]] = set()
    for word in words:
        needed.update(_bpe_merges_used("".join(byte_encoder[b] for b in word.encode("utf-8")), ranks))
    return _write_vocabulary(Path(out_dir), sorted(needed, key=ranks.__getitem__))


def word_tokenizer(words: Sequence[str], max_length: int) -> Any:
    """A CLIPTokenizer over `write_digit_tokenizer`'s slice for `words` (its files are read at init)."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tok_dir:
        vocab, merges = write_digit_tokenizer(Path(tok_dir), words)
        return CLIPTokenizer(str(vocab), str(merges), model_max_length=max_length)
