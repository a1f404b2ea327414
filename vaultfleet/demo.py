"""`make demo`: the main job end to end on the local lab, through the same fleet runner as the CLI.

lab up (unless running) -> `up` of the shared stack, lab-a and lab-b -> a real login with a
ServiceAccount token of each cluster at its own mount, and the token refused at the other's.
"""

from __future__ import annotations

import os
import sys

import hvac
from kubernetes import config

from vaultfleet.cli.common import err, out
from vaultfleet.fleet.engine import engine_env
from vaultfleet.fleet.runner import run
from vaultfleet.kube import ensure_service_account, request_token
from vaultfleet.lab import lab, processes, servers
from vaultfleet.lab.record import LabState
from vaultfleet.stackfile import Project

STACKS = ["vault", "lab-a", "lab-b"]


def _token(kubeconfig: str, context: str, namespace: str, account: str) -> str:
    api = config.new_client_from_config(config_file=kubeconfig, context=context)
    ensure_service_account(api, namespace, account)
    return request_token(api, namespace, account, audience="vault")


def main() -> int:
    state = LabState.load()
    if state is None or not state.processes or not all(processes.is_running(p) for p in state.processes):
        state = lab.up(2, echo=lambda m: err.print(f"[dim]lab:[/] {m}"), server=servers.from_env())
        out.print(f"lab up in {state.startup_seconds:.1f}s")
    # What `eval "$(vaultfleet lab env)"; vaultfleet up vault lab-a lab-b` would run with.
    env = {**engine_env(), **state.env(), "VAULT_TOKEN": state.vault_token()}
    os.environ["KUBECONFIG"] = env["KUBECONFIG"]  # the program and verify read the lab's kubeconfig
    results = run(Project.find(), STACKS, "up", env=env)
    for r in results:
        changes = ", ".join(f"{k} {v}" for k, v in sorted(r.changes.items()))
        if r.ok:
            out.print(f"stack {r.stack}: up in {r.seconds:.1f}s ({changes})")
        else:
            err.print(f"[red]stack {r.stack}: up failed[/]\n{r.error}", highlight=False)
    if not all(r.ok for r in results):
        return 1

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
    out.print(
        'explore: eval "$(.venv/bin/vaultfleet lab env)"; then pulumi stack ls, "$VAULT_CLI" auth list, kubectl --context lab-a get sa -A'
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
