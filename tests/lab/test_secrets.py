"""After a full run of the CLI (up, preview, verify, destroy), no secret is anywhere in plaintext.

Secrets: the reviewer JWTs the clusters issued, the Vault root token, the provisioner token the
cluster stacks ran with, and the Pulumi passphrase. Places: every output of the CLI (stdout and
stderr, as CI would log them), `pulumi stack export` taken while the stacks were up, every file of
the state backend (checkpoints, history, backups), the engine's and the lab servers' logs, the
project's stack files and Pulumi's home directory.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import hvac
import pytest

from tests.lab import k8s
from tests.lab.conftest import REPO, copy_project

pytestmark = pytest.mark.lab
CLUSTERS = ["lab-a", "lab-b"]


def _texts_under(root: Path, since: float | None = None) -> dict[str, str]:
    texts = {}
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 20_000_000:
            continue
        if since is not None and path.stat().st_mtime < since:
            continue
        if path.suffix in (".so", ".whl") or "plugins" in path.parts:
            continue
        texts[str(path)] = path.read_text(errors="replace")
    return texts


def test_a_full_cli_run_leaves_no_secret_in_plaintext(lab, lab_env, tmp_path):
    started = time.time()
    project = copy_project(tmp_path)
    root = hvac.Client(url=lab.vault_addr, token=lab.vault_token())
    cli = str(REPO / ".venv/bin/vaultfleet")
    outputs: dict[str, str] = {}

    def run(args: list[str], token: str) -> None:
        env = {**lab_env, "VAULTFLEET_PROJECT": str(project), "VAULT_TOKEN": token}
        done = subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=900, cwd=project)
        outputs[f"vaultfleet {' '.join(args)}"] = done.stdout + done.stderr
        assert done.returncode == 0, done.stdout + done.stderr

    run(["up", "vault"], lab.vault_token())  # the shared stack writes the provisioner policy (admin)
    provisioner = root.auth.token.create(policies=["vaultfleet-provisioner"], ttl="1h")["auth"]["client_token"]
    try:
        run(["up", *CLUSTERS, "--format", "json"], provisioner)
        reviewer_jwts = [
            k8s.wait_for_secret_token(k8s.api_client(str(lab.kubeconfig), c), "kube-system", "vault-auth-token")
            for c in CLUSTERS
        ]
        env = {**lab_env, "VAULT_TOKEN": provisioner}
        exports = {}
        for name in ["vault", *CLUSTERS]:
            done = subprocess.run(
                ["pulumi", "stack", "export", "-s", name],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            exports[f"pulumi stack export -s {name}"] = done.stdout
        # The provisioner manages cluster stacks only: the shared stack is previewed by the admin.
        run(["preview", *CLUSTERS, "--refresh", "--format", "markdown"], provisioner)
        run(["preview", "vault", "--refresh"], lab.vault_token())
        run(["verify", "lab-a"], provisioner)
        run(["destroy", *CLUSTERS, "--yes"], provisioner)
        run(["destroy", "vault", "--yes"], lab.vault_token())
    finally:
        root.auth.token.revoke(provisioner)

    secrets = {
        **{f"reviewer JWT of {c}": jwt for c, jwt in zip(CLUSTERS, reviewer_jwts, strict=True)},
        "Vault root token": lab.vault_token(),
        "provisioner token": provisioner,
        "Pulumi passphrase": lab.passphrase_file.read_text().strip(),
    }
    places = {**outputs, **exports}
    places.update(_texts_under(Path(lab.backend_url.removeprefix("file://"))))
    places.update(_texts_under(lab.directory / "logs"))
    places.update(_texts_under(project / "stacks"))
    places.update(_texts_under(Path.home() / ".pulumi", since=started))
    # The scan looks where it should: the state and the exports hold the encrypted reviewer JWT.
    assert any("history" in p for p in places) and any('"ciphertext"' in t for t in exports.values())
    assert "ok   lab-a/app" in outputs["vaultfleet verify lab-a"]
    for what, secret in secrets.items():
        assert len(secret) >= 20, what
        leaks = [place for place, text in places.items() if secret in text]
        assert not leaks, f"{what} in plaintext in {leaks}"
