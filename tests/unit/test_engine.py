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
        },
        {"op": "delete", "type": "kubernetes:core/v1:ServiceAccount", "name": "sa", "drift": False},
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
