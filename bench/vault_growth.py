"""Benchmark: what a cluster's workloads add to Vault as they log in (entities, aliases, leases).

One cluster stack on a lab cluster, its role bound to every ServiceAccount of one namespace. Then
ACCOUNTS ServiceAccounts log in LOGINS times each, and the script counts, before and after: the
identity entities, the auth mount's entity aliases, and the leases of the mount's logins. An
entity per ServiceAccount (its alias keyed by the ServiceAccount's UID, as vaultfleet's roles set
alias_name_source), not per login; a lease per login, until its token expires or is revoked.

Usage: .venv/bin/python bench/vault_growth.py [--accounts 50] [--logins 3]
"""

from __future__ import annotations

import argparse
import time

import hvac
import yaml
from _setup import CLI, lab_project, only_stacks, remove_stacks, timed

from tests.harness import login

CLUSTER = "growth"
NAMESPACE = "growth"


def listed(client: hvac.Client, path: str) -> int:
    try:
        return len(client.adapter.list(f"/v1/{path}")["data"]["keys"])
    except hvac.exceptions.InvalidPath:  # nothing there yet
        return 0


def counts(root: hvac.Client, accessor: str) -> dict[str, int]:
    try:
        aliases = root.adapter.list("/v1/identity/entity-alias/id")
    except hvac.exceptions.InvalidPath:  # none yet
        aliases = None
    on_mount = sum(1 for a in aliases["data"]["key_info"].values() if a["mount_accessor"] == accessor) if aliases else 0
    return {
        "entities": listed(root, "identity/entity/id"),
        "aliases on the mount": on_mount,
        "leases of the mount's logins": listed(root, f"sys/leases/lookup/auth/k8s-{CLUSTER}/login/"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--logins", type=int, default=3)
    args = parser.parse_args()

    with lab_project() as (state, env, project):
        only_stacks(project, ["vault"])
        doc = {
            "config": {
                "vaultfleet:cluster": {"kubeContext": state.clusters[0].name},
                "vaultfleet:roles": [
                    {
                        "name": "app",
                        "serviceAccounts": ["*"],
                        "namespaces": [NAMESPACE],
                        "policies": ["kv-read"],
                        "ttl": "1h",
                        "audience": "vault",
                    }
                ],
            }
        }
        (project / "stacks" / f"Pulumi.{CLUSTER}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        stacks = ["vault", CLUSTER]
        try:
            timed([CLI, "up", *stacks], env, project)
            root = hvac.Client(url=state.vault_addr, token=state.vault_token())
            accessor = root.sys.list_auth_methods()["data"][f"k8s-{CLUSTER}/"]["accessor"]
            before = counts(root, accessor)
            started = time.perf_counter()
            for i in range(args.accounts):
                for _ in range(args.logins):
                    login(state, state.clusters[0].name, "app", NAMESPACE, f"sa-{i}", mount=f"k8s-{CLUSTER}")
            seconds = time.perf_counter() - started
            after = counts(root, accessor)
        finally:
            remove_stacks(project, env, stacks)
        total = args.accounts * args.logins
        print(
            f"{args.accounts} ServiceAccounts x {args.logins} logins = {total} logins in {seconds:.1f} s "
            f"({total / seconds:.1f}/s, each with a TokenRequest first)"
        )
        for what in after:
            grown = after[what] - before[what]
            print(
                f"{what:<30} +{grown:<6} ({grown / args.accounts:.2f} per ServiceAccount, {grown / total:.2f} per login)"
            )


if __name__ == "__main__":
    main()
