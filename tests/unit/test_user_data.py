"""The user's own data: data files by path, input/target fields, templates, ``@FILE``, splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import promptopt.tasks.instructions.datasets as pds
from promptopt.errors import ConfigError, DataError, UnknownNameError
from promptopt.tasks.instructions.datasets import (
    load_dataset,
    parse_split_size,
    read_text_option,
    split_dataset,
)
from promptopt.testing import write_jsonl


@pytest.fixture(autouse=True)
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the datasets cache of these tests in a temp dir and forbid network use."""
    import datasets

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("PROMPTOPT_DATA_DIR", raising=False)
    return cache


def qa_rows(n: int = 20) -> list[dict[str, Any]]:
    return [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(n)]


def write_csv(path: Path, header: list[str], rows: list[list[str]], sep: str = ",") -> Path:
    path.write_text(sep.join(header) + "\n" + "".join(sep.join(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- formats


def _write(fmt: str, folder: Path, rows: list[dict[str, Any]]) -> Path:
    if fmt == "jsonl":
        return write_jsonl(folder / "d.jsonl", rows)
    if fmt == "json-array":
        (folder / "d.json").write_text(json.dumps(rows), encoding="utf-8")
    elif fmt == "json-lines":
        write_jsonl(folder / "d.json", rows)
    elif fmt == "json-wrapped":
        (folder / "d.json").write_text(json.dumps({"version": 2, "data": rows}), encoding="utf-8")
    elif fmt == "csv":
        return write_csv(folder / "d.csv", list(rows[0]), [[str(v) for v in r.values()] for r in rows])
    elif fmt == "tsv":
        return write_csv(folder / "d.tsv", list(rows[0]), [[str(v) for v in r.values()] for r in rows], "\t")
    elif fmt == "parquet":
        import datasets

        datasets.Dataset.from_list(rows).to_parquet(str(folder / "d.parquet"))
        return folder / "d.parquet"
    return folder / "d.json"


@pytest.mark.parametrize(
    "fmt", ["jsonl", "json-array", "json-lines", "json-wrapped", "csv", "tsv", "parquet"]
)
@pytest.mark.parametrize("prefix", ["", "file:"])
def test_each_format_loads_by_path(tmp_path: Path, fmt: str, prefix: str) -> None:
    path = _write(fmt, tmp_path, qa_rows())
    ds = load_dataset(f"{prefix}{path}")
    assert ds.name == f"file:{path}" and ds.user and ds.test is None and len(ds.pool) == 20
    ex = ds.pool[3]
    assert (ex.id, ex.input, ex.target, ex.kind) == (f"{path.name}:3", "What is 3 + 3?", "6", "number")
    assert ex.fields == {"question": "What is 3 + 3?", "answer": "6"}
    assert ds.input_fields == ("question",) and ds.target_field == "answer" and ds.gold


def test_csv_values_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        '\ufeffquestion,answer,code,note\n"Add 1, then 2?",3,007,\nTwo?,2,1e3,x\nThree?,3,12,y\n',
        encoding="utf-8",
    )
    ds = load_dataset(str(path))
    first = ds.pool[0]
    assert first.input == "Add 1, then 2?" and first.target == "3"
    assert first.fields == {"question": "Add 1, then 2?", "answer": "3", "code": "007", "note": None}
    assert ds.pool[1].fields["code"] == "1e3"  # not guessed into 1000.0


def test_non_string_column_values_are_kept(tmp_path: Path) -> None:
    rows = [
        {"input": f"q{i}", "target": i, "score": i / 2, "ok": i % 2 == 0, "tags": ["a", i], "meta": {"k": i}}
        for i in range(5)
    ]
    ds = load_dataset(str(write_jsonl(tmp_path / "d.jsonl", rows)))
    ex = ds.pool[2]
    assert ex.target == "2" and ex.kind == "number"
    assert ex.fields == {
        "input": "q2",
        "target": 2,
        "score": 1.0,
        "ok": True,
        "tags": ["a", 2],
        "meta": {"k": 2},
    }
    assert hash(ex) == hash(ds.pool[2])  # still hashable with list and dict values
    # jsonl: reads the same file line by line, values exactly as the JSON has them
    assert load_dataset(f"jsonl:{tmp_path / 'd.jsonl'}").pool[2].fields == ex.fields


def test_a_number_column_as_input_is_rendered_as_text(tmp_path: Path) -> None:
    rows = [{"question": i, "answer": "yes" if i % 2 else "no"} for i in range(4)]
    ds = load_dataset(str(write_jsonl(tmp_path / "d.jsonl", rows)))
    assert ds.pool[3].input == "3" and ds.pool[3].kind == "boolean"


def test_a_folder_of_data_files_keeps_its_test_split(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    write_jsonl(folder / "train.jsonl", qa_rows(30))
    write_jsonl(folder / "test.jsonl", qa_rows(4))
    for spec in (str(folder), f"file:{folder}", f"hf:{folder}"):
        ds = load_dataset(spec)
        assert len(ds.pool) == 30 and ds.test is not None and len(ds.test) == 4 and ds.user
        s = split_dataset(ds)
        assert s.test == ds.test  # its own test split, whole
        assert not {e.id for e in s.train} & {e.id for e in s.val}
        assert "4-row test split" in s.recipe["note"]
        s2 = split_dataset(ds, train=10, val=0.2, test=0.5)
        assert (len(s2.train), len(s2.val), len(s2.test)) == (10, 6, 2)  # test: a fraction of the test split
    with pytest.raises(ConfigError, match="4 rows of"):
        split_dataset(load_dataset(str(folder)), test=5)


def test_a_folder_with_one_file_is_one_pool(tmp_path: Path) -> None:
    folder = tmp_path / "one"
    write_jsonl(folder / "rows.jsonl", qa_rows(20))
    ds = load_dataset(str(folder))
    assert ds.test is None and len(ds.pool) == 20
    s = split_dataset(ds)
    assert (len(s.train), len(s.val), len(s.test)) == (10, 4, 6)


def test_a_save_to_disk_folder(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_list(qa_rows(10)).save_to_disk(str(tmp_path / "saved"))
    ds = load_dataset(f"file:{tmp_path / 'saved'}")
    assert len(ds.pool) == 10 and ds.test is None and ds.pool[1].target == "2"
    assert ds.name == f"file:{tmp_path / 'saved'}"


# --------------------------------------------------------------------------- fields


def test_automatic_field_choice(tmp_path: Path) -> None:
    def fields_of(row: dict[str, Any]) -> tuple[tuple[str, ...], str | None]:
        ds = load_dataset(str(write_jsonl(tmp_path / "f.jsonl", [row] * 3)))
        return ds.input_fields, ds.target_field

    assert fields_of({"prompt": "p", "completion": "c"}) == (("prompt",), "completion")
    assert fields_of({"question": "q", "input": "i", "label": "l", "target": "t"}) == (("input",), "target")
    assert fields_of({"text": "t", "query": "q", "output": "o", "response": "r"}) == (("query",), "output")
    assert fields_of({"instruction": "i"}) == (("instruction",), None)
    with pytest.raises(DataError, match=r"no column 'input' \(nor question, .*columns: a, b.*--input-field"):
        fields_of({"a": "x", "b": "y"})


def test_named_fields_and_several_inputs(tmp_path: Path) -> None:
    rows = [{"ctx": f"c{i}", "q": f"q{i}", "gold": f"g{i}"} for i in range(5)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    ds = load_dataset(str(path), input_field="q", target_field="gold")
    assert (ds.pool[1].input, ds.pool[1].target) == ("q1", "g1")
    for names in ("q, ctx", ["q", "ctx"]):
        ds = load_dataset(str(path), input_field=names, target_field="gold")
        assert ds.pool[1].input == "q: q1\nctx: c1" and ds.input_fields == ("q", "ctx")
    with pytest.raises(DataError, match=r"no column 'nope'.*--input-field"):
        load_dataset(str(path), input_field="q,nope")
    with pytest.raises(ConfigError, match="twice"):
        load_dataset(str(path), input_field="q,q")
    with pytest.raises(ConfigError, match="gold answer would be shown"):
        load_dataset(str(path), input_field="q,gold", target_field="gold")


def test_prompts_only_data_has_no_gold(tmp_path: Path) -> None:
    rows = [{"prompt": f"Write a haiku about {i}", "topic": i} for i in range(6)]
    ds = load_dataset(str(write_jsonl(tmp_path / "p.jsonl", rows)))
    assert all(e.target is None for e in ds.pool) and {e.kind for e in ds.pool} == {"text"}
    assert ds.target_field is None and not ds.gold
    s = split_dataset(ds)
    assert (len(s.train), len(s.val), len(s.test)) == (3, 1, 2)
    assert s.recipe["gold"] is False and s.recipe["target_field"] is None
    assert s.recipe["input_fields"] == ["prompt"]


def test_an_explicit_target_field_must_exist(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "x"}] * 3)
    with pytest.raises(DataError, match=r"no column 'answer'.*--target-field"):
        load_dataset(str(path), target_field="answer")


def test_empty_inputs_and_targets_name_the_row(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"question": "a", "answer": "1"}, {"question": " ", "answer": "2"}]
    )
    with pytest.raises(DataError, match=r"d.jsonl: row 2 has an empty or null 'question' field"):
        load_dataset(str(path))
    path = write_jsonl(
        tmp_path / "e.jsonl", [{"question": "a", "answer": "1"}, {"question": "b", "answer": None}]
    )
    with pytest.raises(DataError, match=r"e.jsonl: row 2 has an empty or null 'answer' field"):
        load_dataset(str(path))
    # one of several input fields may be empty (an optional context); all empty is an error
    path = write_jsonl(tmp_path / "f.jsonl", [{"ctx": None, "q": "b", "answer": "1"}] * 3)
    assert load_dataset(str(path), input_field="ctx,q").pool[0].input == "ctx: \nq: b"
    path = write_jsonl(tmp_path / "g.jsonl", [{"ctx": None, "q": "", "answer": "1"}] * 3)
    with pytest.raises(DataError, match=r"g.jsonl: row 1 has an empty or null 'ctx' and 'q' field"):
        load_dataset(str(path), input_field="ctx,q")


def test_options_column_is_appended_for_choice(tmp_path: Path) -> None:
    rows = [{"question": "Capital of France?", "options": ["A)Rome", "B)Paris"], "answer": "B"}] * 3
    path = write_jsonl(tmp_path / "mc.jsonl", rows)
    ex = load_dataset(str(path)).pool[0]
    assert (
        ex.kind == "choice" and ex.accepted == ("B",) and ex.input.endswith("Options:\n(A) Rome\n(B) Paris")
    )
    templated = load_dataset(str(path), template="Q: {question}").pool[0]
    assert templated.input == "Q: Capital of France?" and templated.accepted == ("B",)


# --------------------------------------------------------------------------- templates


def test_template_renders_the_row(tmp_path: Path) -> None:
    rows = [{"context": f"c{{x}}{i}", "question": f"q{i}", "n": i, "answer": str(i)} for i in range(4)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    ds = load_dataset(str(path), template="Context: {context}\nQuestion: {question} ({n}) {{literal}}")
    assert ds.pool[2].input == "Context: c{x}2\nQuestion: q2 (2) {literal}"  # values are not re-formatted
    assert ds.input_fields == ("context", "question", "n") and ds.template is not None
    assert ds.target_field == "answer" and ds.pool[2].target == "2"
    assert split_dataset(ds).recipe["template"] == ds.template


@pytest.mark.parametrize(
    "template",
    ["{question.upper}", "{question[0]}", "{question!r}", "{question:>10}", "{}", "{0}", "Q {", "plain"],
)
def test_bad_templates_are_refused(tmp_path: Path, template: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", qa_rows(3))
    with pytest.raises(ConfigError, match="template"):
        load_dataset(str(path), template=template)


def test_template_field_checks(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", qa_rows(3))
    with pytest.raises(DataError, match=r"\{missing\}.*columns: question, answer"):
        load_dataset(str(path), template="{missing}")
    with pytest.raises(ConfigError, match="gold answer would be shown"):
        load_dataset(str(path), template="{question} {answer}", target_field="answer")
    with pytest.raises(ConfigError, match="either a template or input fields"):
        load_dataset(str(path), template="{question}", input_field="question")
    with pytest.raises(ConfigError, match="your own data"):
        load_dataset("gsm8k", template="{question}")


def test_read_text_option(tmp_path: Path) -> None:
    assert read_text_option(None, "--template") is None
    assert read_text_option("Q: {question}", "--template") == "Q: {question}"
    assert read_text_option("@@handle {question}", "--template") == "@handle {question}"
    (tmp_path / "t.txt").write_text("Context: {context}\nQ: {question}\n", encoding="utf-8")
    assert read_text_option(f"@{tmp_path / 't.txt'}", "--template") == "Context: {context}\nQ: {question}"
    with pytest.raises(DataError, match="--system-prompt file .*nope.txt does not exist"):
        read_text_option(f"@{tmp_path / 'nope.txt'}", "--system-prompt")
    with pytest.raises(ConfigError, match="file name"):
        read_text_option("@", "--template")
    # load_dataset reads a template given as a Path (a string is the template's text)
    data = write_jsonl(tmp_path / "d.jsonl", [{"context": "c", "question": "q", "answer": "1"}] * 3)
    assert load_dataset(str(data), template=tmp_path / "t.txt").pool[0].input == "Context: c\nQ: q"


# --------------------------------------------------------------------------- specs and file errors


def test_unknown_specs_and_builder_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def no_load(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("datasets.load_dataset must not be called")

    monkeypatch.setattr(datasets, "load_dataset", no_load)
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "stray.json", qa_rows(3))  # what a builder name would pick up
    for name in ("csv", "json", "parquet", "text"):
        with pytest.raises(ConfigError, match="give the file's path"):
            load_dataset(f"hf:{name}")
    with pytest.raises(UnknownNameError, match=r"a data file\? give a path to an existing \.jsonl"):
        load_dataset("mydata")
    with pytest.raises(DataError, match="data file .*missing.csv does not exist"):
        load_dataset("missing.csv")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("file:nope.jsonl")
    (tmp_path / "notes.txt").write_text("hello\n", encoding="utf-8")
    with pytest.raises(DataError, match="unknown data file type '.txt'"):
        load_dataset("notes.txt")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("e.jsonl", "", "is empty"),
        ("e.json", "  \n", "is empty"),
        ("e.csv", "", "is empty"),
        ("h.csv", "question,answer\n", "header but no rows"),
        ("l.json", "[]", "empty list"),
        ("b.jsonl", '{"question": "a", "answer": "1"}\n{oops\n', "line 2 is not valid JSON"),
        ("b.json", '{"question": "a", "answer": "1"}\n{oops\n', "line 2 is not valid JSON"),
        ("s.json", "[1, 2]", "list of JSON objects"),
        ("m.json", '{"a": [{"x": 1}], "b": [{"y": 2}]}', "several lists of rows"),
        ("e.parquet", "", "is empty"),
        ("x.parquet", "not parquet", "could not read"),
    ],
)
def test_bad_files_are_one_line_data_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        load_dataset(str(tmp_path / name))
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- splits


def test_default_split_of_your_own_data(tmp_path: Path) -> None:
    ds = load_dataset(str(write_jsonl(tmp_path / "d.jsonl", qa_rows(20))))
    s = split_dataset(ds)
    assert (len(s.train), len(s.val), len(s.test)) == (10, 4, 6)
    ids = [{e.id for e in part} for part in (s.train, s.val, s.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]) and len(ids[0] | ids[1] | ids[2]) == 20
    assert s.recipe["note"] == (
        "20 rows: 10 train / 4 validation / 6 test "
        "(default for your own data: 50 % / 20 % / rest; set --train/--val/--test)"
    )
    assert s.recipe["input_fields"] == ["question"] and s.recipe["target_field"] == "answer"
    assert s.recipe["gold"] is True and s.recipe["user_data"] is True
    assert split_dataset(ds) == s  # seeded
    assert split_dataset(ds, seed=1).train != s.train
    tiny = load_dataset(str(write_jsonl(tmp_path / "t.jsonl", qa_rows(3))))
    assert [
        len(x) for x in (split_dataset(tiny).train, split_dataset(tiny).val, split_dataset(tiny).test)
    ] == [1, 1, 1]


def test_explicit_split_sizes(tmp_path: Path) -> None:
    ds = load_dataset(str(write_jsonl(tmp_path / "d.jsonl", qa_rows(20))))

    def sizes(**kw: Any) -> tuple[int, int, int]:
        s = split_dataset(ds, **kw)
        return len(s.train), len(s.val), len(s.test)

    assert sizes(train=12, val=3, test=5) == (12, 3, 5)
    assert sizes(train=0.25, val=0.25) == (5, 5, 10)
    assert sizes(train=6) == (6, 4, 10)  # val keeps its default, test the rest
    assert sizes(test=2) == (10, 4, 2)  # a smaller test set leaves rows unused
    assert sizes(val=0) == (10, 0, 10)
    assert sizes(train=0.01) == (1, 4, 15)  # a fraction is at least one row
    assert sizes(train_ratio=0.3) == (6, 4, 10)  # the old parameters still work
    assert sizes(train=5, num_train=2, num_test=3) == (2, 4, 3)
    s = split_dataset(ds, train=12, val=3, test=5)
    assert "train 12 as set" in s.recipe["note"] and s.recipe["note"].startswith("20 rows: 12 train")
    assert split_dataset(ds, train=12, val=3, test=5) == s


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"train": 20}, "has 20 rows"),
        ({"train": 10, "val": 10}, "has 20 rows"),
        ({"train": 10, "val": 4, "test": 7}, "has 20 rows"),
        ({"test": 0.9}, "has 20 rows"),
        ({"train": 0}, "train must be a count >= 1"),
        ({"train": 1.0}, "between 0 and 1"),
        ({"val": -1}, "val must be a count"),
        ({"test": True}, "test must be a count"),
        ({"train": 5, "train_ratio": 0.2}, "not both"),
        ({"val": 5, "num_val": 2}, "not both"),
    ],
)
def test_split_sizes_that_do_not_fit(tmp_path: Path, kw: dict[str, Any], message: str) -> None:
    ds = load_dataset(str(write_jsonl(tmp_path / "d.jsonl", qa_rows(20))))
    with pytest.raises(ConfigError, match=message):
        split_dataset(ds, **kw)


