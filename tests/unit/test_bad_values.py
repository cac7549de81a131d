"""Non-finite and absurd values are refused in one line before anything runs (issue 23 item 4):
NaN / inf task options, an infinite request timeout, an overflowing race growth, 400 decimals."""

from __future__ import annotations

import pytest

from promptopt.errors import ConfigError
from promptopt.evaluators.racing import RacingConfig
from promptopt.llm.openai_options import env_overrides
from promptopt.tasks.base import make_task_from_options


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_float_task_options_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="w_true=.*finite"):
        make_task_from_options("linear-regression", {"w_true": value})


@pytest.mark.parametrize("raw", ["inf", "nan", "1e999"])
def test_request_timeout_from_the_environment_must_be_finite(raw: str) -> None:
    with pytest.raises(ConfigError, match="PROMPTOPT_REQUEST_TIMEOUT"):
        env_overrides({"PROMPTOPT_REQUEST_TIMEOUT": raw})


def test_race_growth_that_would_overflow_is_refused() -> None:
    with pytest.raises(ConfigError, match="race_growth"):
        RacingConfig(growth=1e308)
    assert RacingConfig(growth=1000.0).rungs(5000)[-1] == 5000


def test_decimals_beyond_a_float_are_refused() -> None:
    with pytest.raises(ConfigError, match="decimals"):
        make_task_from_options("linear-regression", {"decimals": "400"})
