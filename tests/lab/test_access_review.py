"""The access review on a real fleet (issue 28, docs/access-review.md): expectations that hold
offline hold live; one that fails, fails offline (`validate`) and live (`verify`, a real login's
`sys/capabilities-self`) with the same explanation; a template edit's preview names every role it
reaches, in the markdown a pull request shows.

One fleet for the module: the shared stack and lab-a, in a project copy that is a git repository
(the access review compares against a revision).
"""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from tests.harness import REPO, commit_all, copy_project, destroy_stacks, up_stacks
from vaultfleet.cli import app

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()
FAILING = {"cluster": "lab-a", "role": "app", "path": "kv/data/clusters/lab-a/config", "cannot": ["read"]}
EXPLAINED = (
    "FAIL: lab-a role app cannot read kv/data/clusters/lab-a/config: has read; "
    'decided by k8s-lab-a-kv-read: path "kv/data/clusters/lab-a/*"'
)


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("access"))
    (project / "stacks" / "Pulumi.lab-b.yaml").unlink()
    # The repository's own expectations, those of the one cluster this fleet has.
    fleet = yaml.safe_load((REPO / "access" / "lab.yaml").read_text())["expectations"]
    (project / "access").mkdir()
    (project / "access" / "lab.yaml").write_text(
        yaml.safe_dump({"expectations": [e for e in fleet if e["cluster"] == "lab-a"]})
    )
    (project / ".gitignore").write_text(".venv\n")
    commit_all(project, "the fleet as applied")
    up_stacks(project, lab_env, ["vault", "lab-a"])
    yield project
    destroy_stacks(project, lab_env, ["lab-a", "vault"])


@pytest.mark.server
def test_an_expectation_fails_offline_and_live_with_the_same_explanation(project):
    # Control: the fleet's own expectations hold, offline and with each role's real login.
    assert runner.invoke(app, ["validate"]).exit_code == 0
    held = runner.invoke(app, ["verify", "lab-a"])
    assert held.exit_code == 0, held.output
    assert "expectation(s) hold" in held.output
    extra = project / "access" / "review.yaml"
    extra.write_text(yaml.safe_dump({"expectations": [FAILING]}))
    try:
        offline = runner.invoke(app, ["validate"])
        assert offline.exit_code != 0
        assert EXPLAINED in " ".join(offline.output.split()), offline.output
        live = runner.invoke(app, ["verify", "lab-a", "--role", "app"])
        assert live.exit_code == 1, live.output
        assert EXPLAINED in " ".join(live.output.split()), live.output
    finally:
        extra.unlink()


@pytest.mark.server
def test_a_pull_requests_preview_names_every_role_a_template_edit_reaches(project):
    # A pull request's change: kv-read also lists, and the app role's binding widens to every
    # namespace. Its preview (engine run against the lab's Vault and cluster) carries the review.
    template = project / "policies" / "kv-read.hcl"
    stack_file = project / "stacks" / "Pulumi.lab-a.yaml"
    before = template.read_text(), stack_file.read_text()
    config = yaml.safe_load(before[1])
    roles = config["config"]["vaultfleet:roles"]
    reached = [r["name"] for r in roles if "kv-read" in r.get("policies", [])]
    assert len(reached) >= 2
    template.write_text(before[0].replace('capabilities = ["read"]', 'capabilities = ["read", "list"]'))
    next(r for r in roles if r["name"] == "app")["namespaces"] = ["*"]
    stack_file.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        result = runner.invoke(app, ["preview", "--changed-since", "HEAD", "--format", "markdown"])
        assert result.exit_code == 0, result.output
        markdown = result.output
        print(markdown)  # docs/github-actions.md shows it as the pull request's comment
        assert "| lab-a | ok |" in markdown  # the engine's part: the stack previewed
        assert "`policies/kv-read.hcl` changed; it reaches " + ", ".join(f"`lab-a {r}`" for r in reached) in markdown
        for role in reached:  # each gains `list` on its cluster's subtree
            assert f"{role} (`auth/k8s-lab-a`) | `kv/data/clusters/lab-a/*` | list |" in markdown
        # The widened binding: a ServiceAccount of any namespace now reads lab-a's secrets.
        assert "| lab-a | `*/app` | app (`auth/k8s-lab-a`) | `kv/data/clusters/lab-a/*` | list, read |" in markdown
    finally:
        template.write_text(before[0])
        stack_file.write_text(before[1])
