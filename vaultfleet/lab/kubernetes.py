"""The lab's Kubernetes control planes: one etcd, then per cluster a kube-apiserver and a
kube-controller-manager, the kubeconfig that reaches them, and the waits until each is ready.

No nodes and no scheduler: the lab clusters serve what Vault's Kubernetes auth and the fleet need
(ServiceAccounts, their tokens, TokenReview, RBAC), with each cluster's own CA and signing key.
"""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import yaml

from vaultfleet.lab import processes
from vaultfleet.lab.pki import ClusterPki, previous_signing_key, write_signing_key
from vaultfleet.lab.record import (
    ETCD_PEER_PORT,
    ETCD_PORT,
    ClusterInfo,
    LabState,
    http_ok,
    log,
    start_process,
    tracked,
    write_secret,
)

# The controllers a lab cluster needs: tokens for kubernetes.io/service-account-token Secrets,
# `default` ServiceAccounts, namespace deletion (or destroy hangs) and kube-root-ca.crt.
CONTROLLERS = ",".join(
    [
        "serviceaccount-token-controller",
        "serviceaccount-controller",
        "namespace-controller",
        "garbage-collector-controller",
        "root-ca-certificate-publisher-controller",
    ]
)


def start_etcd(state: LabState, binary: str, echo) -> None:
    log(f"starting etcd on 127.0.0.1:{ETCD_PORT}", echo)
    client = f"http://127.0.0.1:{ETCD_PORT}"
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    proc = start_process(
        state,
        "etcd",
        [
            binary,
            "--name=lab",
            f"--data-dir={state.directory / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=lab={peer}",
            "--log-level=warn",
        ],
    )
    processes.wait_until(lambda: http_ok(f"{client}/health"), 60, "etcd", proc)


def write_kubeconfig(state: LabState, pkis: dict[str, ClusterPki]) -> None:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": c.name, "cluster": {"server": c.server, "certificate-authority-data": b64(pkis[c.name].ca_cert)}}
            for c in state.clusters
        ],
        "users": [
            {
                "name": f"{c.name}-admin",
                "user": {
                    "client-certificate-data": b64(pkis[c.name].admin_cert),
                    "client-key-data": b64(pkis[c.name].admin_key),
                },
            }
            for c in state.clusters
        ],
        "contexts": [
            {"name": c.name, "context": {"cluster": c.name, "user": f"{c.name}-admin"}} for c in state.clusters
        ],
        "current-context": state.clusters[0].name,
    }
    write_secret(state.kubeconfig, yaml.safe_dump(config, sort_keys=False))


def single_context_kubeconfig(state: LabState, cluster: ClusterInfo) -> Path:
    """kube-controller-manager takes a kubeconfig without a context flag: give it its own."""
    config = yaml.safe_load(state.kubeconfig.read_text())
    config["current-context"] = cluster.name
    path = state.directory / "pki" / cluster.name / "kubeconfig"
    write_secret(path, yaml.safe_dump(config, sort_keys=False))
    return path


def start_apiserver(state: LabState, cluster: ClusterInfo, pki: ClusterPki, binary: str, echo) -> None:
    log(f"starting kube-apiserver {cluster.name} on {cluster.server}", echo)
    start_process(
        state,
        f"kube-apiserver-{cluster.name}",
        [
            binary,
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={cluster.api_port}",
            f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            f"--etcd-prefix=/{cluster.name}",  # one etcd, one key space per cluster
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer={cluster.issuer}",
            f"--service-account-key-file={pki.sa_pub}",
            *(
                [f"--service-account-key-file={previous_signing_key(pki)}"]
                if previous_signing_key(pki).exists()
                else []
            ),
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-cluster-ip-range=10.96.0.0/24",  # bookkeeping only: the lab has no nodes
            "--authorization-mode=RBAC",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            f"--cert-dir={state.directory / 'pki' / cluster.name}",
        ],
    )


def rotate_signing_key(state: LabState, cluster: ClusterInfo, binary: str, echo=None) -> None:
    """Rotate the cluster's ServiceAccount token signing key, as an operator would: a new key signs,
    the previous one still verifies (and both are in the cluster's JWKS); the API server restarts."""
    pki = state.pki(cluster.name)
    previous_signing_key(pki).write_bytes(pki.sa_pub.read_bytes())
    write_signing_key(pki)
    proc = tracked(state, f"kube-apiserver-{cluster.name}")
    processes.stop(proc)
    state.processes.remove(proc)
    state.save()
    start_apiserver(state, cluster, pki, binary, echo)
    wait_apiserver_ready(state, cluster, pki)
    # /readyz answers before the namespace admission plugin has synced: until then a namespaced
    # write is refused (403 "not yet ready to handle request"). Wait for one to be admitted.
    processes.wait_until(
        lambda: _admits_namespaced_writes(cluster, pki), 60, f"kube-apiserver {cluster.name} admitting writes"
    )


def _admits_namespaced_writes(cluster: ClusterInfo, pki: ClusterPki) -> bool:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{cluster.server}/api/v1/namespaces/default/serviceaccounts?dryRun=All",
        data=json.dumps({"metadata": {"name": "vaultfleet-admission-probe"}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5, context=admin_context(pki)) as response:  # noqa: S310 - loopback
            return response.status in (200, 201)
    except urllib.error.HTTPError as exc:
        return exc.code == 409  # it exists: admitted all the same


def start_controller_manager(state: LabState, cluster: ClusterInfo, pki: ClusterPki, binary: str, echo) -> None:
    log(f"starting kube-controller-manager {cluster.name}", echo)
    kubeconfig = single_context_kubeconfig(state, cluster)
    start_process(
        state,
        f"kube-controller-manager-{cluster.name}",
        [
            binary,
            f"--kubeconfig={kubeconfig}",
            f"--controllers={CONTROLLERS}",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            "--bind-address=127.0.0.1",
            f"--secure-port={cluster.controller_manager_port}",
            f"--cert-dir={state.directory / 'pki' / cluster.name / 'kcm'}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
        ],
    )


def admin_context(pki: ClusterPki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return ctx


def wait_apiserver_ready(state: LabState, cluster: ClusterInfo, pki: ClusterPki) -> None:
    ctx = admin_context(pki)
    processes.wait_until(
        lambda: http_ok(f"{cluster.server}/readyz", ctx),
        120,
        f"kube-apiserver {cluster.name}",
        tracked(state, f"kube-apiserver-{cluster.name}"),
    )


def wait_default_service_account(state: LabState, cluster: ClusterInfo, pki: ClusterPki) -> None:
    # The controller manager is working once it has created the `default` ServiceAccount.
    ctx = admin_context(pki)
    processes.wait_until(
        lambda: http_ok(f"{cluster.server}/api/v1/namespaces/default/serviceaccounts/default", ctx),
        120,
        f"kube-controller-manager {cluster.name}",
        tracked(state, f"kube-controller-manager-{cluster.name}"),
        interval=0.5,
    )
