"""The secret consumers' controllers as lab processes: external-secrets, the Vault Secrets Operator
and the Vault agent injector (vault-k8s), built by tools/build-controllers.sh. Each runs against one
lab cluster, started by PID and recorded in lab.json like every lab process (so `lab down` stops
it), only when something asks for it: the lab tests of the real controllers
(tests/lab/test_consumers_database.py), or a developer trying a consumer by hand
(`vaultfleet lab controllers CLUSTER`: `start`, `stop`, their CRDs by `install_crds`).

The lab has no nodes, so nothing runs them in a Pod; what that changes:
- external-secrets and VSO read the cluster's kubeconfig (the lab admin, not their charts' RBAC).
  They log in to Vault as the workloads do: a TokenRequest token of the ServiceAccount an object
  names, reviewed by Vault through the cluster's reviewer. Nothing of that needs a kubelet.
- the injector insists on an in-cluster identity (a token and CA under /run/secrets): it runs in a
  mount namespace of its own whose /run holds a token of a ServiceAccount with its chart's
  ClusterRole, so nothing on the machine changes (as root, or as a user in a user namespace). The
  apiserver calls its webhook at https://127.0.0.1 with a certificate the cluster's CA signed.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import ssl
import time
from pathlib import Path

import yaml
from kubernetes import client, config

from vaultfleet.lab import processes
from vaultfleet.lab.files import private_dir, write_private
from vaultfleet.lab.kubernetes import single_context_kubeconfig
from vaultfleet.lab.pki import serving_certificate
from vaultfleet.lab.record import (
    CONTROLLERS_BASE_PORT,
    ClusterInfo,
    LabError,
    LabState,
    child_env,
    http_ok,
    log,
    start_process,
    tracked,
)
from vaultfleet.toolchain import MissingTool, find_tool, tools_bin_dir

EXTERNAL_SECRETS = "external-secrets"
SECRETS_OPERATOR = "vault-secrets-operator"
INJECTOR = "vault-k8s"
KINDS = [EXTERNAL_SECRETS, SECRETS_OPERATOR, INJECTOR]
BY_CONSUMER_KIND = {"eso": EXTERNAL_SECRETS, "vso": SECRETS_OPERATOR, "injector": INJECTOR}
"""The controllers by the `--kind` of `vaultfleet consumers` whose output each one reads."""
CRD_PROJECTS = {EXTERNAL_SECRETS: "external-secrets", SECRETS_OPERATOR: "vault-secrets-operator"}
"""Whose CRDs (tools/fetch-crds.sh) a controller needs in its cluster; the injector needs none."""
PORTS = {
    EXTERNAL_SECRETS: [CONTROLLERS_BASE_PORT],
    SECRETS_OPERATOR: [CONTROLLERS_BASE_PORT + 1, CONTROLLERS_BASE_PORT + 2],
    INJECTOR: [CONTROLLERS_BASE_PORT + 3],
}
"""Each kind's ports: the same for every cluster, so one cluster at a time runs a kind."""
WEBHOOK = "vaultfleet-lab-agent-injector"
INJECTOR_LABEL = "vaultfleet.io/agent-injector"
"""Only namespaces labelled `<this>=enabled` go through the lab's injector webhook."""
_BUILD = "bash tools/build-controllers.sh"


def _binary(name: str) -> str:
    try:
        return find_tool(name)
    except MissingTool as exc:
        raise MissingTool(f"{exc} (`{_BUILD}`)") from None


def _process_name(kind: str, cluster: ClusterInfo) -> str:
    return f"{kind}-{cluster.name}"


def _env(state: LabState, cluster: ClusterInfo, **extra: str) -> dict[str, str]:
    return {**child_env(), "KUBECONFIG": str(single_context_kubeconfig(state, cluster)), **extra}


def start_external_secrets(state: LabState, cluster: ClusterInfo, echo=None) -> processes.Tracked:
    """The external-secrets controller for `cluster` (the ExternalSecret, SecretStore and
    ClusterSecretStore reconcilers; push secrets and cluster external secrets off)."""
    (port,) = PORTS[EXTERNAL_SECRETS]
    log(f"starting external-secrets for {cluster.name}", echo)
    proc = start_process(
        state,
        _process_name(EXTERNAL_SECRETS, cluster),
        [
            _binary(EXTERNAL_SECRETS),
            f"--metrics-addr=127.0.0.1:{port}",
            "--enable-leader-election=false",
            "--enable-push-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
            "--enable-cluster-external-secret-reconciler=false",
            "--concurrent=2",
            "--zap-time-encoding=iso8601",
        ],
        _env(state, cluster),
    )
    processes.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/metrics"), 60, "external-secrets", proc)
    return proc


