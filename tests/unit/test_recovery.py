"""Recovery after an interrupted run: provider IDs of pending creates, stale locks, the refresh call.

The real thing (an engine SIGKILLed mid-`up`, then `vaultfleet up`) is tests/lab/test_crash.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from vaultfleet.fleet import recovery
from vaultfleet.fleet.engine import CommandError

URN = "urn:pulumi:lab-a::vaultfleet::vaultfleet:cluster:ClusterOnboarding$vaultfleet:vault:KubernetesAuthMount$vault:index/authBackend:AuthBackend::lab-a-auth-backend"


def deployment(*ops):
    return {"version": 3, "deployment": {"resources": [], "pending_operations": list(ops)}}


def op(kind, resource_type, inputs, urn=URN):
    return {"type": kind, "resource": {"urn": urn, "type": resource_type, "inputs": inputs}}


@pytest.mark.parametrize(
    "resource_type, inputs, expected",
    [
        ("vault:index/authBackend:AuthBackend", {"path": "k8s-lab-a", "type": "kubernetes"}, "k8s-lab-a"),
        ("vault:index/mount:Mount", {"path": "kv"}, "kv"),
        ("vault:index/policy:Policy", {"name": "k8s-lab-a-kv-read"}, "k8s-lab-a-kv-read"),
        ("vault:kubernetes/authBackendConfig:AuthBackendConfig", {"backend": "k8s-lab-a"}, "auth/k8s-lab-a/config"),
        (
            "vault:kubernetes/authBackendRole:AuthBackendRole",
            {"backend": "k8s-lab-a", "roleName": "app"},
            "auth/k8s-lab-a/role/app",
        ),
        (
            "kubernetes:core/v1:ServiceAccount",
            {"metadata": {"name": "vault-auth", "namespace": "kube-system"}},
            "kube-system/vault-auth",
        ),
        ("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", {"metadata": {"name": "b"}}, "b"),
        # Unknown inputs (computed when the op was recorded) or types: no guess.
        ("vault:kubernetes/authBackendRole:AuthBackendRole", {"roleName": "app"}, None),
        ("vault:index/token:Token", {"policies": ["x"]}, None),
    ],
)
def test_provider_id_of_each_type_vaultfleet_creates(resource_type, inputs, expected):
    assert recovery.provider_id(resource_type, inputs) == expected


def test_pending_operations_are_read_from_the_export():
    ops = recovery.pending_operations(
        deployment(
            op("creating", "vault:index/authBackend:AuthBackend", {"path": "k8s-lab-a"}),
            op("updating", "vault:index/policy:Policy", {"name": "p"}, urn="urn:x::p"),
        )
    )
    assert [(o.type, o.provider_id) for o in ops] == [("creating", "k8s-lab-a"), ("updating", "p")]
    assert recovery.pending_operations({"deployment": {}}) == []


LOCKED = """error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.
  file:///tmp/lab/pulumi/.pulumi/locks/organization/vaultfleet/lab-a/6f1c.json?no_tmp_dir=true: created by root@{host} (pid {pid}) at 2026-11-23T10:00:00Z"""


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_lock_of_a_dead_engine_on_this_host_is_stale_others_are_not():
    import socket

    host = socket.gethostname()
    [lock] = recovery.locks_in_error(LOCKED.format(host=host, pid=dead_pid()))
    assert lock.path.endswith("6f1c.json") and recovery.is_stale(lock)
    [elsewhere] = recovery.locks_in_error(LOCKED.format(host="ci-runner-7", pid=dead_pid()))
    assert not recovery.is_stale(elsewhere)
    assert recovery.locks_in_error("error: something else") == []


