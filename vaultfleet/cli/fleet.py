"""`vaultfleet preview | up | destroy | matrix`: many stacks at once, with a summary per stack; a
fleet spread over CI runners by shard."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vaultfleet.cli.common import err, fail, format_option, load_project
from vaultfleet.fleet.report import summary

Format = format_option("text", "markdown", "json")

StacksArg = Annotated[list[str] | None, typer.Argument(help="Stack names (default: none; use --all).")]
AllOpt = Annotated[bool, typer.Option("--all", help="Every stack in stacks/.")]
ParallelOpt = Annotated[int, typer.Option("--parallel", "-p", min=1, max=32, help="Stacks run at once.")]
# Converge by default: read Vault and the clusters first, as Terraform's plan and apply do.
RefreshOpt = Annotated[
    bool,
    typer.Option(
        "--refresh/--no-refresh",
        help="Read Vault and the clusters first, so out-of-band changes (drift) are shown and put back; "
        "--no-refresh trusts the state (faster).",
    ),
]


ChangedSinceOpt = Annotated[
    str | None, typer.Option("--changed-since", help="Only stacks a git diff from REF touches.")
]
AllowDangerousOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-dangerous",
        metavar="STACK",
        help="Apply STACK's dangerous steps (a mount deleted, replaced or moved, a state key deleted or replaced: "
        "what they issued is revoked, or their data lost) instead of refusing them; repeat for more stacks. "
        "docs/dangerous-steps.md.",
    ),
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="I/N: only the I-th of N shards of the selected cluster stacks (the shared stack is in no shard: "
        "run it first, once). `vaultfleet matrix` prints the shards as a CI job matrix.",
    ),
]


def _select(
    project, stacks: list[str] | None, all_: bool, changed_since: str | None = None, shard: str | None = None
) -> list[str]:
    """The selected stacks; exit 2 on arguments that select nothing runnable."""
    from vaultfleet.fleet.selection import SelectionError, select

    try:
        selection = select(project, stacks, all_, changed_since, shard)
    except SelectionError as exc:
        fail(str(exc))
    if selection.left_out_shared:
        left = selection.left_out_shared
        what = f"the shared stack {left[0]}" if len(left) == 1 else f"the privileged stacks {', '.join(left)}"
        err.print(f"shard {shard.strip()}: {what} {'is' if len(left) == 1 else 'are'} in no shard; run it first, once")
    return selection.stacks


def _run(
    project,
    operation: str,
    names: list[str],
    parallel: int,
    refresh: bool = True,
    full: bool = False,
    allow_dangerous: list[str] | None = None,
):
    from rich.live import Live
    from rich.table import Table

    from vaultfleet.fleet.runner import run

    status: dict[str, str] = {n: "waiting" for n in names}

    def table() -> Table:
        t = Table("stack", operation, box=None)
        for name, state in status.items():
            t.add_row(name, state)
        return t

    with Live(table(), console=err, transient=True, refresh_per_second=4) as live:

        def started(name):
            status[name] = "[cyan]running[/]"
            live.update(table())

        def finished(r):
            status[r.stack] = f"[green]ok[/] {r.seconds}s" if r.ok else "[red]failed[/]"
            live.update(table())

        return run(
            project,
            names,
            operation,
            parallel,
            refresh,
            on_start=started,
            on_result=finished,
            full=full,
            allow_dangerous=allow_dangerous or (),
        )


def _finish(results, output: Format, expect_no_changes: bool = False, access=None, shared=()) -> None:
    if access is None:
        print(summary(results, output))
    elif output == "json":  # still one entry per stack (CI reads `.[].stack`); each cluster's own changes
        extra = {r.stack: {"access": _access_json(access, r.stack, r.stack in shared)} for r in results}
        print(summary(results, output, extra))
    else:
        from vaultfleet.cli.access import diff_markdown, diff_text

        review = diff_markdown(access) if output == "markdown" else diff_text(access)
        print(summary(results, output) + "\n\n" + review)
    failed = [r.stack for r in results if not r.ok]
    if failed:
        err.print(f"[red]failed: {', '.join(failed)}[/]")
        raise typer.Exit(code=1)
    if expect_no_changes and any(r.changed for r in results):
        err.print(f"[yellow]changes (drift) in: {', '.join(r.stack for r in results if r.changed)}[/]")
        raise typer.Exit(code=3)


def _access_json(access, stack: str, shared: bool) -> dict:
    changes = access.for_cluster(stack)
    trust = [t.to_json() for t in access.trust if t.stack == stack]
    credentials = [c.to_json() for c in access.credentials if c.stack == stack]
    # A fleet policy (held by tokens, not by a cluster's roles) shows in the shared stack's entry.
    templates = {
        t: [r for r in reached if r.split()[0] == stack or (shared and r.startswith("every token holding"))]
        for t, reached in access.templates.items()
    }
    templates = {t: reached for t, reached in templates.items() if reached}
    return {
        "since": access.ref,
        "identical": not (changes or trust or templates or credentials or access.unread),
        "changes": [c.to_json() for c in changes],
        "templates": templates,
        "trust": trust,
        "credentials": credentials,
        "unread": access.unread,
    }


def preview(
    stacks: StacksArg = None,
    all_: AllOpt = False,
    changed_since: ChangedSinceOpt = None,
    shard: ShardOpt = None,
    parallel: ParallelOpt = 4,
    refresh: RefreshOpt = True,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="With --no-refresh: run the engine for every stack, even one whose inputs and state are as its "
            "last up left them.",
        ),
    ] = False,
    expect_no_changes: Annotated[
        bool, typer.Option("--expect-no-changes", help="Exit 3 if any stack would change.")
    ] = False,
    output: Format = "text",
) -> None:
    """Preview stacks in parallel and summarise their changes, drift marked as such.

    With --no-refresh, a stack whose inputs (program, policies, stack file, SDKs, engine and plugin
    binaries, kube context) and state are exactly as its last successful up left them cannot show a
    change: its engine run is skipped and the summary says so (--full runs it anyway).

    Exit codes: 0 ok; 1 a stack failed; 2 bad arguments; 3 changes with --expect-no-changes.
    """
    project = load_project()
    names = _select(project, stacks, all_, changed_since, shard)
    behind = _left_behind(project, changed_since, "preview")
    if not names and not behind:
        print(summary([], output))
        err.print("no stack affected")
        return
    # Offline and before the engine: a REF whose files do not read still leaves the preview to run.
    found = _access_review(project, changed_since, names) if changed_since is not None and names else None
    shared = [n for n in names if project.stack(n).is_shared]
    results = behind + _run(project, "preview", names, parallel, refresh, full)
    _finish(results, output, expect_no_changes, found, shared)


def _left_behind(project, ref: str | None, operation: str) -> list:
    """Per-cluster layout: a failed result for each stack whose cluster's file the change deletes
    while the stack is still in the backend. Its access stack cannot run without the file, so the
    mount, policies and applier policy would stay in Vault with nothing left to manage them."""
    if ref is None or not project.per_cluster:
        return []
    from vaultfleet.fleet import engine
    from vaultfleet.fleet.changes import deleted_since
    from vaultfleet.fleet.runner import StackResult

    deleted = [name for name in deleted_since(project, ref) if name not in project.stack_names()]
    if not deleted:
        return []
    try:
        listed = json.loads(engine.run_pulumi(["stack", "ls", "--json"], project.root, engine.engine_env()).stdout)
        existing = {entry["name"].rsplit("/", 1)[-1] for entry in listed}
    except (engine.CommandError, ValueError) as exc:
        existing, why = None, str(exc).strip().splitlines()[-1:]
        err.print(f"[yellow]could not list the backend's stacks: {why}[/]")
    found = []
    for name in deleted:
        for stack in (f"vault.{name}", name):
            if existing is None or stack in existing:
                found.append(
                    StackResult(
                        stack=stack,
                        operation=operation,
                        error=f"not run: stacks/Pulumi.{name}.yaml is deleted but stack {stack} is still in the "
                        f"backend (its cluster's mount and policies stay in Vault, unmanaged): restore the file, "
                        f"offboard with `vaultfleet destroy {name} vault.{name}`, then delete it (docs/fleet-layout.md)",
                    )
                )
    return found


def _access_review(project, ref: str, names: list[str]):
    """Who gains or loses which capability in the previewed stacks against REF
    (docs/access-review.md); None, with the reason on stderr, when it cannot be worked out."""
    import subprocess
    import tarfile

    from vaultfleet.access_diff import AccessDiff, access_diff

    try:
        return access_diff(project, ref, names)
    except (ValueError, OSError, tarfile.TarError, subprocess.CalledProcessError) as exc:
        # In the output itself (the pull request's comment), never identical: the reviewer sees it.
        err.print(f"[yellow]access review against {ref} not worked out: {exc}[/]")
        return AccessDiff(ref, [], {}, [], [], [f"the access review could not be worked out: {exc}"])


def up(
    stacks: StacksArg = None,
    all_: AllOpt = False,
    changed_since: ChangedSinceOpt = None,
    shard: ShardOpt = None,
    parallel: ParallelOpt = 4,
    refresh: RefreshOpt = True,
    allow_dangerous: AllowDangerousOpt = None,
    output: Format = "text",
) -> None:
    """Apply stacks (shared stack first), putting back what changed out of band; a failed cluster
    stack does not stop the others, a failed or refused shared stack does; exit 1 if any failed.

    A stack whose plan has dangerous steps (a mount deleted, replaced or moved, a state key deleted
    or replaced) is refused, nothing written, unless --allow-dangerous names it.
    """
    project = load_project()
    unknown = [s for s in allow_dangerous or () if not project.knows(s)]
    if unknown:
        fail(f"--allow-dangerous {', '.join(unknown)}: no such stack (known: {', '.join(project.all_stack_names())})")
    names = _select(project, stacks, all_, changed_since, shard)
    idle = [s for s in allow_dangerous or () if s not in names]
    if idle:
        err.print(f"--allow-dangerous {', '.join(idle)}: not selected by this run, nothing to allow")
    behind = _left_behind(project, changed_since, "up")
    if not names and not behind:
        print(summary([], output))
        err.print("no stack affected")
        return
    _finish(behind + _run(project, "up", names, parallel, refresh, allow_dangerous=allow_dangerous), output)


def destroy(
    stacks: StacksArg = None,
    all_: AllOpt = False,
    parallel: ParallelOpt = 4,
    shard: ShardOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    refresh: RefreshOpt = True,
    output: Format = "text",
) -> None:
    """Destroy stacks (shared stack last, only if every cluster stack went); exit 1 if any failed.

    Needs no --allow-dangerous: naming the stacks and confirming (or --yes) is the consent to lose
    everything they hold, the program's `protect` included."""
    project = load_project()
    names = _select(project, stacks, all_, shard=shard)
    shared = [n for n in names if project.stack(n).is_shared]
    access = [n for n in names if project.stack(n).is_access]
    held = (
        "the KV mount and the database engine"
        if project.per_cluster
        else "every cluster's auth mount, the KV mount and the database engine"
    )
    warning = (
        f" ({', '.join(shared)} holds {held}: every token and lease they issued is revoked, every KV secret lost)"
        if shared
        else ""
    )
    if access:
        warning += f" ({', '.join(access)}: each a cluster's auth mount; every token it issued is revoked)"
    if not yes and not typer.confirm(f"destroy {', '.join(names)}?{warning}"):
        raise typer.Exit(code=1)
    _finish(_run(project, "destroy", names, parallel, refresh), output)


def matrix(
    all_: AllOpt = False,
    changed_since: ChangedSinceOpt = None,
    shards: Annotated[int, typer.Option("--shards", min=1, max=256, help="How many runners share the clusters.")] = 4,
) -> None:
    """Print the selected stacks as a CI job matrix (JSON): the shared stack, to run first and once,
    and the cluster stacks in shards, one job each (`up --shard I/N` with the same selection)."""
    from vaultfleet.fleet.shards import matrix as build

    project = load_project()
    if not (all_ or changed_since):
        fail("use --all or --changed-since")
    names = _select(project, None, all_, changed_since)
    behind = _left_behind(project, changed_since, "up")
    if behind:  # the jobs would run without the deleted file's stacks: stop the pipeline here
        for r in behind:
            err.print(f"[red]{r.stack}: {r.error}[/]", highlight=False)
        raise typer.Exit(code=1)
    # The privileged stacks (the per-cluster layout's access stacks too) run in the admin's job.
    shared = [n for n in names if project.stack(n).is_shared or project.stack(n).is_access]
    print(json.dumps(build(shared, [n for n in names if n not in shared], shards)))
