"""Whether each access expectation (access/*.yaml) holds: offline from the rendered policies with
the ACL evaluator (`validate`), live from a real login's token with `sys/capabilities-self`
(`verify`). Either way a failing one names the policy and path rule that decides it, worked out by
the same evaluator on the same bodies, so offline and live failures read the same.

Offline leaves out what is not in the repository: Vault's `default` policy (every token has it;
it grants the token's own paths, never the fleet's) and a role's existingPolicies (their bodies are
Vault's): a `cannot` on a role with such a policy is checked live only, and says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vaultfleet.render import acl
from vaultfleet.render.policy import EXAMPLE_ACCESSOR, fill_mount_accessor, render_cluster_policies
from vaultfleet.stackfile.expectations import Located
from vaultfleet.stackfile.schema import ClusterStack, Role

# The name verify gives a namespace or ServiceAccount a role binds only as `*` (made for the check).
PROBE_NAME = "vaultfleet-verify"


@dataclass(frozen=True)
class Outcome:
    where: Located
    ok: bool
    got: tuple[str, ...]
    why: str
    """The policy and path rule that decide the path, or that none matches."""
    unchecked: str = ""
    """Offline: why the expectation could not be settled without Vault (checked by verify)."""

    def __str__(self) -> str:
        e = self.where.expectation
        wanted = " and ".join(
            [f"can {','.join(e.can)}"] * bool(e.can) + [f"cannot {','.join(e.cannot)}"] * bool(e.cannot)
        )
        verdict = "ok" if self.ok else ("unchecked" if self.unchecked else "FAIL")
        text = f"{verdict}: {e.cluster} role {e.role} {wanted} {e.path}: has {','.join(self.got) or 'nothing'}"
        return f"{text}; {self.unchecked or self.why}"


def login_identity(role: Role) -> tuple[str, str]:
    """(namespace, ServiceAccount) `verify` logs a role in with, and expectations are checked as:
    the role's first concrete binding."""
    namespace = next((n for n in role.namespaces if n != "*"), PROBE_NAME)
    account = next((s for s in role.service_accounts if s != "*"), PROBE_NAME)
    return namespace, account


class RoleAccess:
    """One role's rendered policies, evaluated for its login identity."""

    def __init__(self, stack: ClusterStack, role: Role, policy_dir: Path):
        bodies = render_cluster_policies(stack, policy_dir)
        self.policies = {
            name: fill_mount_accessor(bodies[name], EXAMPLE_ACCESSOR)
            for name in stack.token_policies(role)
            if name in bodies
        }
        self.unmanaged = list(role.existing_policies)
        self.role = role
        self.login = login_identity(role)

    def decide(self, path: str, who: tuple[str, str] | None = None) -> acl.Decision:
        """The path's decision for the login of ServiceAccount `who` (namespace, name); default
        the one `verify` logs in with."""
        namespace, account = who or self.login
        identity = acl.alias_metadata(
            EXAMPLE_ACCESSOR, {"service_account_namespace": namespace, "service_account_name": account}
        )
        return acl.capabilities(self.policies, path, identity)

    def everyone(self, path: str) -> list[tuple[str, str]]:
        """Every ServiceAccount the role takes in, as far as a policy can tell them apart: each bound
        pair, and for a `*` binding every name the path itself holds (a templated segment grants a
        path only for a namespace or ServiceAccount named like one of its segments), login first."""
        segments = [s for s in path.split("/") if s]

        def names(bound: list[str]) -> list[str]:
            return [PROBE_NAME, *segments] if "*" in bound else list(bound)

        pairs = [(n, a) for n in names(self.role.namespaces) for a in names(self.role.service_accounts)]
        return [self.login, *(p for p in dict.fromkeys(pairs) if p != self.login)]


def holds(located: Located, capabilities: Iterable[str]) -> bool:
    caps = set(capabilities)
    if "root" in caps:
        caps = set(located.expectation.can) | set(located.expectation.cannot)
    e = located.expectation
    return set(e.can) <= caps and not set(e.cannot) & caps


def explain(decision: acl.Decision) -> str:
    if not decision.rules:
        return "no rule of the role's policies matches the path"
    return "decided by " + "; ".join(f'{policy}: path "{rule}"' for policy, rule in decision.rules)


def check_offline(located: Located, access: RoleAccess) -> Outcome:
    """`can` for the login's ServiceAccount (what verify checks live too); `cannot` for every one the
    role takes in: a templated path can grant one bound ServiceAccount what it denies another."""
    path = located.expectation.path
    decision, who = access.decide(path), ""
    got = tuple(c for c in decision.capabilities if c != "deny")
    ok = holds(located, got)
    if ok and located.expectation.cannot:
        for pair in access.everyone(path)[1:]:
            other = access.decide(path, pair)
            caps = tuple(c for c in other.capabilities if c != "deny")
            if not holds(located, caps) and set(located.expectation.cannot) & set(caps):
                decision, got, ok, who = other, caps, False, f" (as {pair[0]}/{pair[1]}, whom the role takes in)"
                break
    unchecked = ""
    if access.unmanaged and (located.expectation.cannot or not ok):
        # What a body in Vault grants could break a `cannot`, or satisfy a `can`.
        unchecked = f"the role also has {', '.join(access.unmanaged)}, whose bodies are Vault's: verify checks it live"
    return Outcome(located, ok, got, explain(decision) + who, unchecked)


def check_live(located: Located, access: RoleAccess, capabilities: list[str]) -> Outcome:
    """`capabilities`: what sys/capabilities-self answered for the path with the role's token."""
    got = tuple(sorted(c for c in capabilities if c != "deny"))
    return Outcome(located, holds(located, got), got, explain(access.decide(located.expectation.path)))
