"""Dataset loaders (OPRO's local files and the Hugging Face path) and OPRO's seeded splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import promptopt.tasks.instructions.datasets as pds
from promptopt.errors import ConfigError, DataError, UnknownNameError
from promptopt.tasks.instructions.datasets import BBH_TASKS, DATA_DIR_ENV, load_dataset, split_dataset
from promptopt.testing import write_jsonl

OPRO_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "opro"
needs_data = pytest.mark.skipif(not OPRO_DATA.is_dir(), reason="OPRO data files not present")


def _opro_train_index(n: int, ratio: float) -> list[int]:
    """OPRO's own recipe, global RNG and all (state restored afterwards)."""
    state = np.random.get_state()
    try:
        np.random.seed(0)
        return sorted(int(i) for i in np.random.choice(n, size=int(ratio * n), replace=False))
    finally:
        np.random.set_state(state)


# --------------------------------------------------------------------------- local OPRO files


@pytest.fixture(scope="module")
def gsm8k_local() -> pds.Dataset:
    return load_dataset("gsm8k", data_dir=OPRO_DATA)


@needs_data
def test_gsm8k_local_split_is_opros(gsm8k_local: pds.Dataset) -> None:
    ds = gsm8k_local
    assert len(ds.pool) == 7473 and ds.test is not None and len(ds.test) == 1319
    s = split_dataset(ds)
    expected = _opro_train_index(7473, 0.035)
    assert len(expected) == 261
    assert [int(e.id.rsplit(":", 1)[1]) for e in s.train] == expected
    assert s.test == ds.test  # tested on the whole test file
    assert len(s.val) == 261 and not {e.id for e in s.val} & {e.id for e in s.train}
    first = ds.pool[0]
    assert first.input.startswith("Natalia sold clips") and first.target == "72" and first.kind == "number"


@needs_data
def test_gsm8k_keeps_questions_with_unicode_line_separators_whole(gsm8k_local: pds.Dataset) -> None:
    ds = gsm8k_local
    assert ds.test is not None
    assert any("\u2028" in e.input or "\u2029" in e.input or "\x85" in e.input for e in ds.pool + ds.test)
    assert all(e.target.lstrip("-").isdigit() for e in ds.pool)


@needs_data
def test_all_bbh_tasks_load_with_opros_split() -> None:
    for task in BBH_TASKS:
        ds = load_dataset(f"bbh:{task}", data_dir=OPRO_DATA)
        s = split_dataset(ds, num_val=0)
        n = len(ds.pool)
        assert [int(e.id.rsplit(":", 1)[1]) for e in s.train] == _opro_train_index(n, 0.2), task
        # num_val=0: the test set is exactly OPRO's 80 %
        assert {e.id for e in s.test} == {e.id for e in ds.pool} - {e.id for e in s.train}
        for e in ds.pool:
            if e.kind == "choice":
                assert e.accepted and set(e.accepted) <= {letter for letter, _ in e.options}, (task, e.target)


@needs_data
def test_bbh_default_validation_comes_from_the_non_train_part() -> None:
    s = split_dataset(load_dataset("bbh:navigate", data_dir=OPRO_DATA))
    ids = [{e.id for e in part} for part in (s.train, s.val, s.test)]
    assert [len(x) for x in ids] == [50, 25, 175]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert len(ids[0] | ids[1] | ids[2]) == 250


@needs_data
def test_bbh_option_text_targets_map_to_their_split_options() -> None:
    movie = {e.target: e for e in load_dataset("bbh:movie_recommendation", data_dir=OPRO_DATA).pool}
    assert movie["Monsters, Inc"].accepted == ("A", "B")
    ruin = {e.target: e for e in load_dataset("bbh:ruin_names", data_dir=OPRO_DATA).pool}
    assert ruin["dearth, wind, & fire"].accepted == ("I", "J", "K")
    assert ruin["rita, sue and bob poo"].accepted == ("C", "D")


@needs_data
def test_bbh_answer_kinds() -> None:
    kinds = {t: load_dataset(f"bbh:{t}", data_dir=OPRO_DATA).pool[0].kind for t in ("navigate", "object_counting", "word_sorting", "snarks", "formal_fallacies")}  # fmt: skip
    assert kinds == {
        "navigate": "boolean",
        "object_counting": "number",
        "word_sorting": "text",
        "snarks": "choice",
        "formal_fallacies": "boolean",
    }


@needs_data
def test_multiarith_and_aqua_local() -> None:
    ma = load_dataset("multiarith", data_dir=OPRO_DATA)
    assert len(ma.pool) == 600 and ma.pool[0].target == "39" and not ma.pool[0].input.startswith(" ")
    aq = load_dataset("aqua", data_dir=OPRO_DATA)
    assert len(aq.pool) == 254
    first = aq.pool[0]
    assert first.kind == "choice" and first.accepted == ("A",)
    assert first.options[0] == ("A", "5(√3 + 1)") and "\n(E) None of these" in first.input


@needs_data
def test_data_dir_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(OPRO_DATA))
    assert load_dataset("bbh:web_of_lies").source == f"local:{OPRO_DATA}"


