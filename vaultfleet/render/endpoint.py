"""Where Vault reaches a cluster's API server: the stack file's apiHost and caCert, else the kube
context's. The cluster's stack writes them into its mount's config and the shared stack pins exactly
them in the cluster's applier policy: both take them from here, so the two always agree."""

from __future__ import annotations

from vaultfleet.kubeconfig import KubeconfigError, read_context
from vaultfleet.stackfile import stack_file_name
from vaultfleet.stackfile.addresses import is_loopback_url
from vaultfleet.stackfile.schema import ClusterStack


def cluster_endpoint(stack: ClusterStack) -> tuple[str, str]:
    """(API host, CA PEM) as Vault reaches the cluster."""
    host, ca = stack.cluster.api_host, stack.cluster.ca_cert
    if host is None or ca is None:
        shown = stack_file_name(stack.name)
        try:
            endpoint = read_context(stack.cluster.kube_context)
        except KubeconfigError as exc:
            raise ValueError(
                f"{shown}: vaultfleet:cluster.apiHost: not set, and {exc}; set apiHost and caCert in the stack file"
            ) from None
        host = host or endpoint.server
        ca = ca or endpoint.ca_pem
        if ca is None:
            raise ValueError(f"kube context '{stack.cluster.kube_context}' has no CA; set vaultfleet:cluster.caCert")
        if host.lower().startswith("http://") and not is_loopback_url(host) and not stack.fleet.allow_insecure_http:
            # The same rule the schema applies to a written apiHost: Vault sends JWTs to this host.
            raise ValueError(
                f"{shown}: vaultfleet:cluster.apiHost: the kube context "
                f"'{stack.cluster.kube_context}' names {host}, plain http to a host other than loopback; set "
                "apiHost to the https:// address, or vaultfleet:allowInsecureHttp: true (docs/stack-files.md)"
            )
    return host, ca
