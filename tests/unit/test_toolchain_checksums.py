"""The toolchain build (tools/*.sh) verifies every Go module against the checksum database.

These tests run tools/lib.sh's own download functions (module_dir, go_verified) in bash, with the
project's settings, on a scratch module cache: a module whose cached content was altered stops them
with one clear line, a clean cache downloads through a checksum database lookup. They download one
small real module (and one pinned in lib.sh) from the Go module proxy; the machine that runs them
must reach it (CI does). Nothing here touches the tool cache or the user's module cache.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "tools" / "lib.sh"

# Small real modules the build downloads (tools/build-vault-server.sh): one the checksum database
# lists, one it does not (pinned in lib.sh's sumdb_unlisted).
LISTED = ("github.com/hashicorp/vault/api/auth/userpass", "v0.1.0")
UNLISTED = ("github.com/openbao/openbao/api/auth/userpass/v2", "v2.5.0")


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.fail("`go` is not on PATH: the toolchain build and these tests need it (see docs/toolchain.md)")
    return go


@pytest.fixture()
def goenv(tmp_path):
    """The environment of a build script, on a scratch module cache, tool cache and go env file."""
    _go()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(
        GOMODCACHE=str(tmp_path / "modcache"),
        GOPATH=str(tmp_path / "gopath"),
        GOCACHE=str(tmp_path / "gocache"),
        GOENV=str(tmp_path / "go.env"),  # no `go env -w` settings of the user's
        GOTOOLCHAIN="local",
        VAULTFLEET_TOOLS=str(tmp_path / "tools"),
    )
    if "GOPROXY" in os.environ:
        env["GOPROXY"] = os.environ["GOPROXY"]
    return env


def _bash(env: dict, script: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run SCRIPT in bash after sourcing tools/lib.sh, as the build scripts do."""
    return subprocess.run(
        ["bash", "-c", f'source "{LIB}"; CURRENT_TOOL=test; {script}'],
        env=env,
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _download_unverified(env: dict, path: str, version: str) -> Path:
    """Fill the scratch module cache without the checksum database, as the build did before."""
    proc = subprocess.run(
        [_go(), "mod", "download", "-json", f"{path}@{version}"],
        env={**env, "GOSUMDB": "off", "GOFLAGS": "-mod=mod"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"the Go module proxy ({env.get('GOPROXY', 'the default GOPROXY')}) did not serve {path}@{version}; "
            f"these tests need it (CI reaches it):\n{proc.stdout}{proc.stderr}"
        )
    return Path(env["GOMODCACHE"]) / "cache" / "download" / path / "@v"


def _h1(zip_path: Path) -> str:
    """Go's h1: hash of a module zip (golang.org/x/mod/sumdb/dirhash.HashZip)."""
    with zipfile.ZipFile(zip_path) as z:
        lines = sorted(f"{hashlib.sha256(z.read(n)).hexdigest()}  {n}\n" for n in z.namelist())
    return "h1:" + base64.b64encode(hashlib.sha256("".join(lines).encode()).digest()).decode()


def _tamper_zip(env: dict, path: str, version: str) -> str:
    """Alter a .go file in the cached zip and rewrite .ziphash to match, as a poisoned cache would."""
    vdir = Path(env["GOMODCACHE"]) / "cache" / "download" / path / "@v"
    zip_path = vdir / f"{version}.zip"
    out = io.BytesIO()
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".go") and not info.filename.endswith("_test.go"):
                data += b"\nfunc init() { println(`tampered`) }\n"
            dst.writestr(info, data)
    zip_path.write_bytes(out.getvalue())
    h1 = _h1(zip_path)
    (vdir / f"{version}.ziphash").write_text(h1)
    extracted = Path(env["GOMODCACHE"]) / f"{path}@{version}"
    subprocess.run(["chmod", "-R", "u+w", str(extracted)], check=True)
    shutil.rmtree(extracted)
    return h1


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("[tools] ERROR")]


def test_lib_sh_turns_the_checksum_database_on():
    text = LIB.read_text()
    assert "GOSUMDB=off" not in text
    assert re.search(r"^export GOSUMDB=sum\.golang\.org$", text, re.M)
    assert re.search(r"^export GONOSUMDB= GOPRIVATE=$", text, re.M)
    for script in (REPO / "tools").glob("*.sh"):
        code = "\n".join(line for line in script.read_text().splitlines() if not line.lstrip().startswith("#"))
        assert not re.search(r"GOSUMDB=off|\b(GONOSUMDB|GOPRIVATE|GOINSECURE)=[\w$*{\"]", code), script.name


def test_the_build_settings_are_what_go_uses(goenv):
    # Set in the environment and in a go env file: lib.sh's settings win or stop the build.
    proc = _bash({**goenv, "GOSUMDB": "off", "GOFLAGS": "-mod=readonly"}, "go env GOSUMDB GONOSUMDB GOPRIVATE GOFLAGS")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["sum.golang.org", "", "", "-mod=mod -buildvcs=false"]

    Path(goenv["GOENV"]).write_text("GONOSUMDB=github.com/hashicorp\n")
    proc = _bash(goenv, f"module_dir {LISTED[0]}@{LISTED[1]}")
    assert proc.returncode != 0
    [line] = _error_lines(proc)
    assert "would not verify every module against the checksum database" in line
    assert "GONOSUMDB='github.com/hashicorp'" in line
    assert not Path(goenv["GOMODCACHE"]).exists()


