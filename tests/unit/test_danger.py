"""Dangerous steps (vaultfleet/fleet/danger.py): which steps are, what the summary says of them in each
format, and what `up` does with them (refused, or allowed) without an engine: the event shapes are
the engine's own (pulumi 3.184, a protected replace and delete previewed)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vaultfleet.cli import app
from vaultfleet.fleet import danger, engine, runner
from vaultfleet.fleet.engine import _read_events
from vaultfleet.fleet.report import summary
from vaultfleet.fleet.runner import StackResult
from vaultfleet.stackfile import Project

AUTH = "vault:index/authBackend:AuthBackend"
JWT = "vault:jwt/authBackend:AuthBackend"
MOUNT = "vault:index/mount:Mount"
KEY = "vault:transit/secretBackendKey:SecretBackendKey"
CONNECTION = "vault:database/secretBackendConnection:SecretBackendConnection"
DB_ROLE = "vault:database/secretBackendRole:SecretBackendRole"
PREFIX = "urn:pulumi:vault::vaultfleet::vaultfleet:vault:SharedVault$vaultfleet:vault:ClusterAccess"
MOUNT_URN = f"{PREFIX}$vaultfleet:vault:KubernetesAuthMount${AUTH}::fleet-cluster-lab-a-auth-backend"


def state(inputs: dict, retain: bool = False) -> dict:
    return {"inputs": inputs, **({"retainOnDelete": True} if retain else {})}


LAB_A = state({"path": "k8s-lab-a", "type": "kubernetes"})
MOVED = state({"path": "k8s-lab-a-v2", "type": "kubernetes"})
KV = state({"path": "kv", "type": "kv", "options": {"version": "2"}})
DB = state({"path": "database", "type": "database"})
STATE_KEY = state({"backend": "transit", "name": "vaultfleet-state-lab-a", "deletionAllowed": False}, retain=True)


@pytest.mark.parametrize(
    ("op", "type_", "old", "new", "diffs", "expected"),
    [
        ("delete", AUTH, LAB_A, None, [], "deletes auth mount k8s-lab-a: every token and lease it issued is revoked"),
        (
            "replace",
            AUTH,
            LAB_A,
            MOVED,
            ["path"],
            "replaces auth mount k8s-lab-a with k8s-lab-a-v2 (the old one is removed): every token and lease it "
            "issued is revoked",
        ),
        (
            "replace",
            AUTH,
            LAB_A,
            state({"path": "k8s-lab-a", "type": "jwt"}),
            ["type"],
            "replaces auth mount k8s-lab-a (the old one is removed): every token and lease it issued is revoked",
        ),
        (
            "update",
            AUTH,
            LAB_A,
            MOVED,
            ["path"],
            "remounts auth mount k8s-lab-a at k8s-lab-a-v2: every token and lease it issued is revoked",
        ),
        ("delete", JWT, state({"path": "ci", "type": "jwt"}), None, [], "deletes auth mount ci: every token"),
        ("delete", MOUNT, KV, None, [], "deletes KV mount kv: every secret in it is lost"),
        ("replace", MOUNT, KV, KV, ["options"], "replaces KV mount kv (the old one is removed): every secret"),
        (
            "update",
            MOUNT,
            KV,
            state({"path": "secrets", "type": "kv"}),
            ["path"],
            "remounts KV mount kv at secrets: its secrets move with it, and every reader and policy of the old path "
            "fails",
        ),
        (
            "delete",
            MOUNT,
            DB,
            None,
            [],
            "deletes database secrets engine database: every lease it issued is revoked (their database users dropped)",
        ),
        ("update", MOUNT, DB, state({"path": "db2", "type": "database"}), ["path"], "remounts database secrets engine"),
        (
            "delete",
            KEY,
            STATE_KEY,
            None,
            [],
            "removes Transit state key transit/keys/vaultfleet-state-lab-a from the stack: it stays in Vault "
            "(retainOnDelete): nothing is revoked, but no stack manages it any more",
        ),
        (
            "replace",
            KEY,
            STATE_KEY,
            state({"backend": "transit", "name": "vaultfleet-state-lab-a"}),
            ["type"],
            "replaces Transit state key transit/keys/vaultfleet-state-lab-a: the old one stays in Vault",
        ),
        (
            "delete",
            CONNECTION,
            state({"backend": "database", "name": "app"}),
            None,
            [],
            "deletes database connection database/config/app: the leases its roles issued can no longer be "
            "revoked (Vault revokes through it): their database users stay",
        ),
        (
            "replace",
            CONNECTION,
            state({"backend": "database", "name": "app"}),
            state({"backend": "database", "name": "app2"}),
            ["name"],
            "replaces database connection database/config/app (the old one is removed): the leases",
        ),
        (
            "update",
            DB_ROLE,
            state({"backend": "database", "name": "reporting", "dbName": "shop-db"}),
            state({"backend": "database", "name": "reporting", "dbName": "other"}),
            ["dbName"],
            "moves database role database/roles/reporting from connection shop-db to other: the leases it issued "
            "before revoke through the new one",
        ),
        (
            "delete",
            AUTH,
            state({"path": "kubernetes", "type": "kubernetes"}, retain=True),  # an adopted mount
            None,
            [],
            "removes auth mount kubernetes from the stack: it stays in Vault (retainOnDelete): nothing is revoked",
        ),
    ],
)
def test_a_delete_replace_or_remount_of_a_guarded_object_is_dangerous_and_says_why(
    op, type_, old, new, diffs, expected
):
    why = danger.reason(op, type_, old, new, diffs)
    assert why is not None and why.startswith(expected), why


@pytest.mark.parametrize(
    ("op", "type_", "old", "new", "diffs"),
    [
        ("create", AUTH, None, LAB_A, []),
        ("same", AUTH, LAB_A, LAB_A, []),
        ("update", AUTH, LAB_A, LAB_A, ["description", "tune"]),  # a tune revokes nothing
        ("update", MOUNT, KV, KV, ["description"]),
        ("update", KEY, STATE_KEY, STATE_KEY, ["minDecryptionVersion"]),
        ("delete-replaced", AUTH, LAB_A, None, []),  # the replace step itself carries the mark
        ("create-replacement", AUTH, LAB_A, MOVED, ["path"]),
        ("delete", "vault:index/policy:Policy", state({"name": "k8s-lab-a-kv-read"}), None, []),
        ("replace", "vault:kubernetes/authBackendRole:AuthBackendRole", state({"backend": "k8s-lab-a"}), None, []),
        ("delete", "kubernetes:core/v1:ServiceAccount", state({}), None, []),
        # A role's delete is not: its leases still revoke without it (checked on OpenBao 2.4).
        ("delete", DB_ROLE, state({"backend": "database", "name": "app-ro"}), None, []),
        ("update", CONNECTION, state({"backend": "database"}), state({"backend": "database"}), ["allowedRoles"]),
        ("update", DB_ROLE, state({"backend": "database", "dbName": "a"}), None, ["creationStatements"]),
        ("replace", DB_ROLE, state({"backend": "database", "dbName": "a"}), None, ["name"]),
    ],
)
def test_other_steps_are_not_dangerous(op, type_, old, new, diffs):
    assert danger.reason(op, type_, old, new, diffs) is None


def test_a_connection_that_goes_with_its_engine_is_marked_as_going_with_it():
    connection = state({"backend": "database", "name": "app"})
    steps = [{"op": "delete", "type": MOUNT, "old": DB}, {"op": "delete", "type": CONNECTION, "old": connection}]
    leaving = danger.leaving_mounts(steps)
    assert leaving == {"database"}
    why = danger.reason("delete", CONNECTION, connection, None, [], leaving)
    assert why == "goes with database secrets engine database, which is removed"
    other = state({"backend": "database-2", "name": "app"})  # another engine's stays dangerous on its own
    assert "can no longer be revoked" in danger.reason("delete", CONNECTION, other, None, [], leaving)
    # An auth mount at the engine's path does not take the connection with it (an attack review's find).
    auth_named_database = [{"op": "delete", "type": AUTH, "old": state({"path": "database", "type": "kubernetes"})}]
    assert danger.leaving_mounts(auth_named_database) == frozenset()


def pre(op: str, type_: str, urn: str, old=None, new=None, diffs=()) -> dict:
    meta = {"op": op, "type": type_, "urn": urn, "old": old, "new": new, "diffs": list(diffs)}
    return {"resourcePreEvent": {"metadata": meta}}


def diagnostic(message: str, urn: str | None = None, severity: str = "error") -> dict:
    return {"diagnosticEvent": {"severity": severity, "message": message, **({"urn": urn} if urn else {})}}


PROTECTED_REPLACE = (
    f'unable to replace resource "{MOUNT_URN}"\nas it is currently marked for protection. To unprotect the '
    "resource, remove the `protect` flag from the resource in your Pulumi program and run `pulumi up`\n"
)
PROTECTED_DELETE = (
    f'Preview failed: resource "{MOUNT_URN}" cannot be deleted\nbecause it is protected. To unprotect the '
    f"resource, either remove the `protect` flag from the resource in your Pulumi program and run `pulumi up`, "
    f"or use the command:\n`pulumi state unprotect '{MOUNT_URN}'`\n"
)


def protected_preview(refusal: str = PROTECTED_REPLACE) -> engine.EngineRun:
    """A preview `protect` stopped, as its event log reads (the order is the engine's)."""
    return _read_events(
        [
            diagnostic("registering resource: ty=pulumi:pulumi:Stack", severity="debug"),
            diagnostic(refusal, MOUNT_URN),
            pre("create-replacement", AUTH, MOUNT_URN, LAB_A, MOVED, ["path"]),
            pre("replace", AUTH, MOUNT_URN, LAB_A, MOVED, ["path"]),
            pre("update", "vault:index/policy:Policy", f"{PREFIX}$vault:index/policy:Policy::fleet-applier"),
            pre("delete-replaced", AUTH, MOUNT_URN, LAB_A),
            diagnostic("preview failed"),
            {"summaryEvent": {"resourceChanges": {"replace": 1, "update": 1, "same": 20}}},
        ]
    )


def test_the_event_log_marks_the_dangerous_step_and_keeps_the_errors():
    run = protected_preview()
    marked = [(s["op"], s["name"]) for s in run.steps if s["danger"]]
    assert marked == [("replace", "fleet-cluster-lab-a-auth-backend")]
    assert [(d.urn, d.op) for d in run.dangerous] == [(MOUNT_URN, "replace")]
    assert run.dangerous[0].describe().startswith(f"replace {AUTH} fleet-cluster-lab-a-auth-backend: replaces auth")
    assert run.errors == [(MOUNT_URN, PROTECTED_REPLACE), (None, "preview failed")]
    assert danger.stopped_only_by_protection(run.dangerous, run.errors)


def test_a_preview_stopped_by_protect_alone_is_a_plan_any_other_error_is_a_failure():
    run = protected_preview()
    assert danger.stopped_only_by_protection(run.dangerous, [(MOUNT_URN, PROTECTED_DELETE), (None, "preview failed")])
    other = "vaultfleet:vault:ClusterAccess (x):\n    error: permission denied"
    assert not danger.stopped_only_by_protection(run.dangerous, [*run.errors, (None, other)])
    assert not danger.stopped_only_by_protection(run.dangerous, [(f"{PREFIX}::other", PROTECTED_REPLACE)])
    assert not danger.stopped_only_by_protection([], [(None, "preview failed")])
    assert not danger.stopped_only_by_protection(run.dangerous, [])  # no error: nothing stopped it


def test_the_guard_reads_protected_objects_from_the_state():
    deployment = {
        "deployment": {
            "resources": [
                {
                    "urn": "urn:pulumi:vault::vaultfleet::pulumi:pulumi:Stack::vaultfleet-vault",
                    "type": "pulumi:pulumi:Stack",
                },
                {"urn": MOUNT_URN, "type": AUTH, "protect": True},
                {"urn": f"{PREFIX}::fleet-kv", "type": MOUNT},  # guarded, protection lifted
                {"urn": f"{PREFIX}::p", "type": "vault:index/policy:Policy", "protect": True},  # not guarded
            ]
        }
    }
    assert [r["urn"] for r in danger.guarded(deployment)] == [MOUNT_URN, f"{PREFIX}::fleet-kv"]
    assert danger.protected(deployment) == [MOUNT_URN]
    assert danger.guarded(None) == [] and danger.guarded({}) == []


def preview_result() -> StackResult:
    run = protected_preview()
    return StackResult(stack="vault", operation="preview", ok=True, changes=run.changes, steps=run.steps, seconds=3.1)


def test_every_format_marks_the_dangerous_step_of_a_preview():
    why = preview_result().steps[0]["danger"] or preview_result().steps[1]["danger"]
    assert why and why.startswith("replaces auth mount k8s-lab-a with k8s-lab-a-v2")

    text = summary([preview_result()], "text")
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("replace "))
    assert "fleet-cluster-lab-a-auth-backend" in line and f"DANGEROUS: {why}" in line
    assert "1 dangerous step: `vaultfleet up` refuses them unless run with `--allow-dangerous vault`" in text
    assert text.count("DANGEROUS") == 1  # create-replacement and delete-replaced are not marked again

    markdown = summary([preview_result()], "markdown")
    assert f"`replace` AuthBackend `fleet-cluster-lab-a-auth-backend` :warning: **dangerous**: {why}" in markdown
    assert ":warning: **vault**: 1 dangerous step: `vaultfleet up` refuses them" in markdown

    (entry,) = json.loads(summary([preview_result()], "json"))
    assert [s["danger"] for s in entry["steps"] if s["danger"]] == [why]
    assert entry["refused"] == []


