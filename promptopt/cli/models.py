"""`promptopt models` (being built in this session)."""


def models_command() -> None:
    """Show which model backends are usable here."""
