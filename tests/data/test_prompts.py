"""The shipped prompt sets and user prompt files, including the errors bad files give."""
import pytest
from hydra.utils import instantiate

from noise_exp.data import PromptSet
from noise_exp.data.prompts import single_prompt
from noise_exp.errors import NoiseExpError
from tests.conftest import compose_cfg


def load(name: str, *overrides: str):
    return instantiate(compose_cfg([f"dataset={name}", *overrides]).dataset).load()


def test_drawbench_has_all_200_prompts_with_categories():
    prompts = load("drawbench")
    assert len(prompts) == 200 and [p.id for p in prompts] == list(range(200))
    assert prompts[0].text == "A red colored car." and prompts[0].meta == {"category": "Colors"}
    assert len({p.meta["category"] for p in prompts}) == 11


def test_pickapic_is_the_papers_first_100():
    prompts = load("pickapic")
    ids = [p.id for p in prompts]
    assert len(prompts) == 100 and ids[0] == 0 and ids[-1] == 100 and 87 not in ids
    assert prompts[0].text == "A curious cat exploring a haunted mansion"


def test_geneval_has_553_prompts_with_tags():
    prompts = load("geneval")
    assert len(prompts) == 553
    tags = {}
    for p in prompts:
        tags[p.meta["tag"]] = tags.get(p.meta["tag"], 0) + 1
    assert tags == {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100, "color_attr": 100}


def test_offset_limit_and_shards_partition_the_prompts():
    assert [p.id for p in load("drawbench", "dataset.offset=10", "dataset.limit=3")] == [10, 11, 12]
    shards = [load("drawbench", "dataset.limit=10", "dataset.num_shards=3", f"dataset.shard_index={i}") for i in range(3)]
    assert sorted(p.id for s in shards for p in s) == list(range(10))


def test_user_prompt_files(tmp_path):
    (tmp_path / "a.txt").write_text("first prompt\n\n second prompt \n")
    assert [p.text for p in PromptSet("prompts", str(tmp_path / "a.txt")).load()] == ["first prompt", "second prompt"]
    (tmp_path / "b.csv").write_text('prompt,extra\n"a, quoted prompt",1\nplain,2\n')
    assert [p.text for p in PromptSet("prompts", str(tmp_path / "b.csv")).load()] == ["a, quoted prompt", "plain"]
    (tmp_path / "c.jsonl").write_text('{"prompt": "x"}\n{"prompt": "y"}\n')
    assert [p.id for p in PromptSet("prompts", str(tmp_path / "c.jsonl")).load()] == [0, 1]
    assert single_prompt("a cat")[0].text == "a cat"


@pytest.mark.parametrize("name,content,message", [
    ("bad.csv", 'prompt,extra\n"unterminated,1\n', "malformed CSV"),
    ("cols.csv", "prompt,extra\na,b,c\n", "malformed CSV row"),
    ("nocol.csv", "text\na cat\n", "no 'prompt' column"),
    ("empty.txt", "\n\n", "no prompts"),
    ("bad.jsonl", '{"prompt": "x"}\n{nope\n', "malformed JSON"),
    ("holes.csv", "prompt\na\n\"\"\n", "empty prompt"),
    ("x.docx", "whatever", "unsupported prompt file type"),
])
def test_malformed_prompt_files_raise_one_clear_error(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(NoiseExpError, match=message):
        PromptSet("prompts", str(tmp_path / name)).load()


def test_missing_file_and_empty_selection():
    with pytest.raises(NoiseExpError, match="not found"):
        PromptSet("prompts", "/nonexistent/prompts.txt").load()
    with pytest.raises(NoiseExpError, match="no prompts"):
        load("drawbench", "dataset.offset=500")


def test_prompt_path_that_is_a_directory_says_so(tmp_path):
    with pytest.raises(NoiseExpError, match=r"is a directory; give a prompt file"):
        PromptSet("prompts", str(tmp_path)).load()


def test_missing_path_names_the_key_to_set():
    with pytest.raises(NoiseExpError, match=r"set dataset\.path="):
        PromptSet("prompts", None).load()


@pytest.mark.parametrize("name,content", [
    ("bom.csv", "prompt,extra\nfirst prompt,1\nsecond,2\n"),
    ("bom.tsv", "prompt\textra\nfirst prompt\t1\nsecond\t2\n"),
    ("bom.txt", "first prompt\nsecond\n"),
    ("bom.jsonl", '{"prompt": "first prompt"}\n{"prompt": "second"}\n'),
])
def test_utf8_bom_is_not_part_of_the_header_or_first_prompt(tmp_path, name, content):
    """Excel's "CSV UTF-8" and Notepad start the file with a byte-order mark."""
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + content.encode("utf-8"))
    assert [p.text for p in PromptSet("prompts", str(path)).load()] == ["first prompt", "second"]


@pytest.mark.parametrize("value,shown", [("null", "null"), ("42", "42"), ('["a", "b"]', '["a", "b"]'),
                                         ("{}", "{}")])
def test_jsonl_prompt_that_is_not_a_string_names_file_and_line(tmp_path, value, shown):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "fine"}\n\n{"prompt": %s}\n' % value)
    with pytest.raises(NoiseExpError) as error:
        PromptSet("prompts", str(path)).load()
    assert str(error.value) == f"{path}:3: 'prompt' is {shown}, expected a string"


def test_jsonl_line_without_the_prompt_field_names_file_and_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "fine"}\n{"text": "elsewhere"}\n')
    with pytest.raises(NoiseExpError, match=rf"^{path}:2: no 'prompt' field$"):
        PromptSet("prompts", str(path)).load()