def test_too_small_a_pool(tmp_path: Path) -> None:
    ds = load_dataset(str(write_jsonl(tmp_path / "d.jsonl", qa_rows(2))))
    with pytest.raises(DataError, match="at least 3 examples"):
        split_dataset(ds)
    with pytest.raises(DataError, match="at least 3 examples"):
        split_dataset(ds, train=1, val=0)


def test_benchmarks_keep_opros_defaults() -> None:
    pool = tuple(pds.Example(f"x:{i}", "q", "1", "number") for i in range(50))
    ds = pds.Dataset("bbh:x", pool, None, "t", "x", 0.2, 0.1)
    assert not ds.user
    s = split_dataset(ds)
    assert (len(s.train), len(s.val), len(s.test)) == (10, 5, 35)
    assert "OPRO's recipe" in s.recipe["note"]
    assert [len(x) for x in (split_dataset(ds, train=20, val=0.1).train, split_dataset(ds, test=4).test)] == [
        20,
        4,
    ]


def test_parse_split_size() -> None:
    assert parse_split_size("10") == 10 and isinstance(parse_split_size("10"), int)
    assert parse_split_size("0.5") == 0.5 and parse_split_size("25%") == 0.25
    for bad in ("ten", "1.5", "100%", "-3"):
        with pytest.raises(ConfigError, match="split size|fraction|count"):
            parse_split_size(bad)