def start_secrets_operator(state: LabState, cluster: ClusterInfo, echo=None) -> processes.Tracked:
    """The Vault Secrets Operator for `cluster`, its client cache in memory only."""
    metrics, probes = PORTS[SECRETS_OPERATOR]
    log(f"starting vault-secrets-operator for {cluster.name}", echo)
    proc = start_process(
        state,
        _process_name(SECRETS_OPERATOR, cluster),
        [
            _binary(SECRETS_OPERATOR),
            f"--metrics-bind-address=127.0.0.1:{metrics}",
            f"--health-probe-bind-address=127.0.0.1:{probes}",
            "--leader-elect=false",
            "--client-cache-persistence-model=none",
        ],
        _env(state, cluster, OPERATOR_NAMESPACE="default"),
    )
    processes.wait_until(lambda: http_ok(f"http://127.0.0.1:{probes}/readyz"), 60, "vault-secrets-operator", proc)
    return proc


def start_injector(state: LabState, cluster: ClusterInfo, vault_address: str, echo=None) -> processes.Tracked:
    """The Vault agent injector for `cluster`, and the webhook that sends it the Pods created in
    namespaces labelled INJECTOR_LABEL=enabled. The agent it injects logs in at `vault_address`."""
    (port,) = PORTS[INJECTOR]
    pki = state.pki(cluster.name)
    api = _admin_client(state, cluster)
    directory = state.directory / "controllers" / cluster.name
    secrets = directory / "run" / "secrets" / "kubernetes.io" / "serviceaccount"
    private_dir(secrets)
    write_private(secrets / "token", _injector_token(api))
    write_private(secrets / "ca.crt", pki.ca_cert.read_text())
    write_private(secrets / "namespace", "kube-system")
    key, cert = serving_certificate(pki, "vault-agent-injector")
    write_private(directory / "tls.key", key.decode())
    write_private(directory / "tls.crt", cert.decode())
    injector = shlex.join(
        [
            _binary(INJECTOR),
            "agent-inject",
            f"-listen=127.0.0.1:{port}",
            f"-tls-cert-file={directory / 'tls.crt'}",
            f"-tls-key-file={directory / 'tls.key'}",
            f"-vault-address={vault_address}",
            "-log-level=info",
        ]
    )
    # /run of its own: a tmpfs holding the in-cluster identity, nothing else of the machine's /run.
    script = (
        f"mount -t tmpfs tmpfs /run && cp -r {shlex.quote(str(directory / 'run' / 'secrets'))} /run/ && exec {injector}"
    )
    log(f"starting vault-k8s (agent injector) for {cluster.name}", echo)
    proc = start_process(
        state,
        _process_name(INJECTOR, cluster),
        # A user who is not root mounts in a user namespace of their own (where they are root).
        [
            "unshare",
            *([] if os.geteuid() == 0 else ["--user", "--map-root-user"]),
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
        ],
        _env(
            state,
            cluster,
            KUBERNETES_SERVICE_HOST="127.0.0.1",
            KUBERNETES_SERVICE_PORT=str(cluster.api_port),
        ),
    )
    ready = f"https://127.0.0.1:{port}/health/ready"  # 204 once its certificate is loaded
    trusted = ssl.create_default_context(cafile=str(pki.ca_cert))
    processes.wait_until(lambda: http_ok(ready, trusted), 60, "vault-k8s", proc)
    _register_webhook(api, port, pki.ca_cert.read_bytes())
    return proc


def stop(state: LabState, cluster: ClusterInfo, kinds: list[str]) -> list[processes.Tracked]:
    """Stop the controllers of `kinds` that run for `cluster` (by PID), and the injector's webhook;
    return the processes that were still running."""
    stopped = []
    for kind in kinds:
        name = _process_name(kind, cluster)
        if any(p.name == name for p in state.processes):
            proc = tracked(state, name)
            if processes.is_running(proc):
                stopped.append(proc)
            processes.stop(proc)
            state.processes.remove(proc)
            state.save()
        if kind == INJECTOR:
            api = _admin_client(state, cluster)
            try:
                client.AdmissionregistrationV1Api(api).delete_mutating_webhook_configuration(WEBHOOK)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
    return stopped