def test_a_refused_up_says_so_in_every_format_naming_the_step_and_the_flag():
    steps = protected_preview().dangerous
    refused = danger.Refused("vault", steps)
    result = StackResult(stack="vault", operation="up", error=str(refused), refused=[{"op": "replace"}])
    text = summary([result], "text")
    assert "vault: FAILED" in text
    assert "refused: stack vault would take 1 dangerous step, nothing was written:" in text
    assert f"replace {AUTH} fleet-cluster-lab-a-auth-backend: replaces auth mount k8s-lab-a" in text
    assert "`vaultfleet up vault --allow-dangerous vault`" in text
    assert "refused: stack vault" in summary([result], "markdown")
    (entry,) = json.loads(summary([result], "json"))
    assert entry["ok"] is False and entry["refused"] == [{"op": "replace"}]


def test_an_offboarding_refusal_points_at_release_for_keeping_the_mount():
    run = _read_events([pre("delete", AUTH, MOUNT_URN, LAB_A)])
    message = str(danger.Refused("vault", run.dangerous))
    assert "deletes auth mount k8s-lab-a: every token and lease it issued is revoked" in message
    assert "`vaultfleet release CLUSTER`" in message


# `up` and `destroy` of one stack with the engine faked: what the runner asks the engine, in order.


