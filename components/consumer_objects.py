"""Secret consumers' connection objects in the cluster: external-secrets stores, VSO auths."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s


@dataclass
class ConsumerObjectsArgs:
    objects: list[dict]
    """Custom resources (apiVersion, kind, metadata, spec) as `vaultfleet consumers` prints them.
    Their CRDs must be installed in the cluster (by external-secrets / Vault Secrets Operator)."""


class ConsumerObjects(pulumi.ComponentResource):
    """One `CustomResource` per object, so the cluster's consumers log in through this stack's mount.

    Outputs:
        names: `<kind>/<namespace>/<name>` of each object, in declaration order.
    """

    names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ConsumerObjectsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:cluster:ConsumerObjects", name, None, opts)
        labels = []
        for o in args.objects:
            meta = o["metadata"]
            where = f"{o['kind']}/{meta.get('namespace', '-')}/{meta['name']}"
            k8s.apiextensions.CustomResource(
                f"{name}-{o['kind'].lower()}-{meta.get('namespace', 'cluster')}-{meta['name']}",
                api_version=o["apiVersion"],
                kind=o["kind"],
                metadata=meta,
                spec=o["spec"],
                opts=pulumi.ResourceOptions(parent=self),
            )
            labels.append(where)
        self.names = pulumi.Output.from_input(labels)
        self.register_outputs({"names": self.names})
