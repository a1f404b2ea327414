"""`vaultfleet onboard`: one new stack file from a kubeconfig context; onboarding is that file."""

from __future__ import annotations

import json
import re
from pathlib import Path

from vaultfleet.kubeconfig import read_context
from vaultfleet.stackfile import Project, stack_file_name

# Values are written plain when they are plain, else as JSON strings (valid YAML scalars): no value
# can add keys or lines to the file.
TEMPLATE = """\
# Cluster {name}: onboarded with `vaultfleet onboard {name} --context {context_shown}`.
# Fleet-wide settings (Vault address, mount prefix, KV mount) come from Pulumi.yaml.
config:
  vaultfleet:cluster:
    kubeContext: {context}
    apiHost: {host}            # the API server as Vault reaches it
    caCert: |
{ca}
    # issuer: https://kubernetes.default.svc.cluster.local   # check the tokens' iss claim
    reviewerNamespace: {namespace}
    # reviewerServiceAccount: vault-auth
  # vaultfleet:policies: [kv-read, kv-write]              # templates in policies/ to render
  vaultfleet:roles:
    - name: app
      serviceAccounts: [app]
      namespaces: [app]
      policies: [kv-read]
      ttl: 1h
      maxTtl: 4h
      audience: vault
"""

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@-]*(:[A-Za-z0-9._/@-]+)*$")


def _scalar(value: str) -> str:
    return value if _PLAIN.match(value) else json.dumps(value)


class OnboardError(ValueError):
    pass


def onboard(project: Project, name: str, context: str, host: str | None = None, namespace: str = "kube-system") -> Path:
    """Write stacks/Pulumi.<name>.yaml, checked in full before it is written; never overwrites.

    The names are checked first (the cluster name becomes the file name), then the whole stack
    file through the schema `validate` and `pulumi up` use: bad input writes nothing.
    """
    if not _LABEL.match(name) or len(name) > 40:
        shown = stack_file_name(name) if _PLAIN.match(name) else "stacks/"
        raise OnboardError(
            f"{shown}: vaultfleet:name: cluster name {name!r} must be a lowercase DNS label (a-z, 0-9, '-'), "
            "at most 40 characters"
        )
    if not context or any(not ch.isprintable() for ch in context):
        raise OnboardError("--context must be a kubeconfig context name (printable characters)")
    path = project.stack(name).path
    if path.exists():
        raise OnboardError(f"{path} already exists; onboarding never overwrites a stack file")
    endpoint = read_context(context)
    if endpoint.ca_pem is None:
        raise OnboardError(f"kube context '{context}' has no certificate-authority(-data); cannot configure Vault's CA")
    ca = "\n".join("      " + line for line in endpoint.ca_pem.strip().splitlines())
    text = TEMPLATE.format(
        name=name,
        context_shown=_scalar(context),
        context=_scalar(context),
        host=_scalar(host or endpoint.server),
        ca=ca,
        namespace=_scalar(namespace),
    )

    from vaultfleet.stackfile import StackFile
    from vaultfleet.validate import check_stack

    findings, _ = check_stack(StackFile(project, path, text=text))
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise OnboardError("\n".join(f"{f.file}: {f.field}: {f.message}" for f in errors))
    try:
        with open(path, "x") as out:  # exclusive: a file that appeared meanwhile is not overwritten
            out.write(text)
    except FileExistsError:
        raise OnboardError(f"{path} already exists; onboarding never overwrites a stack file") from None
    return path