def test_a_live_lock_is_reported_never_broken():
    import socket

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        # A live process that is not a pulumi engine holds a reused PID: stale.
        message = LOCKED.format(host=socket.gethostname(), pid=sleeper.pid)
        calls = []
        assert recovery.clear_stale_locks(calls.append, message, recovery.Recovery())
        assert calls == [["cancel", "--yes"]]
        # A lock held on another host may be a run in progress: refuse, say who holds it.
        calls.clear()
        with pytest.raises(recovery.StackLocked, match="pid .* on ci-runner-7"):
            recovery.clear_stale_locks(calls.append, LOCKED.format(host="ci-runner-7", pid=1), recovery.Recovery())
        assert calls == []
    finally:
        sleeper.kill()
        sleeper.wait()


PARENT = URN.rsplit("$", 1)[0].replace("vault:index/authBackend:AuthBackend", "") + "::lab-a-auth"
PROVIDER_REF = "urn:pulumi:lab-a::vaultfleet::pulumi:providers:vault::vault::0b5c"


def pending_create(path):
    return {
        "type": "creating",
        "resource": {
            "urn": URN.replace("lab-a-auth-backend", f"{path}-backend"),
            "type": "vault:index/authBackend:AuthBackend",
            "inputs": {"path": path},
            "parent": PARENT,
            "provider": PROVIDER_REF,
        },
    }


def test_interrupted_creates_are_cleared_then_adopted_by_import_when_the_object_exists():
    exports = iter(
        [
            deployment(
                pending_create("k8s-lab-a"),
                pending_create("k8s-gone"),
                op("deleting", "vault:index/policy:Policy", {"name": "p"}, urn="urn:x::p"),
            ),
            deployment(),
        ]
    )
    calls, specs = [], []

    def run_cli(args):
        calls.append(args)
        if args[0] == "import":
            spec = json.loads(Path(args[args.index("--file") + 1]).read_text())
            specs.append(spec)
            if spec["resources"][0]["id"] == "k8s-gone":
                raise CommandError(255, "", "error: Preview failed: resource 'k8s-gone' does not exist")

    found = recovery.Recovery()
    recovery.settle_pending(lambda: next(exports), run_cli, found)
    refresh, *imports = calls
    assert refresh[0] == "refresh" and "--clear-pending-creates" in refresh and "--non-interactive" in refresh
    assert [c[0] for c in imports] == ["import", "import"] and all("--protect=false" in c for c in imports)
    # The import recreates the exact URN: same type and name, under the same parent and provider.
    assert specs[0]["nameTable"] == {"parent": PARENT, "provider": PROVIDER_REF.rsplit("::", 1)[0]}
    assert specs[0]["resources"] == [
        {
            "type": "vault:index/authBackend:AuthBackend",
            "name": "k8s-lab-a-backend",
            "id": "k8s-lab-a",
            "parent": "parent",
            "provider": "provider",
        }
    ]
    assert [o.provider_id for o in found.adopted] == ["k8s-lab-a"]
    assert [o.provider_id for o in found.dropped] == ["k8s-gone"]
    assert [o.type for o in found.settled] == ["deleting"]
    assert "adopted" in found.describe() and "k8s-gone" in found.describe()


def test_pending_operations_left_after_the_refresh_stop_the_stack():
    still = deployment(pending_create("k8s-lab-a"))
    with pytest.raises(recovery.UnresolvedPendingCreate, match="left after refresh"):
        recovery.settle_pending(lambda: still, lambda args: None, recovery.Recovery())


def test_no_pending_operations_means_no_refresh():
    calls = []
    found = recovery.Recovery()
    recovery.settle_pending(lambda: deployment(), calls.append, found)
    assert calls == [] and not found


def test_a_pending_create_of_unknown_identity_is_not_guessed():
    exports = lambda: deployment(op("creating", "vault:index/token:Token", {}))  # noqa: E731
    with pytest.raises(recovery.UnresolvedPendingCreate, match="cannot identify"):
        recovery.settle_pending(exports, lambda args: pytest.fail("no refresh"), recovery.Recovery())


def test_plain_export_parses_the_cli_output():
    assert recovery.plain_export(lambda args: SimpleNamespace(stdout='{"version": 3}')) == {"version": 3}
