"""Benchmark: onboarding one new cluster, `vaultfleet up vault NEW` (the shared stack makes the
mount, policies and applier policy; NEW's stack its config, roles, reviewer) against plain `pulumi`
doing the same (`pulumi up -s vault`, `pulumi stack init NEW`, `pulumi up -s NEW`, each with
`--yes --skip-preview` as vaultfleet runs them) and against a floor. Wall and CPU seconds (the
whole process tree).

The floor performs the same writes directly, one after the other, with hvac and the kubernetes
client (the fastest a tool could possibly do them): ServiceAccount, auth-delegator binding, token
Secret (waiting for its token), auth mount, mount config, two policies, two roles. Both start from
nothing each round; clean-up is not timed.

Usage: .venv/bin/python bench/onboarding.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import secrets
import time

import hvac
from _setup import CLI, REPO, lab_project, measured, median, only_stacks, remove_stacks, timed, write_cluster_stack
from kubernetes import client

from tests.lab import k8s
from vaultfleet.render.policy import render


def floor(state, name: str, context: str) -> float:
    """The same objects `up` makes for a 2-role cluster stack, written directly."""
    started = time.perf_counter()
    api = k8s.api_client(str(state.kubeconfig), context)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    account = f"vault-auth-{name}"
    core.create_namespaced_service_account(
        "kube-system", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
    )
    rbac.create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=f"{account}-kube-system-auth-delegator"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=account, namespace="kube-system")],
        )
    )
    core.create_namespaced_secret(
        "kube-system",
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=f"{account}-token", annotations={"kubernetes.io/service-account.name": account}
            ),
            type="kubernetes.io/service-account-token",
        ),
    )
    jwt = k8s.wait_for_secret_token(api, "kube-system", f"{account}-token")
    vault = hvac.Client(url=state.vault_addr, token=state.vault_token())
    mount = f"k8s-{name}"
    vault.sys.enable_auth_method("kubernetes", path=mount)
    server = next(c.server for c in state.clusters if c.name == context)
    vault.write_data(
        f"auth/{mount}/config",
        data={
            "kubernetes_host": server,
            "kubernetes_ca_cert": state.pki(context).ca_cert.read_text(),
            "token_reviewer_jwt": jwt,
            "disable_iss_validation": True,
        },
    )
    for template in ("kv-read", "kv-write"):
        body = render(template, {"cluster": name, "mount": mount, "kv_mount": "kv"}, REPO / "policies")
        vault.sys.create_or_update_policy(f"{mount}-{template}", body)
    for i in range(2):
        vault.auth.kubernetes.create_role(
            f"role-{i}",
            bound_service_account_names=[f"app-{i}"],
            bound_service_account_namespaces=["app"],
            policies=[f"{mount}-kv-read"],
            ttl="1h",
            audience="vault",
            mount_point=mount,
        )
    return time.perf_counter() - started


def undo_floor(state, name: str, context: str) -> None:
    api = k8s.api_client(str(state.kubeconfig), context)
    account = f"vault-auth-{name}"
    client.CoreV1Api(api).delete_namespaced_secret(f"{account}-token", "kube-system")
    client.CoreV1Api(api).delete_namespaced_service_account(account, "kube-system")
    client.RbacAuthorizationV1Api(api).delete_cluster_role_binding(f"{account}-kube-system-auth-delegator")
    vault = hvac.Client(url=state.vault_addr, token=state.vault_token())
    vault.sys.disable_auth_method(f"k8s-{name}")
    for template in ("kv-read", "kv-write"):
        vault.sys.delete_policy(f"k8s-{name}-{template}")


def offboard(project, env, name: str) -> None:
    """Untimed: the cluster stack destroyed and removed (its file too), then its mount, policies and
    applier policy out of the shared stack, which protects the mount: `up vault --allow-dangerous
    vault`, as docs/dangerous-steps.md offboards. Otherwise the next round's `up vault` would stop at
    the protected mount of this round's cluster."""
    remove_stacks(project, env, [name])
    timed([CLI, "up", "vault", "--allow-dangerous", "vault"], env, project)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with lab_project() as (state, env, project):
        only_stacks(project, ["vault"])
        timed([CLI, "up", "vault"], env, project)
        context = state.clusters[0].name
        run_id = secrets.token_hex(2)  # names of their own, whatever an interrupted run left
        ups, plains, floors = [], [], []
        apply = ["--yes", "--skip-preview", "--non-interactive"]
        try:
            for r in range(args.rounds):
                name = f"new-{run_id}-{r}"
                write_cluster_stack(project, name, context)
                ups.append(measured([CLI, "up", "vault", name], env, project))
                offboard(project, env, name)
                name = f"plain-{run_id}-{r}"
                write_cluster_stack(project, name, context)
                steps = [
                    measured(["pulumi", "up", "-s", "vault", *apply], env, project),
                    measured(["pulumi", "stack", "init", name, "--non-interactive"], env, project),
                    measured(["pulumi", "up", "-s", name, *apply], env, project),
                ]
                plains.append((sum(w for w, _ in steps), sum(c for _, c in steps)))
                offboard(project, env, name)
                floors.append(floor(state, f"floor-{run_id}-{r}", context))
                undo_floor(state, f"floor-{run_id}-{r}", context)
        finally:
            remove_stacks(project, env, ["vault"])
        (uw, uc), (pw, pc) = [(median([w for w, _ in s]), median([c for _, c in s])) for s in (ups, plains)]
        f = median(floors)
        print(f"onboarding one cluster (2 roles, 2 policies), rounds: {args.rounds}; medians")
        print(f"floor: the same writes with hvac + kubernetes client : {f:6.2f} s wall")
        print(f"plain `pulumi up vault`, `stack init`, `up NEW`      : {pw:6.2f} s wall {pc:6.2f} s CPU")
        print(
            f"`vaultfleet up vault NEW`                            : {uw:6.2f} s wall {uc:6.2f} s CPU"
            f"   up/floor = {uw / f:.1f}x (wall)   vaultfleet/plain = {uw / pw:.2f}x wall, {uc / pc:.2f}x CPU"
        )


if __name__ == "__main__":
    main()