def running(state: LabState, kind: str) -> tuple[str, processes.Tracked] | None:
    """The cluster whose `kind` controller runs, and its process (one cluster at a time: PORTS)."""
    for proc in state.processes:
        for cluster in state.clusters:
            if proc.name == _process_name(kind, cluster) and processes.is_running(proc):
                return cluster.name, proc
    return None


def start(
    state: LabState, cluster: ClusterInfo, kinds: list[str], echo=None
) -> list[tuple[str, processes.Tracked, bool]]:
    """What `vaultfleet lab controllers` starts: the controllers of `kinds` for `cluster`, with
    their CRDs, each unless it runs already. Returns (kind, process, started now) per kind.

    Everything is checked before anything starts: the cluster's apiserver, the binaries, the CRDs
    fetched, no kind running for another cluster, its ports free."""
    apiserver = f"kube-apiserver-{cluster.name}"
    if not any(p.name == apiserver and processes.is_running(p) for p in state.processes):
        raise LabError(f"{apiserver} is not running: see `vaultfleet lab status`, or `vaultfleet lab up` again")
    wanted = []
    for kind in kinds:
        found = running(state, kind)
        if found is not None and found[0] != cluster.name:
            raise LabError(
                f"{kind} already runs for {found[0]} (pid {found[1].pid}) on the ports every cluster's would "
                f"use: `vaultfleet lab controllers {found[0]} --stop` first"
            )
        if found is None:
            wanted.append(kind)
    for kind in wanted:
        _binary(kind)
        if kind in CRD_PROJECTS:
            crd_files(CRD_PROJECTS[kind])
        taken = [port for port in PORTS[kind] if not processes.port_is_free(port)]
        if taken:
            raise LabError(f"{kind}: 127.0.0.1:{', '.join(map(str, taken))} already in use (by something else)")

    # One that exited is started again, its record dropped: `lab status` would show it failed.
    exited = {_process_name(kind, cluster) for kind in wanted}
    recorded = LabState.load(state.directory) or state  # what lab.json holds now (start_process)
    state.processes = [p for p in recorded.processes if p.name not in exited]
    state.save()

    api = _admin_client(state, cluster)
    projects = [CRD_PROJECTS[kind] for kind in wanted if kind in CRD_PROJECTS]
    if projects:
        log(f"installing the CRDs of {', '.join(projects)} in {cluster.name}", echo)
        # Every CRD of the project: its controller watches every kind, not only those consumers prints.
        install_crds(api, {project: all_crds()[project] for project in projects})
    starters = {
        EXTERNAL_SECRETS: lambda: start_external_secrets(state, cluster, echo),
        SECRETS_OPERATOR: lambda: start_secrets_operator(state, cluster, echo),
        INJECTOR: lambda: start_injector(state, cluster, state.vault_addr, echo),
    }
    results = []
    for kind in kinds:
        if kind in wanted:
            results.append((kind, starters[kind](), True))
        else:
            results.append((kind, running(state, kind)[1], False))
    return results


def healthy(state: LabState, name: str) -> bool | None:
    """Whether the controller process `name` answers its health check (what `lab status` shows);
    None when `name` is none of the controllers'."""
    for cluster in state.clusters:
        if name == _process_name(EXTERNAL_SECRETS, cluster):
            return http_ok(f"http://127.0.0.1:{PORTS[EXTERNAL_SECRETS][0]}/metrics")
        if name == _process_name(SECRETS_OPERATOR, cluster):
            return http_ok(f"http://127.0.0.1:{PORTS[SECRETS_OPERATOR][1]}/readyz")
        if name == _process_name(INJECTOR, cluster):
            trusted = ssl.create_default_context(cafile=str(state.pki(cluster.name).ca_cert))
            return http_ok(f"https://127.0.0.1:{PORTS[INJECTOR][0]}/health/ready", trusted)
    return None


# --- their CRDs -----------------------------------------------------------------------------


