"""What a failed stack's summary keeps of the engine's text (samples are real engine output)."""

from vaultfleet.fleet.errors import summarise

PERMISSION_DENIED = """
 code: 255
 stdout: Previewing update (vault):
~  vault:index:Mount fleet-kv refreshing error:   sdk-v2/provider2.go:571: sdk.helper_schema: Error making API request.
    pulumi:pulumi:Stack vaultfleet-vault  1 error; 3 warnings
Diagnostics:
  pulumi:pulumi:Stack (vaultfleet-vault):
    warning: using pulumi-resource-vault from $PATH at /root/.cache/vaultfleet/tools/bin/pulumi-resource-vault
    error: preview failed

  vault:index:Mount (fleet-kv):
    error:   sdk-v2/provider2.go:571: sdk.helper_schema: Error making API request.

    URL: GET http://127.0.0.1:18200/v1/sys/mounts/kv
    Code: 403. Errors:

    * 1 error occurred:
    \t* permission denied

    : provider=vault@7.8.0
    error: Preview failed: refreshing urn:pulumi:vault::vaultfleet::vaultfleet:vault:SharedVault$vault:index/mount:Mount::fleet-kv: 1 error occurred:
    \t* Error making API request.

Resources:
    3 unchanged
"""

BAD_CONFIG = """
Diagnostics:
  pulumi:pulumi:Stack (vaultfleet-lab-a):
    warning: using pulumi-resource-vault from $PATH at /root/.cache/vaultfleet/tools/bin/pulumi-resource-vault
    error: invalid configuration, nothing was changed:
    stacks/Pulumi.lab-a.yaml: vaultfleet:roles[0].audiences: unknown field
    error: an unhandled error occurred: program exited with non-zero exit code: 1

Resources:
    1 unchanged
"""


def test_a_provider_error_keeps_url_code_and_reason_on_one_line():
    assert summarise(PERMISSION_DENIED) == (
        "vault:index:Mount (fleet-kv): Error making API request. URL: GET http://127.0.0.1:18200/v1/sys/mounts/kv "
        "Code: 403. Errors: permission denied"
    )


def test_a_program_error_keeps_file_and_field_and_drops_the_generic_lines():
    assert summarise(BAD_CONFIG) == (
        "invalid configuration, nothing was changed:\n"
        "stacks/Pulumi.lab-a.yaml: vaultfleet:roles[0].audiences: unknown field"
    )


def test_without_diagnostics_the_error_lines_are_kept():
    text = " code: 255\n stderr: error: the stack is currently locked by 1 lock(s).\nerror: the stack is currently locked by 1 lock(s).\n"
    assert summarise(text) == "error: the stack is currently locked by 1 lock(s)."


# Engine 3.276 with SDK 3.272: after a resource fails, the engine shuts its resource monitor down
# while the program still registers, and interrupts it; the program's traceback comes first when the
# stack's diagnostics are listed before the resource's (trimmed from a lab run of test_auth_modes.py).
STOPPED_BY_THE_ENGINE = """
Diagnostics:
  pulumi:pulumi:Stack (vaultfleet-lab-c):
    warning: using pulumi-resource-vault from $PATH at /tmp/tools/bin/pulumi-resource-vault
    error: update failed

    Traceback (most recent call last):
      File "/p/.venv/lib/python3.11/site-packages/pulumi/runtime/resource.py", line 1340, in do_rpc_call
        return monitor.RegisterResource(req)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/p/.venv/lib/python3.11/site-packages/grpc/_channel.py", line 999, in _end_unary_response_blocking
        raise _InactiveRpcError(state)  # pytype: disable=not-instantiable
        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
    grpc._channel._InactiveRpcError: <_InactiveRpcError of RPC that terminated with:
    \tstatus = StatusCode.UNAVAILABLE
    \tdetails = "resource monitor shut down while waiting on step's done channel"
    >
    During handling of the above exception, another exception occurred:
    Traceback (most recent call last):
      File "/p/.venv/lib/python3.11/site-packages/pulumi/output.py", line 193, in future
        data = await self._data
               ^^^^^^^^^^^^^^^^
    pulumi.errors.RunError: Resource monitor has terminated, shutting down
    During handling of the above exception, another exception occurred:
    Traceback (most recent call last):
      File "/tmp/tools/pulumi-3.276.0-host3.184.0/bin/pulumi-language-python-exec", line 232, in <module>
        loop.run_until_complete(coro)
      File "/p/.venv/lib/python3.11/site-packages/grpc/_observability.py", line 287, in maybe_record_rpc_latency
        if exclude_prefix in state.method.encode("utf8"):
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
    KeyboardInterrupt

  vault:generic:Endpoint (lab-c-jwt-config):
    error:   sdk-v2/provider2.go:571: sdk.helper_schema: error writing to Vault: Error making API request.

    URL: PUT http://127.0.0.1:30200/v1/auth/k8s-lab-c/config
    Code: 403. Errors:

    * 1 error occurred:
    \t* permission denied

    : provider=vault@7.8.0

Resources:
    9 unchanged
"""


def test_the_programs_traceback_when_the_engine_stopped_it_is_left_out():
    assert summarise(STOPPED_BY_THE_ENGINE) == (
        "vault:generic:Endpoint (lab-c-jwt-config): error writing to Vault: Error making API request. "
        "URL: PUT http://127.0.0.1:30200/v1/auth/k8s-lab-c/config Code: 403. Errors: permission denied"
    )


def test_a_traceback_of_the_programs_own_failure_stays():
    text = """
Diagnostics:
  pulumi:pulumi:Stack (vaultfleet-lab-a):
    error: Program failed with an unhandled exception:
    Traceback (most recent call last):
      File "/p/__main__.py", line 3, in <module>
    ValueError: no such template: kv-raed
    error: an unhandled error occurred: program exited with non-zero exit code: 1

Resources:
    1 unchanged
"""
    assert "ValueError: no such template: kv-raed" in summarise(text).splitlines()