class FakeStack:
    def __init__(self, monkeypatch, preview: engine.EngineRun | Exception, resources: list[dict]):
        self.calls: list[list[str]] = []
        self.resources = resources
        self.preview = preview
        self.fail_up = False
        monkeypatch.setattr(runner.engine, "cli", lambda *a: self.cli)
        monkeypatch.setattr(runner.engine, "run_operation", self.run_operation)
        monkeypatch.setattr(runner.engine, "backend_url", lambda *a: "file:///nowhere")
        monkeypatch.setattr(runner.recovery_mod, "repair_file_backend", lambda *a: [])
        monkeypatch.setattr(runner.skip, "forget", lambda *a: None)
        monkeypatch.setattr(runner.skip, "remember_up", lambda *a: None)

    def cli(self, args: list[str]):
        self.calls.append(args)
        if args[:2] == ["stack", "export"]:
            return engine.CommandOutput(json.dumps({"deployment": {"resources": self.resources}}), "")
        return engine.CommandOutput("", "")

    def run_operation(self, root, stack, env, args, secrets_provider=None, new=False, config_args=None):
        self.calls.append(args[:1])
        if args[0] == "preview":
            if isinstance(self.preview, Exception):
                raise self.preview
            return self.preview
        if self.fail_up:
            raise engine.CommandError(255, "", "provider error")
        return engine.EngineRun(changes={"replace": 1})


