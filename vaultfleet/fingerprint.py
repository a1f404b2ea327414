"""Everything a stack's program reads, as one digest: when it and the state are exactly as the last
successful `up` left them, a plain preview cannot show a change, and the engine need not run.

The program exports the digest of the inputs it ran with (`vaultfleet_inputs`); `vaultfleet
preview` computes it again from the files and compares (see `fleet.unchanged_since_last_up`).
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import yaml

OUTPUT = "vaultfleet_inputs"

# What the program reads from the project: its code, the policy templates, the project file.
_PROGRAM_FILES = ("Pulumi.yaml", "__main__.py")
_PROGRAM_TREES = (("components", "*.py"), ("vaultfleet", "*.py"), ("policies", "*.hcl"))
# The SDKs decide resource inputs and diffs (and the provider plugin versions they request).
_SDKS = ("pulumi", "pulumi-vault", "pulumi-kubernetes")


def inputs_fingerprint(project: Path, stack: str) -> str:
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    stack_file = project / "stacks" / f"Pulumi.{stack}.yaml"
    files = [project / name for name in _PROGRAM_FILES] + [stack_file]
    for tree, pattern in _PROGRAM_TREES:
        files += sorted(p for p in (project / tree).rglob(pattern) if "__pycache__" not in p.parts)
    for path in files:
        add(str(path.relative_to(project)), path.read_bytes() if path.exists() else b"(missing)")
    for sdk in _SDKS:
        add(sdk, metadata.version(sdk).encode())
    add("kube context", _kube_context_endpoint(stack_file))
    return digest.hexdigest()


def _kube_context_endpoint(stack_file: Path) -> bytes:
    """The API server and CA of the stack's kube context: the program reads them from the
    kubeconfig when the stack file does not set apiHost/caCert."""
    from vaultfleet.kubeconfig import KubeconfigError, read_context

    try:
        doc = yaml.safe_load(stack_file.read_text()) or {}
        context = ((doc.get("config") or {}).get("vaultfleet:cluster") or {}).get("kubeContext")
    except (OSError, yaml.YAMLError):
        return b"(unreadable stack file)"
    if not context:
        return b"(no kube context)"
    try:
        endpoint = read_context(context)
    except (KubeconfigError, OSError) as exc:
        return f"(error: {exc})".encode()
    return f"{endpoint.server}\0{endpoint.ca_pem}".encode()
