"""`vaultfleet access`: who can do what, from the stack files."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vaultfleet.cli.common import fail, format_option, load_stacks, out

Format = format_option("table", "json", "markdown")


def access(
    stacks: Annotated[list[str] | None, typer.Argument(help="Stacks (default: all).")] = None,
    output: Format = "table",
    changed_since: Annotated[
        str | None,
        typer.Option(
            "--changed-since",
            metavar="REF",
            help="Show who gains or loses which capability against the stack files and policies at git REF.",
        ),
    ] = None,
) -> None:
    """Who can do what: cluster, namespace, ServiceAccount -> role -> policy -> path -> capabilities.
    With --changed-since, what a change gains and loses instead (docs/access-review.md)."""
    from vaultfleet.access import grants

    project, loaded = load_stacks(stacks)
    if changed_since is not None:
        from vaultfleet.access_diff import access_diff

        try:
            found = access_diff(project, changed_since, stacks)
        except ValueError as exc:
            fail(str(exc))
        if output == "json":
            print(json.dumps(found.to_json(), indent=2))
        elif output == "markdown":
            print(diff_markdown(found))
        else:
            out.print(diff_text(found), highlight=False)
        return
    # The pipeline's applier holds every cluster's applier policy: the whole fleet's, not only the named.
    fleet = [s.valid_settings() for s in project.stacks() if not s.is_shared]
    rows = grants(loaded, project.policy_dir, [c for c in fleet if c is not None])
    if output == "json":
        print(json.dumps([g.to_json() for g in rows], indent=2))
        return
    headers = ["cluster", "namespace", "serviceaccount", "role", "policy", "path", "capabilities"]
    values = [
        [g.cluster, g.namespace, g.service_account, g.role, g.policy, g.path, ",".join(g.capabilities)] for g in rows
    ]
    if output == "markdown":
        print("| " + " | ".join(headers) + " |\n|" + "---|" * len(headers))
        for v in values:
            print("| " + " | ".join(f"`{x}`" if i == 5 else x for i, x in enumerate(v)) + " |")
        return
    out.print(_grouped(rows))


def _grouped(rows):
    """Who (cluster, ServiceAccount, role) as a heading, then each policy's paths beneath it: nothing
    is cut in a narrow terminal, a long path folds instead."""
    from itertools import groupby

    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts = []
    for (cluster, namespace, account, role, login), grants in groupby(
        rows, key=lambda g: (g.cluster, g.namespace, g.service_account, g.role, g.login)
    ):
        parts.append(
            Text.assemble(
                (cluster, "bold"), f" {namespace}/{account} ", ("role ", "dim"), (role, "bold"), (f"  ({login})", "dim")
            )
        )
        for policy, rules in groupby(grants, key=lambda g: g.policy):
            table = Table(box=None, show_header=False, padding=(0, 1, 0, 4), expand=False)
            table.add_column("path", overflow="fold")
            table.add_column("capabilities", overflow="fold", style="green")
            for rule in rules:
                table.add_row(rule.path, ", ".join(rule.capabilities))
            parts += [Text(f"  {policy}", style="cyan"), table]
    return Group(*parts)


def diff_text(found) -> str:
    """An access diff for a terminal: each identity, then `+ caps path` and `- caps path`."""
    if found.identical:
        return f"access: identical to {found.ref} (no identity gains or loses a capability)"
    lines = [f"access since {found.ref}:"]
    for problem in found.unread:
        lines.append(f"  ! incomplete: not in the review, the stack file does not validate: {problem}")
    for t in found.trust:
        lines.append(f"  ! login trust of {t.stack} changed: {t.field} {t.before} -> {t.after}")
    for template, reached in found.templates.items():
        lines.append(f"  {template} changed; it reaches {', '.join(reached) or 'no role'}")
    for c in found.credentials:
        lines.append(
            f"  ! {c.path} ({c.stack}) hands out other credentials: {c.field} {c.before!r} -> {c.after!r}; "
            f"read by {', '.join(c.readers) or 'no role'}"
        )
    for who, changes in _by_who(found.changes):
        lines.append(f"  {who}")
        for c in changes:
            policies = ", ".join(c.policies)
            if c.gained:
                lines.append(f"    + {','.join(c.gained)}  {c.path}  ({policies})")
            if c.lost:
                lines.append(f"    - {','.join(c.lost)}  {c.path}  ({policies})")
    return "\n".join(lines)


def diff_markdown(found) -> str:
    """An access diff for a pull-request comment: one row per identity and path."""
    if found.identical:
        return f"**Access review:** identical to `{found.ref}`: no identity gains or loses a capability."
    lines = [f"### Access review (against `{found.ref}`)", ""]
    if found.unread:
        lines += [
            ":warning: **Incomplete**: these stack files do not validate, so what they grant is not below.",
            "",
            *(f"- {problem}" for problem in found.unread),
            "",
        ]
    if found.trust:
        lines += [
            ":warning: **Login trust changed**: who can log in at these mounts changes, whatever the policies say.",
            "",
            "| stack | field | before | after |",
            "|---|---|---|---|",
            *(f"| {t.stack} | `{t.field}` | `{t.before}` | `{t.after}` |" for t in found.trust),
            "",
        ]
    for template, reached in found.templates.items():
        lines.append(f"- `{template}` changed; it reaches {', '.join(f'`{r}`' for r in reached) or 'no role'}")
    if found.credentials:
        lines += [
            "",
            ":warning: **Database credentials changed**: reading the same path hands out other credentials.",
            "",
            "| path | field | before | after | read by |",
            "|---|---|---|---|---|",
            *(
                f"| `{c.path}` | `{c.field}` | `{c.before}` | `{c.after}` | "
                f"{', '.join(f'`{r}`' for r in c.readers) or 'no role'} |"
                for c in found.credentials
            ),
            "",
        ]
    if not found.changes:
        lines += ["", "No identity gains or loses a capability."]
        return "\n".join(lines)
    lines += [
        "",
        "| cluster | ServiceAccount | role (mount) | path | gained | lost | policies |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in found.changes:
        w = c.who
        lines.append(
            f"| {w.cluster} | `{w.namespace}/{w.service_account}` | {w.role} (`auth/{w.mount}`) | `{c.path}` "
            f"| {', '.join(c.gained) or ''} | {', '.join(c.lost) or ''} | {', '.join(c.policies)} |"
        )
    return "\n".join(lines)


def _by_who(changes):
    from itertools import groupby

    return [(who, list(group)) for who, group in groupby(changes, key=lambda c: c.who)]
