"""Issue 5, part 2: SIGKILL a CLI run at random moments, resume it, and get the uninterrupted result.

The model is the scripted server (answers are a pure function of the request), so equality of the
final result and history with an uninterrupted run follows from the design (per-step RNG, per-proposal
seeds, the journal) and not from replaying a shared cache: the reference run and the killed run use
different request caches. Kills land after a random number of new journal records plus a random
delay; twice a torn half-record is appended after the kill, which is what a kill in the middle of a
write leaves behind.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promptopt.cli import main as cli_main
from promptopt.optimizers.opro.optimizer import history_from_records
from promptopt.runs import CONFIG_FILE, JOURNAL_FILE, RESULT_FILE, read_journal
from tests.robustness.conftest import CLI, cli_env, write_pairs_jsonl

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(150)]

KILLS = 10
TORN_AFTER = (3, 7)  # kill numbers after which a torn half-record is appended
TORN = b'{"event":"trial","trial":{"step":3,"index":1,"status":"sco'


def _lines(paths: list[Path]) -> int:
    n = 0
    for p in paths:
        try:
            n += p.read_bytes().count(b"\n")
        except FileNotFoundError:
            pass
    return n


def _assert_clean_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line a complete JSON object, the file ending on a newline (nothing torn left)."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"{path.name} ends in a torn line"
    out = []
    for i, line in enumerate(data.split(b"\n")[:-1], 1):
        rec = json.loads(line)  # raises on a torn or glued record
        assert isinstance(rec, dict), f"{path.name}: line {i}"
        out.append(rec)
    return out


def _kill_repeatedly(
    command: Callable[[], list[str]],
    env: dict[str, str],
    watch: list[Path],
    torn_target: Callable[[], Path | None],
    seed: int,
    inside: Callable[[], bool] | None = None,
) -> int:
    """Start ``command()`` and SIGKILL it KILLS times at random moments; returns the kills done.

    A kill moment: after 1–3 new records in the watched files, plus 0–5 ms. Every third kill
    instead waits (for up to 6 more records) until ``inside()`` says the writer is in the middle
    of a group of records, and kills at once. Bounded: each start waits at most 30 s, and at most
    3 × KILLS starts are made.
    """
    rng = random.Random(seed)
    kills = 0
    for _ in range(3 * KILLS):
        if kills >= KILLS:
            break
        start_lines = _lines(watch)
        target = start_lines + rng.randint(1, 3)
        hunt = inside is not None and kills % 3 == 1
        if hunt:
            target = start_lines + 8
        proc = subprocess.Popen(command(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while proc.poll() is None and _lines(watch) < target and time.monotonic() < deadline:
                if hunt and _lines(watch) > start_lines and inside():  # type: ignore[misc]
                    break
                time.sleep(0.001 if hunt else 0.003)
            if not hunt:
                time.sleep(rng.uniform(0, 0.005))
            if proc.poll() is not None:  # finished before this kill: the run was too short
                _, err = proc.communicate(timeout=10)
                pytest.fail(
                    f"run ended (rc {proc.returncode}) after only {kills} kills: {err.decode()[-500:]}"
                )
            proc.kill()
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()
        kills += 1
        if kills in TORN_AFTER:
            target_file = torn_target()
            if target_file is not None and target_file.exists():
                with open(target_file, "ab") as fh:
                    fh.write(TORN)
    return kills


def _finish(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return done


# --------------------------------------------------------------------------- OPRO


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    """result.json without what legitimately differs between sessions (usage and timing)."""
    out = {k: v for k, v in result.items() if k not in ("usage",)}
    return json.loads(json.dumps(out))


def test_killed_opro_run_resumes_to_the_uninterrupted_result(
    scripted_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = scripted_server(latency=0.01)
    model = f"openai:stub@{server.base_url}"
    args = ["--task", "linear-regression", "--optimizer-model", model, "--steps", "14", "--per-step", "3"]
    args += ["--seed", "7"]

    ref_dir = tmp_path / "ref"
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "ref-cache"))
    with pytest.raises(SystemExit) as exc:
        cli_main(["opro", "run", *args, "--run-dir", str(ref_dir)])
        raise SystemExit(0)
    assert exc.value.code == 0
    capsys.readouterr()
    ref_records = _assert_clean_jsonl(ref_dir / JOURNAL_FILE)
    ref_history = history_from_records(ref_records)
    assert len(ref_records) > 3 * KILLS + 5, "the reference run is too short to be killed 10 times"

    run_dir = tmp_path / "killed"
    env = cli_env(tmp_path / "kill-cache")

    def command() -> list[str]:
        if (run_dir / CONFIG_FILE).exists():
            return [*CLI, "opro", "run", "--run-dir", str(run_dir), "--resume"]
        return [*CLI, "opro", "run", *args, "--run-dir", str(run_dir), "--overwrite"]

    journal = run_dir / JOURNAL_FILE

    def inside_a_step() -> bool:
        """The last complete record is a proposal's trial: the step's commit is under way."""
        data = journal.read_bytes()
        last = data[: data.rfind(b"\n")].rsplit(b"\n", 1)[-1]
        return last.startswith(b'{"event":"trial"') and b'"step":0,' not in last

    kills = _kill_repeatedly(command, env, [journal], lambda: journal, seed=2024, inside=inside_a_step)
    assert kills == KILLS
    _finish(command(), env)

    records = _assert_clean_jsonl(journal)
    # no duplicated records: each proposal and each step commit appears once
    trial_keys = Counter((r["trial"]["step"], r["trial"]["index"]) for r in records if r["event"] == "trial")
    assert max(trial_keys.values()) == 1, [k for k, n in trial_keys.items() if n > 1]
    done_steps = Counter(r["step"] for r in records if r["event"] == "step_done")
    assert max(done_steps.values()) == 1
    started = Counter(r["step"] for r in records if r["event"] == "step_started")
    assert max(started.values()) == 1
    assert sum(r["event"] == "run_resumed" for r in records) >= KILLS - 2  # really resumed, not restarted
    before_resume = Counter(
        records[i - 1]["event"] for i, r in enumerate(records) if r["event"] == "run_resumed"
    )
    print(f"journal events just before each resume: {dict(before_resume)}")
    # the same history and result as the run that was never interrupted
    assert history_from_records(records) == ref_history
    assert trial_keys == Counter(
        (r["trial"]["step"], r["trial"]["index"]) for r in ref_records if r["event"] == "trial"
    )
    ref_result = json.loads((ref_dir / RESULT_FILE).read_text(encoding="utf-8"))
    result = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    assert _comparable(result) == _comparable(ref_result)


# --------------------------------------------------------------------------- BPO build-data


def _decided(out: Path) -> dict[str, dict[str, Any]]:
    """id → the decision on it (kept or dropped, and what was written), from both output files."""
    kept = _assert_clean_jsonl(out)
    dropped_file = out.with_name(out.stem + ".dropped.jsonl")
    dropped = _assert_clean_jsonl(dropped_file) if dropped_file.exists() else []
    ids = Counter(r["id"] for r in kept + dropped)
    assert max(ids.values()) == 1, f"decided twice: {[k for k, n in ids.items() if n > 1]}"
    keep = ("status", "reason", "prompt", "optimized_prompt", "critique", "source")
    return {r["id"]: {k: r.get(k) for k in keep} for r in kept + dropped}


def test_killed_bpo_build_data_resumes_to_the_uninterrupted_output(
    scripted_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = scripted_server(latency=0.02)
    pairs = write_pairs_jsonl(tmp_path / "pairs.jsonl", 60)
    model = f"openai:stub@{server.base_url}"

    def args(out: Path) -> list[str]:
        return ["bpo", "build-data", "--input", str(pairs), "--out", str(out), "--model", model]
        # concurrency 2 below: many small durable batches, so kills land between and inside them

    ref_out = tmp_path / "ref" / "data.jsonl"
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "ref-cache"))
    with pytest.raises(SystemExit) as exc:
        cli_main([*args(ref_out), "--concurrency", "2"])
        raise SystemExit(0)
    assert exc.value.code == 0
    capsys.readouterr()
    reference = _decided(ref_out)
    assert len(reference) == 60
    statuses = Counter(d["status"] for d in reference.values())
    assert statuses["kept"] and statuses["dropped"], statuses  # both files are exercised

    out = tmp_path / "killed" / "data.jsonl"
    dropped = out.with_name("data.dropped.jsonl")
    env = cli_env(tmp_path / "kill-cache")
    cmd = [*CLI, *args(out), "--concurrency", "2"]
    rng = random.Random(7)
    kills = _kill_repeatedly(lambda: cmd, env, [out, dropped], lambda: rng.choice([out, dropped]), seed=99)
    assert kills == KILLS
    _finish(cmd, env)
    assert _decided(out) == reference


# --------------------------------------------------------------------------- instruction search


def test_resumed_instruction_search_reports_like_an_uninterrupted_one(
    scripted_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The final report (validation pick among the best training instructions, test accuracy) of a
    run that was stopped and resumed must equal the uninterrupted run's: the shortlist has to come
    from the journal, not from what one process happened to score."""
    from tests.robustness.conftest import write_qa_jsonl

    server = scripted_server()
    model = f"openai:stub@{server.base_url}"
    data = write_qa_jsonl(tmp_path / "qa.jsonl", 40)
    args = ["opro", "run", "--task", "instructions", "--dataset", f"jsonl:{data}", "--optimizer-model", model]
    args += ["--scorer-model", model, "--per-step", "3", "--seed", "5"]

    def run(*extra: str) -> None:
        with pytest.raises(SystemExit) as exc:
            cli_main([*args, *extra])
            raise SystemExit(0)
        assert exc.value.code == 0, capsys.readouterr().err[-2000:]
        capsys.readouterr()

    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache-a"))
    run("--steps", "4", "--run-dir", str(tmp_path / "ref"))
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache-b"))
    run("--steps", "2", "--run-dir", str(tmp_path / "two"))
    with pytest.raises(SystemExit) as exc:
        cli_main(["opro", "run", "--resume", "--run-dir", str(tmp_path / "two"), "--steps", "4"])
        raise SystemExit(0)
    assert exc.value.code == 0, capsys.readouterr().err[-2000:]

    ref = json.loads((tmp_path / "ref" / RESULT_FILE).read_text(encoding="utf-8"))
    resumed = json.loads((tmp_path / "two" / RESULT_FILE).read_text(encoding="utf-8"))
    ref_history = history_from_records(read_journal(tmp_path / "ref" / JOURNAL_FILE))
    assert history_from_records(read_journal(tmp_path / "two" / JOURNAL_FILE)) == ref_history
    assert len(ref["report"]["task"].get("validation", [])) > 1, "the shortlist was not exercised"
    assert resumed["report"]["task"] == ref["report"]["task"]
