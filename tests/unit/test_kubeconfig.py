"""Real clusters' kubeconfigs (issue 30): a user whose credentials come from an `exec` plugin (as
`aws eks get-token` and `gke-gcloud-auth-plugin` write them) and a merged $KUBECONFIG list, where the
context, its cluster and its user may each be in another file. What vaultfleet builds from them
itself: the kubernetes client of verify, adopt and jwt mode's key read (`context_client`), the API
server and CA of onboard and the program (`read_context`), and what the program gives the
kubernetes provider (`provider_kubeconfig`). tests/lab/test_exec_credentials.py runs them on the lab."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes.config.config_exception import ConfigException

from vaultfleet.kube import context_client
from vaultfleet.kubeconfig import provider_kubeconfig, read_context

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
SERVER = "https://127.0.0.1:16448"


def plugin(tmp_path: Path, token: str) -> Path:
    """An exec plugin that prints an ExecCredential with `token`, and records each run's
    KUBERNETES_EXEC_INFO in runs.jsonl beside it."""
    path = tmp_path / "plugin"
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, os, pathlib\n"
        "runs = pathlib.Path(__file__).with_name('runs.jsonl')\n"
        "with runs.open('a') as f:\n"
        "    f.write(os.environ.get('KUBERNETES_EXEC_INFO', '{}') + '\\n')\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',\n"
        f"                  'status': {{'token': {token!r}}}}}))\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def merged_list(tmp_path: Path, command: Path) -> str:
    """Two files: `users.yaml` (first) holds the exec user and another cluster's context; `eks.yaml`
    holds the context `eks` and its cluster, whose user is in the other file."""
    users = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "other", "cluster": {"server": "https://other.example:443"}}],
        "users": [
            {
                "name": "eks-exec",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": str(command),
                        "args": ["token", "-i", "eks"],
                        "interactiveMode": "Never",
                    }
                },
            },
            {"name": "other-admin", "user": {"token": "other-token"}},
        ],
        "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other-admin"}}],
        "current-context": "other",
    }
    eks = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "eks",
                "cluster": {"server": SERVER, "certificate-authority-data": base64.b64encode(CA.encode()).decode()},
            }
        ],
        "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "eks-exec"}}],
    }
    (tmp_path / "users.yaml").write_text(yaml.safe_dump(users))
    (tmp_path / "eks.yaml").write_text(yaml.safe_dump(eks))
    return os.pathsep.join([str(tmp_path / "users.yaml"), str(tmp_path / "missing.yaml"), str(tmp_path / "eks.yaml")])


def test_a_context_in_the_second_file_of_the_list_authenticates_with_its_exec_plugin(tmp_path, monkeypatch):
    command = plugin(tmp_path, "exec-token-1")
    monkeypatch.setenv("KUBECONFIG", merged_list(tmp_path, command))
    api = context_client("eks")
    # The context and the cluster of the last file, the user of the first: the plugin ran once, non
    # interactive, and its token is what the client sends.
    assert api.configuration.host == SERVER
    assert api.configuration.api_key["BearerToken"] == "Bearer exec-token-1"
    assert Path(api.configuration.ssl_ca_cert).read_text() == CA
    (run,) = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert run["apiVersion"] == "client.authentication.k8s.io/v1" and run["kind"] == "ExecCredential"
    # The first file's own context is still there, with its own user.
    assert context_client("other").configuration.api_key["BearerToken"] == "Bearer other-token"


def test_a_context_no_file_of_the_list_names_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", merged_list(tmp_path, plugin(tmp_path, "t")))
    with pytest.raises(ConfigException, match="nowhere"):
        context_client("nowhere")
    assert not (tmp_path / "runs.jsonl").exists()


def test_read_context_takes_the_server_and_ca_across_the_list_whatever_the_user(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", merged_list(tmp_path, tmp_path / "never-run"))
    endpoint = read_context("eks")
    assert (endpoint.server, endpoint.ca_pem) == (SERVER, CA)


@pytest.mark.parametrize(
    ("value", "given"),
    [
        (None, None),  # unset: the SDK passes nothing, the provider reads ~/.kube/config
        ("/home/me/.kube/config", None),  # one file: the SDK passes its path, as it always did
        ("/a/users.yaml:/a/eks.yaml", ""),  # a list: the provider loads $KUBECONFIG with client-go's rules
        ("/a/eks.yaml:", ""),
    ],
)
def test_the_provider_is_given_no_list_it_would_parse_as_a_kubeconfigs_contents(monkeypatch, value, given):
    if value is None:
        monkeypatch.delenv("KUBECONFIG", raising=False)
    else:
        monkeypatch.setenv("KUBECONFIG", value)
    assert provider_kubeconfig() == given
