"""Request cache: stable keys, distinct keys, no secrets, hits cost nothing."""

from __future__ import annotations

import subprocess
import sys

from promptopt.llm.base import Request
from promptopt.llm.cache import CachedLLM, RequestCache, cache_key
from promptopt.llm.factory import build_llm
from promptopt.llm.fake import FakeLLM

REQ = Request.chat("What is 2+2?", system="Be brief.", temperature=0.0, max_tokens=16, seed=0)


def test_key_is_stable_across_processes() -> None:
    code = (
        "from promptopt.llm.base import Request;from promptopt.llm.cache import cache_key;"
        "print(cache_key('m', Request.chat('What is 2+2?', system='Be brief.', temperature=0.0,"
        " max_tokens=16, seed=0), 0))"
    )
    env_keys = set()
    for seed in ("1", "2"):  # different hash seeds: hash() would differ, sha256 must not
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        )
        env_keys.add(out.stdout.strip())
    assert env_keys == {cache_key("m", REQ, 0)}


def test_keys_differ_for_every_sampling_param_and_sample_index() -> None:
    base = cache_key("m", REQ, 0)
    variants = [
        cache_key("m2", REQ, 0),
        cache_key("m", REQ, 1),
        cache_key("m", REQ.with_(temperature=0.5), 0),
        cache_key("m", REQ.with_(top_p=0.9), 0),
        cache_key("m", REQ.with_(max_tokens=17), 0),
        cache_key("m", REQ.with_(stop=("\n",)), 0),
        cache_key("m", REQ.with_(seed=1), 0),
        cache_key("m", REQ.with_(seed=None), 0),
        cache_key("m", Request(prompt="What is 2+2?", max_tokens=16, seed=0), 0),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_n_does_not_change_per_sample_keys() -> None:
    assert cache_key("m", REQ.with_(n=4), 2) == cache_key("m", REQ.with_(n=8), 2)


def test_cache_file_holds_no_secret(tmp_path, monkeypatch) -> None:
    marker = "sk-MARKER-should-never-be-stored"
    monkeypatch.setenv("OPENAI_API_KEY", marker)
    fake = FakeLLM(default="4")
    llm = build_llm(fake, cache=tmp_path / "c.sqlite")
    llm.generate([REQ])
    for f in tmp_path.iterdir():
        assert marker.encode() not in f.read_bytes()


def test_hit_costs_no_backend_call_and_is_marked(tmp_path) -> None:
    fake = FakeLLM(fn=lambda r, i: "four")
    llm = CachedLLM(fake, RequestCache(tmp_path / "c.sqlite"))
    first = llm.generate([REQ])[0]
    second = llm.generate([REQ])[0]
    assert len(fake.calls) == 1
    assert not first.cached and second.cached
    assert second.text == "four" and second.usage.calls == 0


def test_persistent_across_instances(tmp_path) -> None:
    path = tmp_path / "c.sqlite"
    CachedLLM(FakeLLM(default="a"), RequestCache(path)).generate([REQ])
    fake2 = FakeLLM(default="b")
    out = CachedLLM(fake2, RequestCache(path)).generate([REQ])[0]
    assert out.text == "a" and fake2.calls == []


def test_deterministic_policy_skips_sampled_requests(tmp_path) -> None:
    fake = FakeLLM(default="x")
    llm = CachedLLM(fake, RequestCache(tmp_path / "c.sqlite"), policy="deterministic")
    hot = REQ.with_(temperature=1.0)
    llm.generate([hot])
    llm.generate([hot])
    assert len(fake.calls) == 2


def test_all_policy_refills_only_missing_samples(tmp_path) -> None:
    fake = FakeLLM(fn=lambda r, i: f"s{i}")
    llm = CachedLLM(fake, RequestCache(tmp_path / "c.sqlite"), policy="all")
    hot = REQ.with_(temperature=1.0, n=2)
    assert llm.generate([hot])[0].texts == ["s0", "s1"]
    more = llm.generate([hot.with_(n=3)])[0]
    assert len(fake.calls) == 2 and fake.calls[1].n == 1  # only the third sample was asked for
    assert more.texts[:2] == ["s0", "s1"] and len(more.texts) == 3


def test_errors_are_not_cached(tmp_path) -> None:
    from promptopt.llm.base import LLMServerError

    fake = FakeLLM([LLMServerError("boom"), "ok"])
    llm = CachedLLM(fake, RequestCache(tmp_path / "c.sqlite"))
    res = llm.generate([REQ], return_exceptions=True)
    assert isinstance(res[0], LLMServerError)
    assert llm.generate([REQ])[0].text == "ok"
