"""The bad-input corpus through a real `pulumi preview`: refused before any resource is registered,
message naming file, field and the case's reason (its message fragment), and Vault and the cluster
unchanged (listings before = after)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client

from tests.bad_inputs import CASES
from tests.harness import copy_project, root_client
from tests.lab import k8s
from vaultfleet.fleet.engine import pulumi_command

# Not marked `server`: the program refuses each input before it registers a resource, so no request
# reaches Vault (the listings before and after prove it) and the outcome cannot depend on which
# server runs. `make test` runs it once, in the second server's run (`second_run`): the two runs
# go at once (tests/passes.sh), and the second one's share of the suite is the smaller.
pytestmark = [pytest.mark.lab, pytest.mark.second_run]


def listings(lab) -> dict:
    vault = root_client(lab)
    api = k8s.api_client(str(lab.kubeconfig), "lab-a")
    return {
        "auth": sorted(vault.sys.list_auth_methods()["data"]),
        "policies": sorted(vault.sys.list_policies()["data"]["policies"]),
        "mounts": sorted(vault.sys.list_mounted_secrets_engines()["data"]),
        "serviceaccounts": sorted(
            sa.metadata.name for sa in client.CoreV1Api(api).list_namespaced_service_account("kube-system").items
        ),
        "bindings": sorted(
            b.metadata.name for b in client.RbacAuthorizationV1Api(api).list_cluster_role_binding().items
        ),
    }


# The cases run in a few workers, each with its own project copy and its own state backend (the
# stack is `lab-a` in all of them): an engine run is mostly start-up, so they overlap well even on
# two cores.
WORKERS = 3


def _preview_each(cases, project, env) -> list[str]:
    """`pulumi preview` of lab-a for each case in turn; what was not refused as it must be."""
    from pulumi.automation import CommandError

    def pulumi(*args: str):
        return pulumi_command().run([*args, "--stack", "lab-a"], str(project), env)

    pristine = {p: (project / p).read_text() for p in ("stacks/Pulumi.lab-a.yaml", "policies/kv-read.hcl")}
    pulumi("stack", "init")
    failures = []
    for case in cases:
        for path, text in pristine.items():
            (project / path).write_text(text)
        case.apply(project)
        try:
            pulumi("preview", "--non-interactive", "--color", "never")
        except CommandError as exc:
            message = str(exc)
            missing = [
                what
                for what, fragment in (
                    ("file", case.file),
                    ("field", case.field),
                    ("reason", case.message),
                    ("nothing changed", "nothing was changed"),
                )
                if fragment not in message
            ]
            if missing:
                failures.append(f"{case.name}: message lacks {'/'.join(missing)}: {message[-600:]}")
        else:
            failures.append(f"{case.name}: preview succeeded")
    return failures


def test_preview_refuses_every_bad_input(lab, lab_env, tmp_path):
    before = listings(lab)
    jobs = []
    for i in range(WORKERS):
        backend = tmp_path / f"backend-{i}"
        backend.mkdir()
        (tmp_path / f"worker-{i}").mkdir()
        project = copy_project(tmp_path / f"worker-{i}")
        jobs.append((CASES[i::WORKERS], project, {**lab_env, "PULUMI_BACKEND_URL": f"file://{backend}"}))
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        failures = [f for found in pool.map(lambda job: _preview_each(*job), jobs) for f in found]
    assert sum(len(cases) for cases, _, _ in jobs) == len(CASES)
    assert not failures, "\n".join(failures)
    assert listings(lab) == before
