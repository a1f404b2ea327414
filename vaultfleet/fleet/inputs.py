"""Everything a stack's program reads, as one digest: the program exports it (`vaultfleet_inputs`)
and the preview skip (vaultfleet/fleet/skip.py) compares it with the files as they are now."""

from __future__ import annotations

import hashlib
from importlib import metadata

from vaultfleet.stackfile import StackFile

OUTPUT = "vaultfleet_inputs"

# The SDKs decide resource inputs and diffs (and the provider plugin versions they request).
_SDKS = ("pulumi", "pulumi-vault", "pulumi-kubernetes")


def inputs_fingerprint(stack: StackFile) -> str:
    """One digest of everything the stack's program reads: the program's files, the stack file (all
    of them, for the shared stack), the SDK versions and the kube contexts' endpoints."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    root = stack.project.root
    project = stack.project
    # The shared stack reads every stack file (each cluster's mount, policies, applier policy);
    # in the per-cluster layout only the names of the files, and an access stack its cluster's file
    # and those of the clusters whose names could collide with it.
    read = project.stacks() if stack.is_shared and not project.per_cluster else [stack]
    if stack.is_access and (settings := stack.valid_settings()) is not None:
        from vaultfleet.stackfile.fleet import neighbour_names
        from vaultfleet.stackfile.schema import ClusterStack

        neighbours = neighbour_names(settings, project.stack_names()) if isinstance(settings, ClusterStack) else []
        read += [project.stack(n) for n in neighbours]
    if stack.is_shared and project.per_cluster:
        add("stack files", "\n".join(project.stack_names()).encode())
    for path in [*stack.project.program_files(), *(s.path for s in read)]:
        label = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        add(label, path.read_bytes() if path.exists() else b"(missing)")
    for sdk in _SDKS:
        add(sdk, metadata.version(sdk).encode())
    for each in read:
        add(f"kube context of {each.name}", _kube_context_endpoint(each))
        add(f"issuer keys of {each.name}", _jwt_issuer(each))
    return digest.hexdigest()


def _kube_context_endpoint(stack: StackFile) -> bytes:
    """The API server and CA of the stack's kube context: the program reads them from the
    kubeconfig when the stack file does not set apiHost/caCert."""
    from vaultfleet.kubeconfig import KubeconfigError, read_context

    context = stack.kube_context
    if not context:
        return b"(no kube context)"
    try:
        endpoint = read_context(context)
    except (KubeconfigError, OSError) as exc:
        return f"(error: {exc})".encode()
    return f"{endpoint.server}\0{endpoint.ca_pem}".encode()


def _jwt_issuer(stack: StackFile) -> bytes:
    """jwt mode: the issuer and keys the program reads from the cluster at every run (the cluster's
    stack writes them, the shared stack pins them), so a rotated key counts as a changed input."""
    import os

    from vaultfleet.stackfile.schema import ClusterStack

    settings = stack.valid_settings()
    if not isinstance(settings, ClusterStack) or settings.cluster.auth_mode != "jwt":
        return b"(not jwt mode)"
    from vaultfleet.kube import jwt_issuer

    try:
        issuer, keys = jwt_issuer(settings)
    except Exception:  # noqa: BLE001 - unreachable or refused: the program would fail too
        return os.urandom(16)  # matches no digest an earlier run exported: the engine runs
    return "\0".join([issuer, *keys]).encode()