@needs_data
def test_caps_do_not_move_other_splits(gsm8k_local: pds.Dataset) -> None:
    ds = gsm8k_local
    full = split_dataset(ds)
    capped = split_dataset(ds, num_train=10, num_test=7)
    assert len(capped.train) == 10 and set(capped.train) <= set(full.train)
    assert len(capped.test) == 7 and set(capped.test) <= set(full.test)
    assert capped.val == full.val
    assert split_dataset(ds, num_train=10, num_test=7) == capped  # seeded
    assert split_dataset(ds, seed=1).train != full.train


# --------------------------------------------------------------------------- user files


def test_jsonl_file_with_inferred_kinds(tmp_path: Path) -> None:
    rows = [{"input": f"What is {i} + {i}?", "target": 2 * i} for i in range(20)]
    path = write_jsonl(tmp_path / "math.jsonl", rows)
    ds = load_dataset(f"jsonl:{path}")
    assert ds.pool[3].target == "6" and ds.pool[3].kind == "number"
    s = split_dataset(ds)
    assert (len(s.train), len(s.val), len(s.test)) == (4, 2, 14)  # jsonl: keeps the recipe it had
    file_split = split_dataset(load_dataset(str(path)))  # a bare path: the own-data defaults
    assert (len(file_split.train), len(file_split.val), len(file_split.test)) == (10, 4, 6)

    yn = write_jsonl(
        tmp_path / "yn.jsonl", [{"q": f"Is {i} even?", "a": "yes" if i % 2 == 0 else "no"} for i in range(10)]
    )
    ds2 = load_dataset(f"jsonl:{yn}", input_field="q", target_field="a")
    assert {e.kind for e in ds2.pool} == {"boolean"}


def test_jsonl_choice_with_options_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "mc.jsonl",
        [{"input": "Capital of France?", "options": ["A)Rome", "B)Paris"], "target": "B"}] * 5,
    )
    ex = load_dataset(f"jsonl:{path}").pool[0]
    assert ex.kind == "choice" and ex.accepted == ("B",) and ex.options == (("A", "Rome"), ("B", "Paris"))
    assert ex.input.endswith("Options:\n(A) Rome\n(B) Paris")


def test_jsonl_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"jsonl:{tmp_path / 'nope.jsonl'}")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "a", "target": "b"}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl: line 2 is not valid JSON"):
        load_dataset(f"jsonl:{bad}")
    fields = write_jsonl(tmp_path / "f.jsonl", [{"q": "a", "a": "b"}])  # no input column found by name
    with pytest.raises(DataError, match="--input-field"):
        load_dataset(f"jsonl:{fields}")


def test_bad_specs_and_options(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError):
        load_dataset("nosuchset")
    with pytest.raises(UnknownNameError):
        load_dataset("weird:thing")
    with pytest.raises(UnknownNameError, match="navigate"):
        load_dataset("bbh:navigat", data_dir=tmp_path)
    with pytest.raises(ConfigError):
        load_dataset("bbh")
    with pytest.raises(ConfigError):
        load_dataset("gsm8k:main")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("gsm8k", data_dir=tmp_path / "missing")
    with pytest.raises(DataError, match="gsm_train.tsv"):
        load_dataset("gsm8k", data_dir=tmp_path)
    with pytest.raises(ConfigError, match="answer type"):
        load_dataset(
            f"jsonl:{write_jsonl(tmp_path / 'x.jsonl', [{'input': 'a', 'target': 'b'}])}",
            answer_type="colour",
        )


def test_split_errors(tmp_path: Path) -> None:
    ds = load_dataset(
        f"jsonl:{write_jsonl(tmp_path / 'x.jsonl', [{'input': str(i), 'target': 'x'} for i in range(10)])}"
    )
    for ratio in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match="train_ratio"):
            split_dataset(ds, train_ratio=ratio)
    with pytest.raises(ConfigError, match="no training example"):
        split_dataset(ds, train_ratio=0.05)
    with pytest.raises(ConfigError, match="num_val"):
        split_dataset(ds, num_val=8)  # 2 train + 8 val leaves no test example
    with pytest.raises(ConfigError, match="num_test"):
        split_dataset(ds, num_test=0)


