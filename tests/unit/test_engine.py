"""What the fleet reads back from an engine run's event log (the shapes are the engine's own)."""

from vaultfleet.fleet.engine import _read_events


def pre(op, resource_type, name):
    return {
        "resourcePreEvent": {
            "metadata": {"op": op, "type": resource_type, "urn": f"urn:pulumi:s::p::{resource_type}::{name}"}
        }
    }


def test_changed_steps_and_the_engines_counts_are_read():
    run = _read_events(
        [
            {"preludeEvent": {}},
            pre("create", "pulumi:providers:vault", "vault"),
            pre("same", "vault:index/policy:Policy", "p"),
            pre("update", "vault:kubernetes/authBackendRole:AuthBackendRole", "lab-a-roles-app"),
            pre("refresh", "vault:index/mount:Mount", "kv"),
            pre("delete", "kubernetes:core/v1:ServiceAccount", "sa"),
            {"summaryEvent": {"resourceChanges": {"same": 15, "update": 1, "delete": 1}}},
        ]
    )
    assert run.changes == {"same": 15, "update": 1, "delete": 1}
    assert run.steps == [
        {
            "op": "update",
            "type": "vault:kubernetes/authBackendRole:AuthBackendRole",
            "name": "lab-a-roles-app",
            "drift": False,
            "diffs": [],
            "danger": None,
        },
        {
            "op": "delete",
            "type": "kubernetes:core/v1:ServiceAccount",
            "name": "sa",
            "drift": False,
            "diffs": [],
            "danger": None,
        },
    ]


def test_a_run_without_a_summary_counts_nothing():
    assert _read_events([pre("create", "vault:index/policy:Policy", "p")]).changes == {}


def refreshed(resource_type, name, *, diffs=(), gone=False):
    urn = f"urn:pulumi:s::p::{resource_type}::{name}"
    meta = {"op": "refresh", "type": resource_type, "urn": urn, "diffs": list(diffs), "new": None if gone else {}}
    return {"resOutputsEvent": {"metadata": meta, "planning": True}}


def test_steps_on_what_the_refresh_found_changed_or_gone_are_drift():
    role = "vault:kubernetes/authBackendRole:AuthBackendRole"
    binding = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
    run = _read_events(
        [
            pre("refresh", role, "lab-a-roles-app"),
            # The update step may be reported before the refresh step's result: order does not matter.
            pre("update", role, "lab-a-roles-app"),
            refreshed(role, "lab-a-roles-app", diffs=["tokenPolicies"]),
            refreshed(binding, "lab-a-reviewer-auth-delegator", gone=True),
            pre("create", binding, "lab-a-reviewer-auth-delegator"),
            refreshed("vault:index/policy:Policy", "p"),
            pre("update", "vault:index/policy:Policy", "p"),  # changed by the stack file, not drift
        ]
    )
    assert [(s["name"], s["op"], s["drift"]) for s in run.steps] == [
        ("lab-a-roles-app", "update", True),
        ("lab-a-reviewer-auth-delegator", "create", True),
        ("p", "update", False),
    ]


def provider_update(diffs):
    event = pre("update", "pulumi:providers:kubernetes", "kubernetes")
    event["resourcePreEvent"]["metadata"]["diffs"] = list(diffs)
    return event


def test_a_provider_update_only_for_the_callers_kubeconfig_path_is_no_change():
    # The previewer previews with its own kubeconfig: the kubernetes provider records $KUBECONFIG.
    summary = {"summaryEvent": {"resourceChanges": {"same": 12, "update": 1}}}
    assert _read_events([provider_update(["kubeconfig"]), summary]).changes == {"same": 13}
    # Another cluster context is a change, reported as one.
    assert _read_events([provider_update(["context", "kubeconfig"]), summary]).changes == {"same": 12, "update": 1}


def fake_cli(monkeypatch, existing: set[str]):
    """`engine.cli` for one stack: `stack init` fails as the engine does when the stack exists;
    any other command succeeds and writes an empty event log. Returns the commands run."""
    from pathlib import Path

    from vaultfleet.fleet import engine

    ran = []

    def run_cli(args):
        ran.append(args[:2])
        if args[:2] == ["stack", "init"]:
            if "s" in existing:
                raise engine.CommandError(255, "", "error: stack 'organization/vaultfleet/s' already exists")
            existing.add("s")
        elif "s" not in existing:
            raise engine.CommandError(255, "", "error: no stack named 's' found")
        else:
            Path(args[args.index("--event-log") + 1]).write_text("")

    monkeypatch.setattr(engine, "cli", lambda *a: run_cli)
    return ran


def test_a_stack_known_to_be_new_is_created_before_its_first_run(monkeypatch, tmp_path):
    from vaultfleet.fleet import engine

    ran = fake_cli(monkeypatch, existing=set())
    engine.run_operation(tmp_path, "s", {}, ["up"], new=True)
    assert ran == [["stack", "init"], ["up", "--non-interactive"]]


def test_a_stack_another_runner_created_first_is_run_not_failed(monkeypatch, tmp_path):
    from vaultfleet.fleet import engine

    ran = fake_cli(monkeypatch, existing={"s"})
    engine.run_operation(tmp_path, "s", {}, ["up"], new=True)
    assert ran == [["stack", "init"], ["up", "--non-interactive"]]


def test_a_stack_not_known_to_be_new_is_created_when_the_engine_says_it_is_missing(monkeypatch, tmp_path):
    from vaultfleet.fleet import engine

    ran = fake_cli(monkeypatch, existing=set())
    engine.run_operation(tmp_path, "s", {}, ["preview"])
    assert ran == [["preview", "--non-interactive"], ["stack", "init"], ["preview", "--non-interactive"]]
