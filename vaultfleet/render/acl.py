"""Vault's ACL, offline: the capabilities a token holding exactly some policies has on a path, and
the policy rules that decided it, as `sys/capabilities` answers (tests/lab/test_acl_corpus.py holds
the two to the same answers on OpenBao 2.4 and HashiCorp Vault 1.14.1).

Followed from the servers' source (OpenBao v2.4 and Vault v1.14.1 agree except where noted):
- vault/policy.go `parsePaths`: templates filled first (a rule whose template cannot be resolved is
  skipped), one leading `/` dropped, `+*` refused; a path with a `+` segment is a wildcard path (a
  trailing `*` kept in it), else a trailing `*` makes a prefix path, else the path is exact; `deny`
  among the capabilities leaves only `deny`; the old `policy = "read"` shorthand.
- vault/acl.go `NewACL`: every policy's rules go into one table per kind, keyed by the path string;
  the same string from several rules merges its capabilities, and a `deny` replaces them all.
- vault/acl.go `AllowOperation` as `Capabilities` calls it (a list operation): the exact rule, then
  the exact rule without one trailing `/`, then (OpenBao, and Vault since hashicorp/vault#23874) the
  non-exact rules on the path without its trailing `/`, then the non-exact rules on the path.
- vault/acl.go `CheckAllowedFromNonExactPaths`: the longest prefix rule and every matching wildcard
  rule compete; the later first `+` or `*` wins, then a non-prefix rule, then fewer `+` segments, then
  the longer path, then the lexically greater one.
- vault/capabilities.go: `["root"]` for root, `["deny"]` when nothing matched or the rule grants
  nothing, else the capabilities sorted.

A token's `default` policy, identity-group policies and inline policy are the caller's to include.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hcl.lexer import Lexer

from vaultfleet.render.policy import CAPABILITIES, RESTRICTING_KEYS, PathRule, PolicyError, _hcl_parser

# vaultfleet's check knows Vault's capabilities; OpenBao 2.x adds `scan`. A server refuses, at write,
# a policy with one it does not know (Vault 1.14.1 knows neither subscribe, recover nor scan).
KNOWN_CAPABILITIES = CAPABILITIES | {"scan"}

# The pre-capabilities shorthand `policy = "..."`, added to the rule's capabilities (policy.go).
_SHORTHAND = {
    "read": ("read", "list"),
    "write": ("create", "read", "update", "delete", "list"),
    "sudo": ("create", "read", "update", "delete", "list", "sudo"),
}

# What a path block may hold on either server (policy.go `parsePaths`, CheckHCLKeys); the others
# only restrict requests (parameters, wrapping, MFA, pagination), never sys/capabilities' answer.
_PATH_KEYS = RESTRICTING_KEYS | {"capabilities", "policy"}


@dataclass(frozen=True)
class Decision:
    capabilities: tuple[str, ...]
    """Sorted, as sys/capabilities returns them: ("deny",) when nothing grants, ("root",) for root."""
    rules: tuple[tuple[str, str], ...]
    """(policy name, rule path as written) of every rule merged into the winning path string: the
    `deny` rules alone when one denies; empty when no rule matched (and ("root", "") for root)."""


@dataclass
class _Entry:
    """One path string of the merged ACL (acl.go ACLPermissions, reduced to what decides access)."""

    capabilities: set[str]
    rules: list[tuple[str, str]] = field(default_factory=list)

    def merge(self, policy: str, rule: PathRule) -> None:
        caps = set(rule.capabilities)
        if "deny" in self.capabilities:
            if "deny" in caps:  # another denier: named too, it decides as much as the first
                self.rules.append((policy, rule.path))
        elif "deny" in caps:
            self.capabilities, self.rules = {"deny"}, [(policy, rule.path)]
        else:
            self.capabilities |= caps
            self.rules.append((policy, rule.path))


class Acl:
    """The ACL of a token holding exactly `policies` (name -> HCL body), built once for many paths.

    `identity` fills the templates: "identity.entity.name" -> value, and so on for
    identity.entity.id, identity.entity.metadata.<key> and identity.entity.aliases.<accessor>.metadata.<key>
    (see alias_metadata); None is a token without an entity. A template it does not fill makes the
    server skip the rule, and so does this.

    `trailing_slash_globs`: a path ending in `/` first tries the glob and `+` rules without that `/`
    (OpenBao, and Vault since hashicorp/vault#23874, Oct 2023). Vault 1.14.1 predates it: False.
    """

    def __init__(
        self,
        policies: Mapping[str, str],
        identity: Mapping[str, str] | None = None,
        *,
        trailing_slash_globs: bool = True,
    ):
        self._trailing_slash_globs = trailing_slash_globs
        self._root = any(name.lower() == "root" for name in policies)
        if self._root and len(policies) != 1:
            raise PolicyError("root", "other policies present along with root (the server refuses such a token)")
        self._exact: dict[str, _Entry] = {}
        self._prefix: dict[str, _Entry] = {}
        self._wildcard: dict[str, _Entry] = {}
        if self._root:
            return  # the root policy has no rules: it is allowed everything
        for name, body in policies.items():
            for rule in rules(body, name):
                path = _fill(rule.path, identity or {}, name)
                if path is not None:
                    self._add(name, rule, path)

    def _add(self, policy: str, rule: PathRule, path: str) -> None:
        path = path.removeprefix("/")  # once, as policy.go does; a request path loses all of them
        if "+*" in path:
            raise PolicyError(policy, f"path \"{path}\": invalid use of wildcards ('+*' is forbidden)")
        if path == "+" or "/+" in path or path.startswith("+/"):
            table = self._wildcard  # keyed with its trailing `*`, if any
        elif path.endswith("*"):
            table, path = self._prefix, path[:-1]
        else:
            table = self._exact
        if path in table:
            table[path].merge(policy, rule)
        else:
            caps = {"deny"} if "deny" in rule.capabilities else set(rule.capabilities)
            table[path] = _Entry(caps, [(policy, rule.path)])

    def capabilities(self, path: str) -> Decision:
        if self._root:
            return Decision(("root",), (("root", ""),))
        entry = self._lookup(path.lstrip("/"))
        if entry is None:
            return Decision(("deny",), ())
        if "deny" in entry.capabilities or not entry.capabilities:
            return Decision(("deny",), tuple(entry.rules))
        return Decision(tuple(sorted(entry.capabilities)), tuple(entry.rules))

    def _lookup(self, path: str) -> _Entry | None:
        exact = self._exact.get(path)
        if exact is None:
            exact = self._exact.get(path.removesuffix("/"))
        if exact is not None:
            return exact
        if self._trailing_slash_globs and path.endswith("/"):
            found = self._non_exact(path[:-1])
            if found is not None:
                return found
        return self._non_exact(path)

    def _non_exact(self, path: str) -> _Entry | None:
        # Candidates keyed by acl.go's priority, highest wins: (position of the first `+` or `*`,
        # not a prefix, fewer `+` segments, longer path, lexically greater path).
        candidates: list[tuple[tuple[int, bool, int, int, str], _Entry]] = []
        prefixes = [p for p in self._prefix if path.startswith(p)]
        if prefixes:
            longest = max(prefixes, key=len)  # only the radix tree's longest prefix competes
            candidates.append(((len(longest), False, 0, len(longest), longest), self._prefix[longest]))
        parts = path.split("/")
        for pattern, entry in self._wildcard.items():
            priority = _wildcard_priority(pattern, parts)
            if priority is not None:
                candidates.append((priority, entry))
        if not candidates:
            return None
        return max(candidates, key=lambda candidate: candidate[0])[1]


def _wildcard_priority(pattern: str, parts: list[str]) -> tuple[int, bool, int, int, str] | None:
    """The priority of a wildcard path matching the request path's segments, None if it does not
    match (acl.go CheckAllowedFromNonExactPaths)."""
    is_prefix = pattern.endswith("*")
    stem = pattern[:-1] if is_prefix else pattern
    segments = stem.split("/")
    if len(parts) < len(segments) or (not is_prefix and len(parts) != len(segments)):
        return None
    wildcards = 0
    for i, segment in enumerate(segments):
        if segment == "+":
            wildcards += 1
        elif segment != parts[i] and not (is_prefix and i == len(segments) - 1 and parts[i].startswith(segment)):
            return None
    return (pattern.index("+"), not is_prefix, -wildcards, len(stem), stem)


def capabilities(
    policies: Mapping[str, str],
    path: str,
    identity: Mapping[str, str] | None = None,
    *,
    trailing_slash_globs: bool = True,
) -> Decision:
    """The capabilities of a token holding exactly `policies` on `path` (see Acl for many paths)."""
    return Acl(policies, identity, trailing_slash_globs=trailing_slash_globs).capabilities(path)


def alias_metadata(accessor: str, metadata: Mapping[str, str]) -> dict[str, str]:
    """Identity entries for an entity alias's metadata on the auth mount `accessor` (a kubernetes
    login sets service_account_namespace, service_account_name, ...): what kv-namespace.hcl reads."""
    return {f"identity.entity.aliases.{accessor}.metadata.{key}": value for key, value in metadata.items()}


def identity_from_entity(entity: Mapping[str, Any]) -> dict[str, str]:
    """Identity entries for an entity as the server returns it (`identity/entity/id/<id>`'s data):
    its id, name and metadata, and each alias's id, name, metadata and custom metadata."""
    found = {"identity.entity.id": entity["id"], "identity.entity.name": entity["name"]}
    found |= {f"identity.entity.metadata.{key}": value for key, value in (entity.get("metadata") or {}).items()}
    for alias in entity.get("aliases") or []:
        prefix = f"identity.entity.aliases.{alias['mount_accessor']}"
        found |= {f"{prefix}.id": alias["id"], f"{prefix}.name": alias["name"]}
        found |= alias_metadata(alias["mount_accessor"], alias.get("metadata") or {})
        found |= {
            f"{prefix}.custom_metadata.{key}": value for key, value in (alias.get("custom_metadata") or {}).items()
        }
    return found


@functools.lru_cache(maxsize=1024)
def rules(body: str, source: str) -> tuple[PathRule, ...]:
    """The path rules of a policy body as the server stores them: every block in order (a path
    written twice kept twice), the shorthand expanded, `deny` alone when present; PolicyError for
    what the server refuses at write. Unlike policy.parse_rules, no vaultfleet checks: an empty
    capability list, a `*` inside a path or a body without rules are Vault's to accept. Cached:
    an Acl per token of one fleet reads the same bodies many times."""
    found = []
    for path, block in _path_blocks(body, source):
        if not isinstance(block, dict):
            raise PolicyError(source, f'path "{path}": not a block')
        unknown = sorted(set(block) - _PATH_KEYS)
        if "expiration" in unknown:
            raise PolicyError(source, f'path "{path}": an expiring rule (OpenBao `expiration`) is not modelled')
        if unknown:
            raise PolicyError(source, f'path "{path}": unknown keys {unknown}')
        caps = block.get("capabilities", [])
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise PolicyError(source, f'path "{path}": `capabilities` must be a list of strings')
        shorthand = block.get("policy")
        if shorthand == "deny":
            caps = ["deny"]
        elif shorthand:
            if shorthand not in _SHORTHAND:
                raise PolicyError(source, f'path "{path}": invalid policy "{shorthand}"')
            caps = [*caps, *_SHORTHAND[shorthand]]
        bad = sorted(set(caps) - KNOWN_CAPABILITIES)
        if bad:
            raise PolicyError(source, f'path "{path}": invalid capabilities {bad}')
        _fill(path, {}, source)  # refuses unbalanced braces, as the server does at write
        found.append(PathRule(path, ("deny",) if "deny" in caps else tuple(dict.fromkeys(caps))))
    return tuple(found)


def _path_blocks(body: str, source: str) -> list[tuple[str, object]]:
    """(path, block) for every `path` block in order. pyhcl merges a repeated path's blocks key by
    key (the later capabilities replace the earlier), where Vault's HCL keeps both blocks and NewACL
    merges their capabilities: so each top-level `path` block is parsed on its own."""
    json_form = body.lstrip().startswith("{")  # the servers read JSON policies too (HCL v1)
    parser = _hcl_parser()
    try:
        document = json.loads(body) if json_form else parser.parse(body)
    except ValueError as exc:  # pyhcl's errors and JSONDecodeError, with line/column in the text
        raise PolicyError(source, f"HCL does not parse: {exc}") from None
    unknown = sorted(set(document) - {"name", "path"})
    if unknown:
        raise PolicyError(source, f"unknown top-level keys {unknown}")
    if json_form:
        return list((document.get("path") or {}).items())
    merged = document.get("path") or {}
    if not isinstance(merged, dict):
        raise PolicyError(source, "`path` must hold blocks")
    keys, spans = _top_level_paths(body)
    if keys == list(merged):  # no path written twice: pyhcl's reading is the server's
        return list(merged.items())
    blocks = [item for span in spans for item in parser.parse(span)["path"].items()]
    if {path for path, _ in blocks} != set(merged):  # a form the scan misread: never drop a rule
        raise PolicyError(source, 'cannot read the `path` blocks one by one (write them as `path "..." { ... }`)')
    return blocks


@functools.cache
def _lexer() -> Lexer:
    # Building a pyhcl lexer takes milliseconds (PLY compiles its rules); input() resets one.
    return Lexer()


def _top_level_paths(body: str) -> tuple[list[str | None], list[str]]:
    """The key of each top-level `path "<key>" { ... }` (None for another form) and its text."""
    lexer = _lexer()
    lexer.input(body)
    keys, spans, depth, start, after_path = [], [], 0, None, False
    for token in iter(lexer.token, None):
        if after_path:
            keys.append(token.value if token.type == "STRING" else None)
        after_path = depth == 0 and token.type == "IDENTIFIER" and token.value == "path"
        if token.type in ("LEFTBRACE", "LEFTBRACKET"):
            depth += 1
        elif token.type in ("RIGHTBRACE", "RIGHTBRACKET"):
            depth -= 1
            if depth == 0 and start is not None:
                spans.append(body[start : token.lexpos + 1])
                start = None
        elif after_path:
            start = token.lexpos
    return keys, spans


def _fill(path: str, identity: Mapping[str, str], source: str) -> str | None:
    """`path` with its {{...}} templates filled (sdk/helper/identitytpl PopulateString, ACL mode);
    None when one cannot be: the server then skips the rule (policy.go parsePaths)."""
    pieces = path.split("{{")
    if "}}" in pieces[0]:
        raise PolicyError(source, f'path "{path}": unbalanced templating characters')
    filled = [pieces[0]]
    for piece in pieces[1:]:
        inner = piece.split("}}")
        if len(inner) != 2:
            raise PolicyError(source, f'path "{path}": unbalanced templating characters')
        expression = inner[0].strip()
        value = identity.get(expression)
        # identitytpl: an empty name or id is "not found"; an empty metadata value is a value.
        if value is None or (value == "" and "metadata." not in expression):
            return None
        filled += [value, inner[1]]
    return "".join(filled)
