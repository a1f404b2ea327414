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
        {"op": "update", "type": "vault:kubernetes/authBackendRole:AuthBackendRole", "name": "lab-a-roles-app"},
        {"op": "delete", "type": "kubernetes:core/v1:ServiceAccount", "name": "sa"},
    ]


def test_a_run_without_a_summary_counts_nothing():
    assert _read_events([pre("create", "vault:index/policy:Policy", "p")]).changes == {}
