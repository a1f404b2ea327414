"""After a full run of the CLI (up, preview, verify, destroy), no secret is anywhere in plaintext.

Secrets: the reviewer JWTs the clusters issued, the Vault root token, the applier token the
cluster stacks ran with, and the lab PostgreSQL's superuser password; each in every form it is
commonly written in (as is, base64 at any alignment, URL-encoded, JSON-escaped: tests/leaks.py).
(The lab's Pulumi passphrase is public by design, docs/lab.md.) Places: every output of the CLI (stdout and
stderr, as CI would log them), `pulumi stack export` taken while the stacks were up, every file of
the state backend (checkpoints, history, backups), the engine's and the lab servers' logs, the
project's stack files and Pulumi's home directory.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.harness import REPO, copy_project, plain_stack_export, root_client, vault_token
from tests.lab import k8s
from tests.leaks import leaks

# Server-dependent: the state holds what the provider read back from the server, and the server's
# own log is among the places searched.
pytestmark = [pytest.mark.lab, pytest.mark.server]
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
    root = root_client(lab)
    cli = str(REPO / ".venv/bin/vaultfleet")
    outputs: dict[str, str] = {}

    def run(args: list[str], token: str) -> None:
        env = {**lab_env, "VAULTFLEET_PROJECT": str(project), "VAULT_TOKEN": token}
        done = subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=900, cwd=project)
        outputs[f"vaultfleet {' '.join(args)}"] = done.stdout + done.stderr
        assert done.returncode == 0, done.stdout + done.stderr

    run(["up", "vault"], lab.vault_token())  # the shared stack writes the applier policies (admin)
    with vault_token(root, [f"vaultfleet-apply-{c}" for c in CLUSTERS], "1h") as applier:
        run(["up", *CLUSTERS, "--format", "json"], applier)
        reviewer_jwts = [
            k8s.wait_for_secret_token(k8s.api_client(str(lab.kubeconfig), c), "kube-system", "vault-auth-token")
            for c in CLUSTERS
        ]
        env = {**lab_env, "VAULT_TOKEN": applier}
        exports = {f"pulumi stack export -s {n}": plain_stack_export(project, n, env) for n in ["vault", *CLUSTERS]}
        # The appliers manage cluster stacks only: the shared stack is previewed by the admin.
        run(["preview", *CLUSTERS, "--refresh", "--format", "markdown"], applier)
        run(["preview", "vault", "--refresh"], lab.vault_token())
        run(["verify", "lab-a"], applier)
        run(["destroy", *CLUSTERS, "--yes"], applier)
        run(["destroy", "vault", "--yes"], lab.vault_token())

    secrets = {
        **{f"reviewer JWT of {c}": jwt for c, jwt in zip(CLUSTERS, reviewer_jwts, strict=True)},
        "Vault root token": lab.vault_token(),
        "applier token": applier,
    }
    if lab.postgres is not None:
        secrets["PostgreSQL superuser password"] = lab.postgres.password()
    places = {**outputs, **exports}
    places.update(_texts_under(Path(lab.backend_url.removeprefix("file://"))))
    places.update(_texts_under(lab.directory / "logs"))
    places.update(_texts_under(project / "stacks"))
    places.update(_texts_under(Path.home() / ".pulumi", since=started))
    # The scan looks where it should: the state and the exports hold the encrypted reviewer JWT.
    assert any("history" in p for p in places) and any('"ciphertext"' in t for t in exports.values())
    assert "ok   lab-a/app" in outputs["vaultfleet verify lab-a"]
    assert all(len(secret) >= 20 for secret in secrets.values())
    found = leaks(secrets, places)
    assert not found, "\n".join(found)
