"""What every command shares: the two consoles, the `--format` option, failing with a message, and
the project with its validated stacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from vaultfleet.stackfile import Project

# Results on stdout, progress and errors on stderr. soft_wrap: never break a message (a path, a
# URL, an error) across lines; let the terminal wrap.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

# Every output format a command may offer; each command takes the ones that make sense for it.
FORMATS = ("text", "table", "markdown", "json", "yaml")


def format_option(default: str, *others: str, help: str | None = None, optional: bool = False) -> Any:
    """The `--format` option of a command: `default` or one of `others`, all from FORMATS.

    `optional`: the option may be left unset (None), for a command whose default depends on others.
    """
    choices = (default, *others)
    unknown = set(choices) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown output formats {sorted(unknown)}")
    kind = Literal[choices] | None if optional else Literal[choices]
    return Annotated[kind, typer.Option("--format", help=help or " or ".join(choices))]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: message` on stderr and exit (2: bad input, nothing was done)."""
    err.print(f"[red]error[/]: {message}", highlight=False)
    raise typer.Exit(code=code)


def load_project() -> Project:
    from vaultfleet.stackfile import Project

    try:
        return Project.find()
    except FileNotFoundError as exc:
        fail(str(exc))


def load_stacks(names: list[str] | None, project: Project | None = None):
    """The project and its validated stacks; errors printed and exit 2 when any stack is invalid."""
    from vaultfleet.validate import validate

    project = project or load_project()
    findings, stacks = validate(project, names)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        for f in errors:
            err.print(f"[red]error[/]: {f.file}: {f.field}: {f.message}", highlight=False)
        raise typer.Exit(code=2)
    return project, stacks


def cluster_stack(name: str, purpose: str):
    """The project and the validated cluster stack `name` (exit 2 for the shared stack)."""
    from vaultfleet.stackfile.schema import ClusterStack

    project, (settings,) = load_stacks([name])
    if not isinstance(settings, ClusterStack):
        fail(f"{name} is the shared stack; {purpose}")
    return project, settings
