"""The error every stack-file check raises: one (file, field, message) per problem."""

from __future__ import annotations

NAMESPACE = "vaultfleet"
"""The config namespace of every stack-file key (`vaultfleet:roles`, ...)."""


class ConfigError(ValueError):
    """Invalid configuration; `problems` holds one (file, field, message) per error."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}: {fld}: {msg}" for f, fld, msg in problems))
