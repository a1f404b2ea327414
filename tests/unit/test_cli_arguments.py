"""Hostile or careless command-line arguments: refused with a clear error, nothing written anywhere."""

import base64
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vaultfleet.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and ".git/" not in str(p)}


@pytest.fixture()
def project(tmp_path, monkeypatch):
    import shutil

    dest = tmp_path / "project"
    dest.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", dest)
    shutil.copytree(REPO / "stacks", dest / "stacks")
    shutil.copytree(REPO / "policies", dest / "policies")
    monkeypatch.setenv("VAULTFLEET_PROJECT", str(dest))
    return dest


@pytest.fixture()
def kube_context(tmp_path, monkeypatch):
    """A kubeconfig whose context `ctx` names a cluster with a real CA certificate."""
    from vaultfleet.lab.pki import create_cluster_pki

    pki = create_cluster_pki(tmp_path / "pki", "ctx")
    kubeconfig = tmp_path / "kubeconfig"
    cluster = {
        "server": "https://10.0.0.1:6443",
        "certificate-authority-data": base64.b64encode(pki.ca_cert.read_bytes()).decode(),
    }
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": cluster}],
                "contexts": [
                    {"name": "ctx", "context": {"cluster": "c"}},
                    {"name": "x\ny: 1", "context": {"cluster": "c"}},
                ],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))


@pytest.mark.parametrize("name", ["../evil", "a/b", "prod..", "Prod", "x" * 41, ""])
def test_onboard_refuses_a_name_that_is_not_a_dns_label_before_writing_anything(project, tmp_path, kube_context, name):
    before = tree(tmp_path)
    result = runner.invoke(app, ["onboard", name, "--context", "ctx"])
    assert result.exit_code == 2, result.output
    assert "vaultfleet:name" in result.output and "DNS label" in result.output
    assert tree(tmp_path) == before


def test_onboard_refuses_a_bad_namespace_naming_the_field_and_writes_nothing(project, tmp_path, kube_context):
    before = tree(tmp_path)
    result = runner.invoke(
        app, ["onboard", "prod", "--context", "ctx", "--namespace", "kube-system\nvaultfleet:kind: shared"]
    )
    assert result.exit_code == 2, result.output
    assert "reviewerNamespace" in result.output
    assert tree(tmp_path) == before


def test_onboard_writes_a_context_with_odd_characters_as_one_value(project, kube_context):
    result = runner.invoke(app, ["onboard", "prod", "--context", "x\ny: 1"])
    # A context name with a line break is refused outright rather than written into YAML.
    assert result.exit_code == 2
    assert not (project / "stacks/Pulumi.prod.yaml").exists()


def test_onboard_never_overwrites(project, kube_context):
    path = project / "stacks/Pulumi.lab-a.yaml"
    before = path.read_bytes()
    result = runner.invoke(app, ["onboard", "lab-a", "--context", "ctx"])
    assert result.exit_code == 2 and "already exists" in result.output
    assert path.read_bytes() == before


@pytest.mark.parametrize("ref", ["--output=/tmp/vaultfleet-owned", "-p", "HEAD\n--output=x", "no-such-ref"])
def test_changed_since_cannot_be_read_as_a_git_option(git_project, tmp_path, ref):
    target = Path("/tmp/vaultfleet-owned")
    target.unlink(missing_ok=True)
    result = runner.invoke(app, ["preview", "--changed-since", ref])
    assert result.exit_code == 2, result.output
    assert "--changed-since" in result.output
    assert not target.exists()


def test_changed_since_a_real_commit_still_selects_the_touched_stack(git_project):
    path = git_project / "stacks/Pulumi.lab-b.yaml"
    path.write_text(path.read_text() + "\n# touched\n")
    result = runner.invoke(app, ["preview", "--changed-since", "HEAD", "--format", "json"], catch_exceptions=False)
    # No lab here: the run itself fails, but only lab-b was selected.
    assert '"stack": "lab-b"' in result.stdout and "lab-a" not in result.stdout


def test_the_program_refuses_a_kube_context_server_over_plain_http_to_a_remote_host(tmp_path, monkeypatch):
    """apiHost left out: the host comes from the kubeconfig, and gets the same transport rule."""
    from vaultfleet.lab.pki import create_cluster_pki
    from vaultfleet.program import args as program
    from vaultfleet.stackfile import schema

    pki = create_cluster_pki(tmp_path / "pki", "ctx")
    ca = base64.b64encode(pki.ca_cert.read_bytes()).decode()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {"name": "c", "cluster": {"server": "http://10.0.0.1:8080", "certificate-authority-data": ca}}
                ],
                "contexts": [{"name": "ctx", "context": {"cluster": "c"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    values = {"vaultAddress": "https://vault.example:8200", "cluster": {"kubeContext": "ctx"}}
    with pytest.raises(ValueError, match=r"stacks/Pulumi.x.yaml: vaultfleet:cluster.apiHost: .*plain http"):
        program.cluster_args(schema.parse(values, "x", "stacks/Pulumi.x.yaml"))
    args = program.cluster_args(schema.parse({**values, "allowInsecureHttp": True}, "x", "stacks/Pulumi.x.yaml"))
    assert args.kubernetes_host == "http://10.0.0.1:8080"
