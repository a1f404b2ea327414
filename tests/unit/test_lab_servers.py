"""Which Vault-compatible server the lab runs, without starting one: choice, record, environment."""

import json

import pytest
from typer.testing import CliRunner

from vaultfleet.cli import app
from vaultfleet.lab import servers
from vaultfleet.lab.record import LabState


def test_default_is_openbao_and_the_env_var_chooses_vault():
    assert servers.from_env({}).binary == "bao"
    assert servers.from_env({"VAULTFLEET_LAB_SERVER": ""}).name == "openbao"
    assert servers.from_env({"VAULTFLEET_LAB_SERVER": "vault"}) == servers.SERVERS["vault"]
    assert servers.SERVERS["vault"].binary == "vault"


def test_unknown_server_names_its_source_and_the_choices():
    with pytest.raises(
        ValueError, match=r"\$VAULTFLEET_LAB_SERVER: unknown lab server 'hcv'; choose one of openbao, vault"
    ):
        servers.from_env({"VAULTFLEET_LAB_SERVER": "hcv"})


def test_lab_up_refuses_an_unknown_server_before_starting_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("VAULTFLEET_LAB_DIR", str(tmp_path / "lab"))
    result = CliRunner().invoke(app, ["lab", "up", "--server", "consul"])
    assert result.exit_code == 2
    assert "--server: unknown lab server 'consul'" in result.output
    assert not (tmp_path / "lab").exists()


def test_config_is_a_non_dev_server_on_file_storage_and_loopback():
    hcl = servers.config_hcl("/lab/vault-data", 21200)
    assert 'storage "file" {\n  path = "/lab/vault-data"\n}' in hcl
    assert 'address = "127.0.0.1:21200"' in hcl and 'api_addr = "http://127.0.0.1:21200"' in hcl
    assert "disable_mlock = true" in hcl


def test_an_ha_node_keeps_its_raft_and_cluster_traffic_on_loopback():
    hcl = servers.raft_config_hcl("/lab/vault-2-data", "vault-2", 21220)
    assert 'storage "raft" {\n  path = "/lab/vault-2-data"\n  node_id = "vault-2"\n' in hcl
    assert 'cluster_address = "127.0.0.1:21221"' in hcl and 'cluster_addr = "https://127.0.0.1:21221"' in hcl
    assert "performance_multiplier = 1" in hcl and "retry_join" not in hcl


def _state(tmp_path, server="vault"):
    return LabState(
        directory=tmp_path,
        vault_addr="http://127.0.0.1:18200",
        vault_server=server,
        clusters=[],
        vault_cli="/tools/bin/vault",
        vault_version="1.14.1",
    )


def test_lab_json_records_the_server_its_cli_and_version(tmp_path):
    _state(tmp_path).save()
    data = json.loads((tmp_path / "lab.json").read_text())
    assert (data["vault_server"], data["vault_cli"], data["vault_version"]) == ("vault", "/tools/bin/vault", "1.14.1")
    loaded = LabState.load(tmp_path)
    assert loaded.server.product == "HashiCorp Vault" and loaded.vault_cli == "/tools/bin/vault"


def test_a_lab_json_from_before_the_choice_is_an_openbao_lab(tmp_path):
    _state(tmp_path).save()
    data = json.loads((tmp_path / "lab.json").read_text())
    data["vault_server"] = "bao"  # what the lab recorded when it always ran OpenBao
    del data["vault_cli"], data["vault_version"]
    (tmp_path / "lab.json").write_text(json.dumps(data))
    loaded = LabState.load(tmp_path)
    assert loaded.vault_server == "openbao"
    assert loaded.vault_cli.endswith("bao")


def test_env_exports_the_labs_own_cli(tmp_path, monkeypatch):
    _state(tmp_path).save()
    assert LabState.load(tmp_path).env()["VAULT_CLI"] == "/tools/bin/vault"
    monkeypatch.setenv("VAULTFLEET_LAB_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["lab", "env"])
    assert result.exit_code == 0, result.output
    assert "export VAULT_CLI=/tools/bin/vault" in result.output
