"""Secret consumers' connection objects in the cluster: external-secrets stores, VSO auths."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class CustomObject:
    """One custom resource, its CRD installed in the cluster (by external-secrets / Vault Secrets
    Operator)."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    """None for a cluster-scoped object."""
    spec: Mapping[str, Any]
    """The object's spec, whose shape its CRD defines."""

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> CustomObject:
        """From a manifest (apiVersion, kind, metadata, spec) as `vaultfleet consumers` prints it."""
        meta = manifest["metadata"]
        return cls(manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace"), manifest["spec"])

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0]

    @property
    def resource(self) -> str:
        """The plural resource name RBAC rules use (secretstores, vaultauths)."""
        return f"{self.kind.lower()}s"

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.namespace or '-'}/{self.name}"


@dataclass
class ConsumerObjectsArgs:
    objects: list[CustomObject]


class ConsumerObjects(pulumi.ComponentResource):
    """One `CustomResource` per object, so the cluster's consumers log in through this stack's mount.

    Outputs:
        names: `<kind>/<namespace>/<name>` of each object, in declaration order.
    """

    names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ConsumerObjectsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:cluster:ConsumerObjects", name, None, opts)
        for o in args.objects:
            metadata = {"name": o.name} | ({"namespace": o.namespace} if o.namespace else {})
            k8s.apiextensions.CustomResource(
                f"{name}-{o.kind.lower()}-{o.namespace or 'cluster'}-{o.name}",
                api_version=o.api_version,
                kind=o.kind,
                metadata=metadata,
                spec=dict(o.spec),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.names = pulumi.Output.from_input([o.label for o in args.objects])
        self.register_outputs({"names": self.names})