def test_a_clean_cache_downloads_through_the_checksum_database(goenv):
    path, version = LISTED
    proc = _bash(goenv, f"module_dir {path}@{version}")
    assert proc.returncode == 0, proc.stderr
    cache = Path(goenv["GOMODCACHE"])
    assert proc.stdout.strip() == str(cache / f"{path}@{version}")
    # go keeps the checksum database's answer it verified the download against.
    lookup = cache / "cache" / "download" / "sumdb" / "sum.golang.org" / "lookup" / f"{path}@{version}"
    assert lookup.is_file(), "no checksum database lookup was made"
    assert f"{path} {version} h1:" in lookup.read_text()


def test_a_module_that_differs_from_the_checksum_database_stops_the_download(goenv):
    path, version = LISTED
    _download_unverified(goenv, path, version)
    bad = _tamper_zip(goenv, path, version)

    proc = _bash(goenv, f"module_dir {path}@{version}; echo NOT-STOPPED")
    assert proc.returncode != 0
    assert "NOT-STOPPED" not in proc.stdout
    [line] = _error_lines(proc)
    assert line.startswith(
        f"[tools] ERROR building test: checksum mismatch: the module zip of {path}@{version} ({bad})"
    )
    assert "differs from the checksum database sum.golang.org (h1:" in line
    assert f"rm -rf {goenv['GOMODCACHE']}/{path}@{version} " in line  # what to clear
    assert "report it" in line
    assert not (Path(goenv["GOMODCACHE"]) / f"{path}@{version}").exists(), "the altered zip was extracted"


def test_an_altered_go_mod_stops_the_download(goenv):
    path, version = LISTED
    vdir = _download_unverified(goenv, path, version)
    mod = vdir / f"{version}.mod"
    mod.chmod(0o644)
    mod.write_text(mod.read_text() + "\nrequire example.com/evil v1.0.0\n")

    proc = _bash(goenv, f"module_dir {path}@{version}")
    assert proc.returncode != 0
    [line] = _error_lines(proc)
    assert f"checksum mismatch: the go.mod of {path}@{version}" in line
    # go checks the go.mod against the line the checksum database gave it (kept as a go.sum line).
    lookup = Path(goenv["GOMODCACHE"]) / "cache" / "download" / "sumdb" / "sum.golang.org" / "lookup"
    [db_hash] = re.findall(
        rf"^{re.escape(path)} {version}/go.mod (h1:\S+)$", (lookup / f"{path}@{version}").read_text(), re.M
    )
    assert f"differs from its verified hash in go.sum ({db_hash}, from the checksum database" in line


def test_a_go_sum_line_the_build_adds_is_verified(goenv, tmp_path):
    # A build in a copied tree (go build/list with -mod=mod) adds go.sum lines: only verified ones.
    path, version = LISTED
    _download_unverified(goenv, path, version)
    _tamper_zip(goenv, path, version)
    main = tmp_path / "main"
    main.mkdir()
    (main / "go.mod").write_text(f"module example.com/m\n\ngo 1.21\n\nrequire {path} {version}\n")
    (main / "main.go").write_text(f'package main\n\nimport _ "{path}"\n\nfunc main() {{}}\n')

    proc = _bash(goenv, "go_verified list -deps . >/dev/null; echo NOT-STOPPED", cwd=main)
    assert proc.returncode != 0
    assert "NOT-STOPPED" not in proc.stdout
    [line] = _error_lines(proc)
    assert f"checksum mismatch: the module zip of {path}@{version}" in line
    assert "differs from the checksum database" in line
    assert not (main / "go.sum").exists() or path not in (main / "go.sum").read_text()


def test_a_module_the_database_does_not_list_is_checked_against_its_pinned_hash(goenv):
    path, version = UNLISTED
    proc = _bash(goenv, "sumdb_unlisted")
    pinned = re.search(rf"^{re.escape(path)} {version} (h1:\S+)$", proc.stdout, re.M)
    assert pinned, "lib.sh pins no hash for the module"

    proc = _bash(goenv, f"module_dir {path}@{version}")
    assert proc.returncode == 0, proc.stderr
    lookups = Path(goenv["GOMODCACHE"]) / "cache" / "download" / "sumdb" / "sum.golang.org" / "lookup"
    assert not (lookups / f"{path}@{version}").exists()

    bad = _tamper_zip(goenv, path, version)
    proc = _bash(goenv, f"module_dir {path}@{version}")
    assert proc.returncode != 0
    [line] = _error_lines(proc)
    assert (
        f"checksum mismatch: the module zip of {path}@{version} ({bad}) differs from the hash pinned in tools/lib.sh (sumdb_unlisted) ({pinned[1]})"
        in line
    )

    # Without its pin the download is refused too. Which refusal depends on the checksum database
    # as the proxy serves it at that moment: mostly it does not list the version (its lookup answers
    # 404: "cannot be verified"), but some of go's lookups here get an answer, the hash pinned in
    # lib.sh, and then the tampered zip is a database mismatch. Either way nothing is built.
    proc = _bash(goenv, f"sumdb_unlisted() {{ :; }}; module_dir {path}@{version}")
    assert proc.returncode != 0
    [line] = _error_lines(proc)
    unlisted = f"{path}@{version} cannot be verified: the checksum database sum.golang.org" in line
    listed = (
        f"checksum mismatch: the module zip of {path}@{version} ({bad}) differs from the checksum database"
        f" sum.golang.org ({pinned[1]})" in line
    )
    assert unlisted or listed, line
    assert "does not list its go.mod" in line if unlisted else "nothing was built from it" in line