class NoChecks:
    def before_stack(self, address):
        return None


GUARDED = [
    {"urn": MOUNT_URN, "type": AUTH, "protect": True},
    {"urn": f"{PREFIX}::fleet-kv", "type": MOUNT, "protect": True},
]


def protect_refused() -> engine.CommandError:
    exc = engine.CommandError(255, "", "error: preview failed")
    exc.run = protected_preview()
    return exc


def run_up(project_dir, operation="up", allow=False):
    return runner.run_one(Project(project_dir), "vault", operation, {}, checks=NoChecks(), allow_dangerous=allow)


def test_up_without_the_flag_refuses_after_the_preview_and_writes_nothing(monkeypatch, project):
    fake = FakeStack(monkeypatch, protect_refused(), GUARDED)
    result = run_up(project)
    assert not result.ok and result.error.startswith("refused: stack vault would take 1 dangerous step")
    assert result.refused == [{"op": "replace", "type": AUTH, "name": "fleet-cluster-lab-a-auth-backend",
                               "danger": protected_preview().dangerous[0].reason}]  # fmt: skip
    assert fake.calls == [["stack", "export"], ["preview"]]  # no unprotect, no up


def test_up_of_a_plan_without_dangerous_steps_applies_it(monkeypatch, project):
    fake = FakeStack(monkeypatch, engine.EngineRun(changes={"update": 1}), GUARDED)
    assert run_up(project).ok
    assert fake.calls == [["stack", "export"], ["preview"], ["up"]]


