"""The lab's PostgreSQL without a server: how it is started, recorded and described."""

import json
import pwd

from vaultfleet.lab import postgres
from vaultfleet.lab.record import LabState

SERVER = postgres.PostgresServer(
    host="127.0.0.1",
    port=18432,
    superuser="postgres",
    database="postgres",
    password_file="/lab/postgres-password",
    directory="/tmp/vaultfleet-lab-postgres-x",
    os_user="postgres",
    version="15",
)


def test_vault_connection_url_uses_vaults_templating():
    assert (
        SERVER.vault_connection_url()
        == "postgresql://{{username}}:{{password}}@127.0.0.1:18432/postgres?sslmode=disable"
    )
    assert SERVER.vault_connection_url("app").split("?")[0].endswith(":18432/app")


def test_connect_kwargs_for_another_user_never_read_the_superuser_password():
    kwargs = SERVER.connect_kwargs(user="v-token-app", password="pw")  # the password file does not exist here
    assert (kwargs["user"], kwargs["password"], kwargs["port"]) == ("v-token-app", "pw", 18432)


def test_env_names_the_server_but_holds_no_password():
    env = postgres.env(SERVER)
    assert env == {
        "PGHOST": "127.0.0.1",
        "PGPORT": "18432",
        "PGUSER": "postgres",
        "PGDATABASE": "postgres",
        "PGSSLMODE": "disable",
    }


def test_another_account_runs_through_setpriv_which_execs_the_server():
    account = pwd.struct_passwd(("postgres", "x", 60101, 60104, "", "/var/lib/postgresql", "/bin/sh"))
    argv = postgres._as_account(account, ["/usr/lib/postgresql/15/bin/postgres", "-D", "d"])
    assert argv[0].endswith("setpriv")
    assert argv[1:5] == ["--reuid=60101", "--regid=60104", "--init-groups", "--"]
    assert argv[5:] == ["/usr/lib/postgresql/15/bin/postgres", "-D", "d"]


def test_own_account_runs_the_server_directly():
    me = pwd.getpwuid(__import__("os").geteuid())
    assert postgres._as_account(me, ["postgres"]) == ["postgres"]


def test_lab_json_records_the_server_and_older_lab_json_loads_without_one(tmp_path):
    state = LabState(
        directory=tmp_path, vault_addr="http://127.0.0.1:18200", vault_server="openbao", clusters=[], postgres=SERVER
    )
    state.save()
    assert LabState.load(tmp_path).postgres == SERVER
    data = json.loads((tmp_path / "lab.json").read_text())
    del data["postgres"]  # written before the lab had PostgreSQL
    (tmp_path / "lab.json").write_text(json.dumps(data))
    loaded = LabState.load(tmp_path)
    assert loaded.postgres is None
    assert "PGHOST" not in loaded.env()
