"""The lab itself: real kube-apiservers, controller managers and a Vault-compatible server."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import hvac
import pytest
from kubernetes import client

from tests.harness import root_client
from tests.lab import k8s
from vaultfleet.lab import processes
from vaultfleet.lab.record import LabState

# `server` per test: the server check and the hand-made mounts' logins are server-dependent; the
# controller manager's token, the second lab's lifecycle and ports, and PostgreSQL are not (the
# second lab starts the session's server, but what it checks is the lab's own process and port
# bookkeeping; the server starting at all is what every session's own lab shows).
pytestmark = pytest.mark.lab


def _reviewer(api, namespace="kube-system", name=None) -> str:
    """A ServiceAccount bound to system:auth-delegator and its long-lived token (from a Secret)."""
    name = name or f"reviewer-{uuid.uuid4().hex[:6]}"
    k8s.ensure_service_account(api, namespace, name)
    client.RbacAuthorizationV1Api(api).create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
        )
    )
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, annotations={"kubernetes.io/service-account.name": name}),
            type="kubernetes.io/service-account-token",
        ),
    )
    return k8s.wait_for_secret_token(api, namespace, name)


@pytest.mark.server
def test_the_lab_runs_the_server_this_session_tests(lab, lab_server):
    """$VAULTFLEET_LAB_SERVER decides which product answers: the running process is the binary
    lab.json names, and that binary, the API and lab.json agree on the version."""
    state = LabState.load()  # fresh: test_fleet restarts the server under a new PID
    assert (state.vault_server, Path(state.vault_cli).name) == (lab_server.name, lab_server.binary)
    proc = next(p for p in state.processes if p.name == "vault")
    assert os.readlink(f"/proc/{proc.pid}/exe") == os.path.realpath(state.vault_cli)
    version = subprocess.run([state.vault_cli, "version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith(f"{lab_server.banner} v{state.vault_version} ("), version
    assert hvac.Client(url=state.vault_addr).sys.read_seal_status()["version"] == state.vault_version


def test_token_secret_is_filled_by_the_controller_manager(lab):
    api = k8s.api_client(str(lab.kubeconfig), "lab-a")
    token = _reviewer(api)
    assert token.count(".") == 2  # a JWT, signed by lab-a's key


@pytest.mark.server
def test_token_of_one_cluster_is_accepted_by_its_mount_and_rejected_by_the_other(lab):
    vault = root_client(lab)
    suffix = uuid.uuid4().hex[:6]
    mounts = {}
    for cluster in ("lab-a", "lab-b"):
        api = k8s.api_client(str(lab.kubeconfig), cluster)
        info = next(c for c in lab.clusters if c.name == cluster)
        mount = f"hand-{cluster}-{suffix}"
        vault.sys.enable_auth_method("kubernetes", path=mount)
        vault.auth.kubernetes.configure(
            kubernetes_host=info.server,
            kubernetes_ca_cert=lab.pki(cluster).ca_cert.read_text(),
            token_reviewer_jwt=_reviewer(api),
            mount_point=mount,
        )
        vault.auth.kubernetes.create_role(
            "app",
            bound_service_account_names=["app"],
            bound_service_account_namespaces=["hand"],
            policies=["default"],
            mount_point=mount,
            audience="vault",
        )
        mounts[cluster] = mount
    try:
        api_a = k8s.api_client(str(lab.kubeconfig), "lab-a")
        k8s.ensure_service_account(api_a, "hand", "app")
        jwt = k8s.request_token(api_a, "hand", "app", audience="vault")

        login = hvac.Client(url=lab.vault_addr).auth.kubernetes.login("app", jwt, mount_point=mounts["lab-a"])
        assert login["auth"]["metadata"]["service_account_name"] == "app"

        with pytest.raises(hvac.exceptions.Forbidden):
            hvac.Client(url=lab.vault_addr).auth.kubernetes.login("app", jwt, mount_point=mounts["lab-b"])
    finally:
        for mount in mounts.values():
            vault.sys.disable_auth_method(mount)


def test_lab_down_leaves_no_process_and_frees_its_ports(tmp_path):
    """A second, one-cluster lab beside the session's, on shifted ports, brought up and down: an HA
    one (`--ha`: three nodes and HAProxy), the lab with the most processes and ports."""
    import json

    env = {
        **os.environ,
        "VAULTFLEET_LAB_DIR": str(tmp_path / "lab2"),
        "VAULTFLEET_LAB_PORT_OFFSET": "100",
        "VAULTFLEET_CONFIG_DIR": str(tmp_path / "config"),
    }
    code = (
        "import json; from vaultfleet.lab import lab, servers; "
        "s = lab.up(1, echo=None, server=servers.from_env(), high_availability=True); "
        "print(json.dumps({'procs': [p.to_json() for p in s.processes], 'postgres': s.postgres.directory}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    started = json.loads(out.stdout.strip().splitlines()[-1])
    procs = [processes.Tracked(**p) for p in started["procs"]]
    # HAProxy, three nodes (API and cluster ports), etcd, one apiserver and controller manager, PostgreSQL.
    ports = [18300, 18310, 18311, 18320, 18321, 18330, 18331, 18479, 18480, 16543, 17543, 18532]
    assert len(procs) == 8 and all(processes.is_running(p) for p in procs)
    assert Path(started["postgres"], "data", "PG_VERSION").exists()
    assert not any(processes.port_is_free(port) for port in ports)
    cli = [sys.executable, "-m", "vaultfleet.cli", "lab"]
    status = subprocess.run([*cli, "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    rows = {r["component"]: r["healthy"] for r in json.loads(status.stdout)}
    assert status.returncode == 0 and {"vault-1", "vault-2", "vault-3", "vault-lb"} <= set(rows), rows
    # Clients use one address, the balancer's, which serves the active node: the usual 18200 + offset.
    with urllib.request.urlopen("http://127.0.0.1:18300/v1/sys/leader", timeout=5) as answer:
        assert json.loads(answer.read())["leader_address"] in {f"http://127.0.0.1:{p}" for p in (18310, 18320, 18330)}
    lab_env = subprocess.run([*cli, "env"], env=env, capture_output=True, text=True, timeout=60).stdout
    assert "export VAULT_ADDR=http://127.0.0.1:18300\n" in lab_env

    down = subprocess.run([*cli, "down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not any(processes.is_running(p) for p in procs)
    assert all(processes.port_is_free(port) for port in ports)
    assert not (tmp_path / "lab2").exists()
    assert not Path(started["postgres"]).exists()  # a root lab keeps the data outside the lab dir


def test_lab_up_refuses_a_taken_port_and_starts_nothing(tmp_path):
    import socket

    env = {
        **os.environ,
        "VAULTFLEET_LAB_DIR": str(tmp_path / "lab3"),
        "VAULTFLEET_LAB_PORT_OFFSET": "200",
        "VAULTFLEET_CONFIG_DIR": str(tmp_path / "config"),
    }
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 18400))  # the shifted Vault port
        blocker.listen()
        out = subprocess.run(
            [sys.executable, "-m", "vaultfleet.cli", "lab", "up", "--clusters", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 2
    assert "127.0.0.1:18400 (vault)" in out.stderr
    assert not (tmp_path / "lab3" / "lab.json").exists()


def test_postgres_runs_unprivileged_and_takes_only_its_password(lab):
    import stat

    import psycopg
    from typer.testing import CliRunner

    from vaultfleet.cli import app
    from vaultfleet.lab import lab as lab_module

    pg = lab.postgres
    assert pg is not None and (pg.host, pg.port) == (
        "127.0.0.1",
        18432 + int(os.environ.get("VAULTFLEET_LAB_PORT_OFFSET", "0")),
    )
    proc = next(p for p in lab.processes if p.name == "postgres")
    # The tracked PID is the postmaster itself (setpriv and env exec it), never running as root.
    assert os.readlink(f"/proc/{proc.pid}/exe").endswith("/bin/postgres")
    uids = next(line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if line.startswith("Uid:"))
    assert "0" not in uids.split()[1:]
    assert stat.S_IMODE(os.stat(pg.password_file).st_mode) == 0o600

    with psycopg.connect(**pg.connect_kwargs()) as conn:
        listen, version = conn.execute(
            "SELECT current_setting('listen_addresses'), current_setting('server_version_num')"
        ).fetchone()
    assert listen == "127.0.0.1" and int(version) >= 150000
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**pg.connect_kwargs(user=pg.superuser, password="not-the-password"))

    assert {"component": "postgres", "pid": proc.pid, "running": True, "healthy": True} in lab_module.status()
    env = CliRunner().invoke(app, ["lab", "env"])
    assert env.exit_code == 0, env.output
    assert f"export PGPORT={pg.port}" in env.output and f'export PGPASSWORD="$(cat {pg.password_file})"' in env.output
    assert pg.password() not in env.output
