"""`vaultfleet verify` of a reviewer-token cluster: the stored reviewer token, checked the way Vault
uses it (the token reviewing itself at the API server), and its expiry. Vault never returns the
token it holds; the cluster's token Secret is what it was given at the last `up`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vaultfleet.stackfile.schema import ClusterStack
from vaultfleet.verify.logins import CAUSES


@dataclass
class ReviewerCheck:
    """reviewer-token mode: the reviewer's token as Vault uses it (Vault does not return it)."""

    ok: bool
    secret: str
    """<namespace>/<Secret> holding the token."""
    expiry: str
    """"no expiry" (a Secret-bound token) or the token's exp, with the time left."""
    cause: str | None = None
    fix: str | None = None


def reviewer_check(stack: ClusterStack, kubeconfig: str | None = None) -> ReviewerCheck | None:
    """Whether the reviewer token still works as Vault uses it: the token Secret's JWT, presented to
    the API server to review itself (what Vault does with it at each login), and its expiry. None
    outside reviewer-token mode (nothing is stored there)."""
    import base64
    import json
    import time

    from kubernetes import client

    from vaultfleet.kube import context_client

    if stack.cluster.auth_mode != "reviewer-token":
        return None
    api = context_client(stack.cluster.kube_context, kubeconfig)
    namespace, name = stack.cluster.reviewer_namespace, stack.cluster.token_secret
    check = ReviewerCheck(ok=False, secret=f"{namespace}/{name}", expiry="unknown")
    try:
        secret = client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except client.ApiException as exc:
        check.cause = f"the reviewer's token Secret cannot be read ({exc.status} {exc.reason})"
        check.fix = "vaultfleet up for this stack recreates it and writes its token into Vault"
        return check
    token = base64.b64decode((secret.data or {}).get("token", "")).decode()
    if not token:
        check.cause, check.fix = "the token Secret holds no token (yet)", "wait for the token controller, then verify"
        return check
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    if "exp" in claims:
        left = claims["exp"] - time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(claims["exp"]))
        check.expiry = f"expires {stamp} ({left / 86400:.1f} days left)"
    else:
        check.expiry = "no expiry (bound to its Secret: valid until the Secret is deleted)"
    # As Vault does at a login: the reviewer's token authenticates a TokenReview call.
    as_reviewer = client.Configuration()
    as_reviewer.host, as_reviewer.ssl_ca_cert = api.configuration.host, api.configuration.ssl_ca_cert
    reviewer = client.ApiClient(as_reviewer, header_name="Authorization", header_value=f"Bearer {token}")
    try:
        review = client.AuthenticationV1Api(reviewer).create_token_review(
            client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
        )
    except client.ApiException as exc:
        if exc.status == 401:
            check.cause = (
                "the API server no longer accepts the reviewer token (its Secret replaced, or the signing key)"
            )
            check.fix = "vaultfleet up for this stack writes the current token into Vault"
        else:
            check.cause = (
                f"the reviewer may not call TokenReview ({exc.status} {exc.reason}): it lacks system:auth-delegator"
            )
            check.fix = CAUSES[2][2]
        return check
    check.ok = bool(review.status.authenticated)
    if not check.ok:
        check.cause, check.fix = f"TokenReview: {review.status.error}", "vaultfleet up for this stack"
    return check
