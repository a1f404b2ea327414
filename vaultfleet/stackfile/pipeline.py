"""The shared stack's pipeline identities: a `jwt` auth mount for the CI system's OIDC tokens, with
one role for pull-request previews and one for applies, each bound to claims the token must carry.

A CI job logs in with its own short-lived OIDC token (GitHub Actions: `id-token: write`), so no
long-lived Vault token is handed to any job. The claims decide which job gets which identity: the
previewer's are what any same-repository pull request carries, the applier's add what only the
protected branch or environment carries.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from vaultfleet.stackfile.fields import Audience, Label, Model, Seconds, Url


def _public_key(value: str) -> str:
    """A PEM public key (or a certificate carrying one), as Vault's jwt_validation_pubkeys takes it."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    # Without the final newline: Vault returns the key so, and a difference would show as drift.
    text = value.strip()
    try:
        if "BEGIN CERTIFICATE" in text:
            x509.load_pem_x509_certificate(text.encode())
        else:
            load_pem_public_key(text.encode())
    except ValueError:
        raise ValueError("must be a PEM public key (-----BEGIN PUBLIC KEY-----) or certificate") from None
    if "PRIVATE KEY" in text:
        raise ValueError("holds a private key: only the public key belongs here")
    return text


PublicKeyPem = Annotated[str, AfterValidator(_public_key)]


APPLIER_PREFIX = "vaultfleet-apply-"


def applier_policy_name(cluster: str) -> str:
    """The policy the identity applying `cluster`'s stack holds (rendered by render/applier.py)."""
    return f"{APPLIER_PREFIX}{cluster}"


# State keys: a cluster stack whose stack file says `secretsprovider: hashivault://vaultfleet-<cluster>`
# keeps its state's secrets under that Vault Transit key, which the shared stack makes and grants to
# the cluster's applier (encrypt, decrypt) and to the previewer (decrypt). Pulumi's hashivault
# provider always uses the mount at `transit/` (the fleet admin enables it once).
TRANSIT_MOUNT = "transit"
HASHIVAULT = "hashivault://"


def state_key_name(stack: str) -> str:
    """The Transit key of a cluster stack's state (`secretsprovider: hashivault://<this>`)."""
    return f"vaultfleet-{stack}"


PREVIEWER_POLICY = "vaultfleet-previewer"
PREVIEW_GRANTS_PREFIX = "vaultfleet-preview-"


def preview_grants_name(cluster: str) -> str:
    """Per-cluster layout: the policy `vault.<cluster>` writes with what a preview reads of that
    cluster beyond the previewer policy (its mount by path, its state key)."""
    return f"{PREVIEW_GRANTS_PREFIX}{cluster}"


def identity_policies(identity: str, clusters: list[str], per_cluster: bool = False) -> list[str]:
    """The policies an identity's Vault token gets: the previewer reads (and, per-cluster layout,
    each cluster's preview grants); the applier holds each cluster's applier policy, which pins what
    it may write there. The names follow from the clusters' names alone, so the shared stack lists
    them without reading any cluster's file."""
    if identity == "previewer":
        return [PREVIEWER_POLICY] + (sorted(preview_grants_name(c) for c in clusters) if per_cluster else [])
    return sorted(applier_policy_name(c) for c in clusters)


# Claims are matched exactly (bound_claims_type "string"); a value may not be empty or a glob.
_CLAIM_NAME_MAX = 64


class PipelineSettings(Model):
    """`vaultfleet:pipeline` of the shared stack."""

    mount: Label = "ci"
    """Path of the jwt auth mount: CI jobs log in at auth/<mount>/login."""
    issuer: Url
    """The OIDC issuer of the CI tokens (`iss`), e.g. https://token.actions.githubusercontent.com."""
    public_keys: list[PublicKeyPem] = Field(default_factory=list)
    """PEM public keys (or certificates) the tokens are signed with, for an issuer Vault cannot
    reach; empty: Vault fetches the keys by OIDC discovery from `issuer`."""
    audience: Audience
    """The `aud` the tokens must carry (GitHub: the `audience` input of the OIDC token request)."""
    previewer: dict[str, str]
    """Claims a token needs for the previewer identity (read-only), e.g. {repository: acme/fleet}."""
    applier: dict[str, str]
    """Claims a token needs for the applier identity: the previewer's plus what only the protected
    branch or environment carries, e.g. {repository: acme/fleet, ref: refs/heads/main}."""
    ttl: Seconds = 900
    """Lifetime of the Vault tokens the CI jobs get (one job's worth)."""

    @field_validator("previewer", "applier")
    @classmethod
    def _claims(cls, claims: dict[str, str]) -> dict[str, str]:
        if not claims:
            # Every token the issuer signs (all of GitHub, for GitHub's issuer) would get it.
            raise ValueError("must bind at least one claim (e.g. repository): else any token of the issuer gets it")
        for name, value in claims.items():
            if not name or len(name) > _CLAIM_NAME_MAX or not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"claim name {name!r} must be letters, digits, '_' or '-'")
            if not isinstance(value, str) or not value.strip() or "*" in value or value != value.strip():
                raise ValueError(f"claim {name}: {value!r} must be an exact, non-empty value (no globs)")
        return claims

    @model_validator(mode="after")
    def _applier_stricter(self) -> PipelineSettings:
        missing = {k: v for k, v in self.previewer.items() if self.applier.get(k) != v}
        if missing:
            raise ValueError(f"applier: must bind the previewer's claims too ({missing})")
        if set(self.applier) == set(self.previewer):
            raise ValueError(
                "applier: must bind more than the previewer (e.g. ref: refs/heads/main or environment): "
                "else every pull request gets the applier"
            )
        return self
