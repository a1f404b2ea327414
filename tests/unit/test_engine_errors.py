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