def test_a_preview_failing_for_another_reason_is_a_failure_not_a_refusal(monkeypatch, project):
    FakeStack(monkeypatch, engine.CommandError(255, "", "error: permission denied"), GUARDED)
    result = run_up(project)
    assert not result.ok and "permission denied" in result.error and not result.refused


def test_a_stack_without_guarded_objects_is_not_previewed_first(monkeypatch, project):
    fake = FakeStack(monkeypatch, AssertionError("no preview"), [{"urn": "x", "type": "vault:index/policy:Policy"}])
    assert run_up(project).ok
    assert fake.calls == [["stack", "export"], ["up"]]


def test_an_allowed_up_lifts_protect_for_the_operation_without_a_second_preview(monkeypatch, project):
    fake = FakeStack(monkeypatch, AssertionError("no preview"), GUARDED)
    assert run_up(project, allow=True).ok
    unprotect = ["state", "unprotect", MOUNT_URN, f"{PREFIX}::fleet-kv", "--yes"]
    assert fake.calls == [["stack", "export"], unprotect, ["up"]]


def test_a_failed_allowed_up_protects_again_what_is_left(monkeypatch, project):
    fake = FakeStack(monkeypatch, AssertionError("no preview"), GUARDED)
    fake.fail_up = True
    fake.resources = GUARDED[:1]  # what the state holds after the failure
    result = run_up(project, allow=True)
    assert not result.ok
    assert fake.calls[-2:] == [["stack", "export"], ["state", "protect", MOUNT_URN, "--yes"]]


def test_destroy_lifts_protect_from_everything_it_removes(monkeypatch, project):
    fake = FakeStack(monkeypatch, AssertionError("no preview"), GUARDED)
    assert run_up(project, "destroy").ok
    assert fake.calls == [
        ["stack", "export"],
        ["state", "unprotect", MOUNT_URN, f"{PREFIX}::fleet-kv", "--yes"],
        ["destroy"],
    ]


def test_up_refuses_an_allow_dangerous_stack_that_does_not_exist(project):
    result = CliRunner().invoke(app, ["up", "vault", "--allow-dangerous", "lab-c"])
    assert result.exit_code == 2, result.output
    assert "--allow-dangerous lab-c: no such stack" in result.output
    assert "lab-a" in result.output and "vault" in result.output  # the known ones are listed


@pytest.mark.parametrize(("operation", "first", "then"), [("up", "vault", "lab-a"), ("destroy", "lab-a", "vault")])
def test_a_stack_waits_for_the_group_before_it_and_is_not_run_when_that_failed(
    monkeypatch, project, operation, first, then
):
    started = []

    def fake_run_one(project, name, op, env, refresh, full, checks, allow_dangerous=False):
        started.append(name)
        error = "Vault at https://vault:8200 was unavailable during the run\nmore" if name in failing else None
        return StackResult(stack=name, operation=op, ok=name not in failing, error=error)

    monkeypatch.setattr(runner, "run_one", fake_run_one)
    failing: set[str] = set()
    ok = runner.run(Project(project), ["vault", "lab-a"], operation, env={"VAULT_TOKEN": "x"})
    assert started == [first, then] and all(r.ok for r in ok)  # control: both run, in order

    started.clear()
    failing.add(first)
    results = {
        r.stack: r for r in runner.run(Project(project), ["vault", "lab-a"], operation, env={"VAULT_TOKEN": "x"})
    }
    assert started == [first]
    assert not results[then].ok and results[then].error == (
        f"not run: waits for {first}, which failed: Vault at https://vault:8200 was unavailable during the run; "
        "nothing was changed"
    )
