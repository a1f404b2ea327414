"""`make demo`: the main job end to end on the local lab.

lab up (unless running) -> shared stack up -> lab-a and lab-b up -> a real login with a
ServiceAccount token of each cluster at its own mount, and the token refused at the other's.
"""

from __future__ import annotations

import sys
import time

import hvac
from kubernetes import config

from vaultfleet.automation import project_dir, select_stack
from vaultfleet.console import err, out
from vaultfleet.kube import ensure_service_account, request_token
from vaultfleet.lab import lab, processes, servers


def _token(kubeconfig: str, context: str, namespace: str, account: str) -> str:
    api = config.new_client_from_config(config_file=kubeconfig, context=context)
    ensure_service_account(api, namespace, account)
    return request_token(api, namespace, account, audience="vault")


def main() -> int:
    state = lab.LabState.load()
    if state is None or not all(processes.is_running(p) for p in state.processes):
        state = lab.up(2, echo=lambda m: err.print(f"[dim]lab:[/] {m}"), server=servers.from_env())
        out.print(f"lab up in {state.startup_seconds:.1f}s")
    env = {**state.env(), "VAULT_TOKEN": state.vault_token()}
    project = project_dir()
    for name in ["vault", "lab-a", "lab-b"]:
        started = time.monotonic()
        stack = select_stack(name, project, env)
        result = stack.up(color="never", on_output=None)
        changes = ", ".join(f"{k} {v}" for k, v in sorted(result.summary.resource_changes.items()))
        out.print(f"stack {name}: up in {time.monotonic() - started:.1f}s ({changes})")

    failures = 0
    for cluster, other in [("lab-a", "lab-b"), ("lab-b", "lab-a")]:
        jwt = _token(str(state.kubeconfig), cluster, "app", "app")
        login = hvac.Client(url=state.vault_addr).auth.kubernetes.login("app", jwt, mount_point=f"k8s-{cluster}")
        policies = login["auth"]["token_policies"]
        out.print(f"login app/app of {cluster} at auth/k8s-{cluster}: ok, policies {policies}")
        try:
            hvac.Client(url=state.vault_addr).auth.kubernetes.login("app", jwt, mount_point=f"k8s-{other}")
        except hvac.exceptions.Forbidden:
            out.print(f"login app/app of {cluster} at auth/k8s-{other}: refused, as it must be")
        else:
            err.print(f"[red]login of a {cluster} token at {other}'s mount succeeded: clusters are not isolated[/]")
            failures += 1
    out.print('explore: eval "$(.venv/bin/vaultfleet lab env)"; then pulumi stack ls, "$VAULT_CLI" auth list, kubectl --context lab-a get sa -A')
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
