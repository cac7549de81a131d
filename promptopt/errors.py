"""The error hierarchy users can see.

Why one root: the CLI turns every ``PromptoptError`` into one line on stderr and exit code 2,
while anything else is a bug and keeps its traceback (under ``--debug``). Modules raise the most
specific subclass so that callers of the Python API can catch what they can handle.
"""

from __future__ import annotations


class PromptoptError(Exception):
    """Base of every error caused by input, configuration or the outside world (not by a bug)."""


class ConfigError(PromptoptError):
    """A flag, config file or argument is invalid."""


class DataError(PromptoptError):
    """A dataset or input file is missing, empty or malformed."""


class RunDirError(PromptoptError):
    """A run directory cannot be created, read or resumed."""


class UnknownNameError(PromptoptError):
    """A task, model spec scheme or other registered name does not exist."""


class MissingExtraError(PromptoptError):
    """A verb needs an optional dependency group (a pip extra) that is not installed."""
