"""`vaultfleet onboard`: one new stack file from a kubeconfig context; onboarding is that file."""

from __future__ import annotations

from pathlib import Path

from vaultfleet.project import Project
from vaultfleet.project.kubeconfig import read_context

TEMPLATE = """\
# Cluster {name}: onboarded with `vaultfleet onboard {name} --context {context}`.
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


class OnboardError(ValueError):
    pass


def onboard(project: Project, name: str, context: str, host: str | None = None, namespace: str = "kube-system") -> Path:
    """Write stacks/Pulumi.<name>.yaml and validate it; refuse to overwrite an existing file."""
    path = project.stack(name).path
    if path.exists():
        raise OnboardError(f"{path} already exists; onboarding never overwrites a stack file")
    endpoint = read_context(context)
    if endpoint.ca_pem is None:
        raise OnboardError(f"kube context '{context}' has no certificate-authority(-data); cannot configure Vault's CA")
    ca = "\n".join("      " + line for line in endpoint.ca_pem.strip().splitlines())
    text = TEMPLATE.format(name=name, context=context, host=host or endpoint.server, ca=ca, namespace=namespace)

    from vaultfleet.project.validate import validate

    path.write_text(text)
    findings, _ = validate(project, [str(path)])
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        path.unlink()  # bad input writes nothing
        raise OnboardError("\n".join(f"{f.file}: {f.field}: {f.message}" for f in errors))
    return path