def crd_files(project: str) -> list[Path]:
    """The CRDs of `project` as tools/fetch-crds.sh cached them; MissingTool when it has not run."""
    directory = tools_bin_dir().parent / "crds" / project
    if not (directory / ".complete").exists():
        raise MissingTool(f"no {project} CRDs in {directory}: run `make tools` (tools/fetch-crds.sh)")
    return sorted(directory.glob("*_*.yaml"))


def all_crds() -> dict[str, list[str]]:
    """Every CRD tools/fetch-crds.sh cached, by project (plural names): what the real controllers watch."""
    return {project: [p.stem.split("_", 1)[1] for p in crd_files(project)] for project in CRD_PROJECTS.values()}


def install_crds(api: client.ApiClient, wanted: dict[str, list[str]], timeout: float = 60) -> list[str]:
    """Install CRDs as tools/fetch-crds.sh cached them ({project: [plural, ...]}), those there
    already left as they are, and wait until each is established; return their names."""
    extensions = client.ApiextensionsV1Api(api)
    names = []
    for project, plurals in wanted.items():
        files = crd_files(project)
        for plural in plurals:
            (path,) = [f for f in files if f.stem.split("_", 1)[1] == plural]  # <group>_<plural>.yaml
            crd = yaml.safe_load(path.read_text())
            try:
                extensions.create_custom_resource_definition(crd, _preload_content=False)
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
            names.append(crd["metadata"]["name"])
    deadline = time.monotonic() + timeout
    for name in names:
        while not _established(extensions, name):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not established after {timeout:.0f}s")
            time.sleep(0.2)
    return names


def _established(extensions: client.ApiextensionsV1Api, name: str) -> bool:
    status = json.loads(extensions.read_custom_resource_definition(name, _preload_content=False).data)["status"]
    return any(c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions", []))


# --- the injector's identity and webhook -------------------------------------------------------

# What the vault-k8s Helm chart's ClusterRole grants the injector.
_INJECTOR_RULES = [
    client.V1PolicyRule(
        api_groups=["admissionregistration.k8s.io"],
        resources=["mutatingwebhookconfigurations"],
        verbs=["get", "list", "watch", "patch"],
    )
]


def _injector_token(api: client.ApiClient) -> str:
    """A one-day token of kube-system/vault-agent-injector, bound to the chart's ClusterRole."""
    from vaultfleet.kube import ensure_service_account, request_token

    rbac = client.RbacAuthorizationV1Api(api)
    name = "vault-agent-injector"
    ensure_service_account(api, "kube-system", name)
    for create, body in (
        (
            rbac.create_cluster_role,
            client.V1ClusterRole(metadata=client.V1ObjectMeta(name=name), rules=_INJECTOR_RULES),
        ),
        (
            rbac.create_cluster_role_binding,
            client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name=name),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace="kube-system")],
            ),
        ),
    ):
        try:
            create(body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    return request_token(api, "kube-system", name, audience=None, seconds=86400)


def _register_webhook(api: client.ApiClient, port: int, ca_bundle: bytes) -> None:
    """Pods created in a labelled namespace go to the injector; if it does not answer, the create
    fails (a silent skip would look like a pod the injector chose not to mutate)."""
    webhook = client.V1MutatingWebhookConfiguration(
        metadata=client.V1ObjectMeta(name=WEBHOOK),
        webhooks=[
            client.V1MutatingWebhook(
                name="vault.hashicorp.com",
                admission_review_versions=["v1", "v1beta1"],
                side_effects="None",
                failure_policy="Fail",
                client_config=client.AdmissionregistrationV1WebhookClientConfig(
                    url=f"https://127.0.0.1:{port}/mutate", ca_bundle=base64.b64encode(ca_bundle).decode()
                ),
                rules=[
                    client.V1RuleWithOperations(
                        api_groups=[""], api_versions=["v1"], operations=["CREATE", "UPDATE"], resources=["pods"]
                    )
                ],
                namespace_selector=client.V1LabelSelector(match_labels={INJECTOR_LABEL: "enabled"}),
            )
        ],
    )
    admission = client.AdmissionregistrationV1Api(api)
    try:
        admission.create_mutating_webhook_configuration(webhook)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        admission.replace_mutating_webhook_configuration(WEBHOOK, webhook)


def _admin_client(state: LabState, cluster: ClusterInfo) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(state.kubeconfig), context=cluster.name)
