"""A corpus of malformed inputs: each must be refused before anything reaches Vault or a cluster.

Each case edits the lab-a stack file's config (STACK) or replaces policies/kv-read.hcl (POLICY) in
a scratch copy of the project, and names what the error must mention (file and field).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

STACK_FILE = "stacks/Pulumi.lab-a.yaml"
POLICY_FILE = "policies/kv-read.hcl"


@dataclass(frozen=True)
class BadInput:
    name: str
    field: str  # what the message must name besides the file
    edit: Callable[[dict], None] | None = None  # mutates the stack file's `config:` mapping
    policy: str | None = None  # replaces policies/kv-read.hcl

    @property
    def file(self) -> str:
        return POLICY_FILE if self.policy is not None else STACK_FILE


def _role(**changes):
    def edit(config):
        config["vaultfleet:roles"][0].update(changes)

    return edit


def _role_drop(key):
    def edit(config):
        config["vaultfleet:roles"][0].pop(key)

    return edit


def _cluster(**changes):
    def edit(config):
        config["vaultfleet:cluster"].update(changes)

    return edit


def _set(key, value):
    def edit(config):
        config[key] = value

    return edit


def _rename(old, new):
    def edit(config):
        config[new] = config.pop(old)

    return edit


def _duplicate_role(config):
    config["vaultfleet:roles"].append(dict(config["vaultfleet:roles"][0]))


PEM_HEAD_ONLY = "-----BEGIN CERTIFICATE-----\nMIIB\n"

CASES = [
    # unknown keys and typos
    BadInput("key typo roles", "vaultfleet:role", _rename("vaultfleet:roles", "vaultfleet:role")),
    BadInput("key typo cluster", "vaultfleet:clusters", _rename("vaultfleet:cluster", "vaultfleet:clusters")),
    BadInput("role audiences", "vaultfleet:roles[0].audiences", _role(audiences="vault")),
    BadInput("role policy", "vaultfleet:roles[0].policy", _role(policy=["kv-read"])),
    BadInput("role serviceAccount", "vaultfleet:roles[0].serviceAccount", _role(serviceAccount=["app"])),
    BadInput("role namespace", "vaultfleet:roles[0].namespace", _role(namespace=["app"])),
    BadInput("role maxTTL", "vaultfleet:roles[0].maxTTL", _role(maxTTL="4h")),
    BadInput("role token_ttl", "vaultfleet:roles[0].token_ttl", _role(token_ttl="1h")),
    BadInput("cluster kubecontext", "vaultfleet:cluster.kubecontext", _cluster(kubecontext="lab-a")),
    BadInput("cluster caCertificate", "vaultfleet:cluster.caCertificate", _cluster(caCertificate="x")),
    # wrong types
    BadInput("roles not a list", "vaultfleet:roles", _set("vaultfleet:roles", "app")),
    BadInput("cluster not a mapping", "vaultfleet:cluster", _set("vaultfleet:cluster", "lab-a")),
    BadInput("serviceAccounts a string", "vaultfleet:roles[0].serviceAccounts", _role(serviceAccounts="app")),
    BadInput("namespaces a number", "vaultfleet:roles[0].namespaces", _role(namespaces=7)),
    BadInput("policies a mapping", "vaultfleet:roles[0].policies", _role(policies={"kv-read": True})),
    BadInput("ttl a boolean", "vaultfleet:roles[0].ttl", _role(ttl=True)),
    BadInput("template list a string", "vaultfleet:policies", _set("vaultfleet:policies", "kv-read")),
    # empty or invalid names
    BadInput("role name missing", "vaultfleet:roles[0].name", _role_drop("name")),
    BadInput("role name empty", "vaultfleet:roles[0].name", _role(name="")),
    BadInput("role name uppercase", "vaultfleet:roles[0].name", _role(name="App")),
    BadInput("role name underscore", "vaultfleet:roles[0].name", _role(name="my_app")),
    BadInput("serviceAccounts empty", "vaultfleet:roles[0].serviceAccounts", _role(serviceAccounts=[])),
    BadInput("namespaces empty", "vaultfleet:roles[0].namespaces", _role(namespaces=[])),
    BadInput("namespace invalid", "vaultfleet:roles[0].namespaces", _role(namespaces=["Bad_NS"])),
    BadInput("policies empty", "vaultfleet:roles[0].policies", _role(policies=[])),
    BadInput(
        "kubeContext missing", "vaultfleet:cluster.kubeContext", lambda c: c["vaultfleet:cluster"].pop("kubeContext")
    ),
    BadInput("kubeContext empty", "vaultfleet:cluster.kubeContext", _cluster(kubeContext="")),
    BadInput("mountPrefix uppercase", "vaultfleet:mountPrefix", _set("vaultfleet:mountPrefix", "K8S")),
    BadInput("kvMount empty", "vaultfleet:kvMount", _set("vaultfleet:kvMount", "")),
    BadInput("kind unknown", "vaultfleet:kind", _set("vaultfleet:kind", "sharded")),
    # negative, zero, oversized, malformed durations
    BadInput("ttl negative", "vaultfleet:roles[0].ttl", _role(ttl="-5m")),
    BadInput("ttl zero", "vaultfleet:roles[0].ttl", _role(ttl="0s")),
    BadInput("ttl oversized", "vaultfleet:roles[0].ttl", _role(ttl="400d")),
    BadInput("ttl words", "vaultfleet:roles[0].ttl", _role(ttl="1 hour")),
    BadInput("maxTtl below ttl", "vaultfleet:roles[0]", _role(ttl="2h", maxTtl="1h")),
    # bad URLs and certificates
    BadInput("apiHost ftp", "vaultfleet:cluster.apiHost", _cluster(apiHost="ftp://10.0.0.1")),
    BadInput("apiHost not a URL", "vaultfleet:cluster.apiHost", _cluster(apiHost="10.0.0.1:6443")),
    BadInput("vaultAddress no scheme", "vaultfleet:vaultAddress", _set("vaultfleet:vaultAddress", "vault:8200")),
    BadInput("caCert not PEM", "vaultfleet:cluster.caCert", _cluster(caCert="hello")),
    BadInput("caCert truncated", "vaultfleet:cluster.caCert", _cluster(caCert=PEM_HEAD_ONLY)),
    # duplicates and references
    BadInput("duplicate role", "vaultfleet:roles", _duplicate_role),
    BadInput("role names a policy not rendered", "roles[0].policies", _role(policies=["kv-admin"])),
    # database roles a cluster may read credentials of
    BadInput("databaseRoles a string", "vaultfleet:databaseRoles", _set("vaultfleet:databaseRoles", "app-readonly")),
    BadInput(
        "databaseRoles uppercase", "vaultfleet:databaseRoles[0]", _set("vaultfleet:databaseRoles", ["AppReadonly"])
    ),
    BadInput("databaseRoles duplicate", "vaultfleet:databaseRoles", _set("vaultfleet:databaseRoles", ["app", "app"])),
    BadInput("key typo databaseRole", "vaultfleet:databaseRole", _set("vaultfleet:databaseRole", ["app"])),
    BadInput(
        "database engine in a cluster stack", "vaultfleet:database", _set("vaultfleet:database", {"connections": []})
    ),
    BadInput("databaseMount uppercase", "vaultfleet:databaseMount", _set("vaultfleet:databaseMount", "DB")),
    # policy templates
    BadInput("HCL syntax error", POLICY_FILE, policy='path "kv/data/*" {\n  capabilities = ["read"]\n'),
    BadInput("unknown capability", POLICY_FILE, policy='path "kv/data/*" { capabilities = ["reed"] }'),
    BadInput("empty path", POLICY_FILE, policy='path "" { capabilities = ["read"] }'),
    BadInput("capabilities not a list", POLICY_FILE, policy='path "kv/data/*" { capabilities = "read" }'),
    BadInput("no path block", POLICY_FILE, policy="# grants nothing\n"),
    BadInput("unknown placeholder", POLICY_FILE, policy='path "${kv}/data/*" { capabilities = ["read"] }'),
    BadInput("glob inside a path", POLICY_FILE, policy='path "kv/*/data" { capabilities = ["read"] }'),
    BadInput("unknown block", POLICY_FILE, policy='paths "kv/data/*" { capabilities = ["read"] }'),
]
