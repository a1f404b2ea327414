"""Read a kubeconfig context's API server and CA, as onboarding and the program need them."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import yaml


class KubeconfigError(ValueError):
    pass


@dataclass(frozen=True)
class ContextEndpoint:
    context: str
    server: str
    ca_pem: str | None


def kubeconfig_paths() -> list[Path]:
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def provider_kubeconfig() -> str | None:
    """The kubernetes provider's `kubeconfig` input. The provider takes it for one file's path or a
    kubeconfig's contents, and its Python SDK passes $KUBECONFIG when it is not given: a list
    (`a:b`) would then be parsed as contents and fail. So, for a list, "": the provider loads
    $KUBECONFIG itself with client-go's loading rules, merged as kubectl does. For one file, None,
    as before (the SDK passes its path): no change to a stack's provider."""
    return "" if os.pathsep in os.environ.get("KUBECONFIG", "") else None


def read_context(context: str, paths: list[Path] | None = None) -> ContextEndpoint:
    """Server URL and CA (PEM) of `context`, merging files as kubectl does (first one wins)."""
    paths = paths or kubeconfig_paths()
    contexts: dict[str, dict] = {}
    clusters: dict[str, tuple[dict, Path]] = {}
    for path in paths:
        if not path.exists():
            continue
        doc = yaml.safe_load(path.read_text()) or {}
        for item in doc.get("contexts") or []:
            contexts.setdefault(item["name"], item.get("context") or {})
        for item in doc.get("clusters") or []:
            clusters.setdefault(item["name"], (item.get("cluster") or {}, path))
    where = os.pathsep.join(str(p) for p in paths)
    if context not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise KubeconfigError(f"kube context '{context}' not found in {where} (contexts: {known})")
    cluster_name = contexts[context].get("cluster")
    if cluster_name not in clusters:
        raise KubeconfigError(f"kube context '{context}' names cluster '{cluster_name}', which {where} lacks")
    cluster, source = clusters[cluster_name]
    ca_pem = None
    if cluster.get("certificate-authority-data"):
        ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
    elif cluster.get("certificate-authority"):
        ca_path = Path(cluster["certificate-authority"]).expanduser()
        ca_pem = (ca_path if ca_path.is_absolute() else source.parent / ca_path).read_text()
    return ContextEndpoint(context=context, server=cluster["server"].rstrip("/"), ca_pem=ca_pem)