# --------------------------------------------------------------------------- Hugging Face path


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the datasets cache of these tests in a temp dir and forbid network use."""
    import datasets

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hf_cache: Path) -> dict[str, Any]:
    """``datasets.load_dataset`` answering Hub ids from local JSON files, through the real
    ``datasets`` JSON builder; records the (path, name, split) it was asked for."""
    import datasets

    real = datasets.load_dataset
    files: dict[tuple[str, str | None], dict[str, str]] = {}
    calls: list[tuple[str, str | None, str | None]] = []

    def load(path: str, name: str | None = None, *, split: str | None = None, **kw: Any) -> Any:
        calls.append((path, name, split))
        if (path, name) not in files:
            raise ConnectionError(f"no network in tests for {path}")
        return real("json", data_files=files[(path, name)], split=split, cache_dir=str(hf_cache))

    monkeypatch.setattr(datasets, "load_dataset", load)
    # the Hub path is the one taken without a data folder: a user's PROMPTOPT_DATA_DIR must not
    # turn these tests into local-file tests (they failed with it set)
    monkeypatch.delenv("PROMPTOPT_DATA_DIR", raising=False)
    return {"files": files, "calls": calls, "dir": tmp_path}


def test_hub_gsm8k(fake_hub: dict[str, Any]) -> None:
    d = fake_hub["dir"]
    train = write_jsonl(
        d / "g/train.jsonl",
        [{"question": f"Q{i}?", "answer": f"work\n#### {1000 + i:,}"} for i in range(40)],
    )
    test = write_jsonl(d / "g/test.jsonl", [{"question": "T?", "answer": "x\n#### 5"}])
    fake_hub["files"][("openai/gsm8k", "main")] = {"train": str(train), "test": str(test)}
    ds = load_dataset("gsm8k")
    assert fake_hub["calls"] == [("openai/gsm8k", "main", None)]
    assert ds.source == "hf:openai/gsm8k"
    assert ds.pool[1].target == "1001" and ds.test is not None and ds.test[0].target == "5"
    assert len(split_dataset(ds).train) == 1  # int(0.035 * 40)


def test_hub_bbh_aqua_multiarith(fake_hub: dict[str, Any]) -> None:
    d = fake_hub["dir"]
    bbh = write_jsonl(
        d / "b.jsonl", [{"input": f"Go {i}?\nOptions:\n- Yes\n- No", "target": "Yes"} for i in range(10)]
    )
    fake_hub["files"][("lukaemon/bbh", "navigate")] = {"test": str(bbh)}
    aqua = write_jsonl(
        d / "a.jsonl",
        [{"question": "2+2?", "options": ["A)3", "B)4"], "rationale": "", "correct": "B"}] * 5,
    )
    fake_hub["files"][("deepmind/aqua_rat", "raw")] = {"test": str(aqua)}
    ma_train = write_jsonl(d / "m/train.jsonl", [{"question": "1+1?", "final_ans": "2"}] * 3)
    ma_test = write_jsonl(d / "m/test.jsonl", [{"question": "2+3?", "final_ans": "5"}] * 2)
    fake_hub["files"][("ChilleD/MultiArith", None)] = {"train": str(ma_train), "test": str(ma_test)}

    nav = load_dataset("bbh:navigate")
    assert len(nav.pool) == 10 and nav.pool[0].kind == "boolean"
    aq = load_dataset("aqua")
    assert aq.pool[0].accepted == ("B",) and aq.pool[0].options == (("A", "3"), ("B", "4"))
    ma = load_dataset("multiarith")
    assert [e.target for e in ma.pool] == ["2", "2", "2", "5", "5"]
    assert fake_hub["calls"] == [
        ("lukaemon/bbh", "navigate", "test"),
        ("deepmind/aqua_rat", "raw", "test"),
        ("ChilleD/MultiArith", None, None),
    ]


def test_hub_failure_is_one_line_data_error(fake_hub: dict[str, Any]) -> None:
    with pytest.raises(DataError, match="could not load Hugging Face dataset 'openai/gsm8k'") as info:
        load_dataset("gsm8k")
    assert "\n" not in str(info.value) and "--data-dir" in str(info.value)


def test_hf_id_as_local_folder_with_train_and_test(tmp_path: Path, hf_cache: Path) -> None:
    """A bare id goes to the real ``datasets.load_dataset``; a local folder of data files works offline."""
    folder = tmp_path / "owner" / "set"
    write_jsonl(folder / "train.jsonl", [{"q": f"{i}+1?", "a": str(i + 1)} for i in range(30)])
    write_jsonl(folder / "test.jsonl", [{"q": "9+1?", "a": "10"}] * 4)
    ds = load_dataset(str(folder), input_field="q", target_field="a")
    assert ds.name == f"file:{folder}" and len(ds.pool) == 30 and ds.test is not None and len(ds.test) == 4
    s = split_dataset(ds)
    assert len(s.train) == 6 and len(s.val) == 6 and len(s.test) == 4  # val: as many as train
    assert s.train[0].kind == "number"


def test_hf_saved_to_disk_folder(tmp_path: Path, hf_cache: Path) -> None:
    import datasets

    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"input": [f"Is {i} odd?" for i in range(10)], "target": ["no", "yes"] * 5}
            )
        }
    )
    dd.save_to_disk(str(tmp_path / "saved"))
    ds = load_dataset(f"hf:{tmp_path / 'saved'}")
    assert len(ds.pool) == 10 and ds.test is None and ds.pool[1].kind == "boolean"
    s = split_dataset(ds)
    assert (len(s.train), len(s.val), len(s.test)) == (2, 1, 7)  # hf: keeps the recipe it had


def test_module_has_no_global_rng_side_effect() -> None:
    before = np.random.get_state()[1].copy()
    ds = pds.Dataset(
        "x", tuple(pds.Example(str(i), "q", "1", "number") for i in range(50)), None, "t", "x", 0.2, 0.1
    )
    split_dataset(ds)
    assert (np.random.get_state()[1] == before).all()
