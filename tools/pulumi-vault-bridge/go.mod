// Our own bridged Vault provider (see provider/provider.go and tools/build-providers.sh).
module vaultfleet.local/pulumi-vault-bridge

go 1.26.2

require (
	// The Terraform provider commit that pulumi-vault 7.10.0 bridges (its upstream submodule).
	github.com/hashicorp/terraform-provider-vault v1.9.1-0.20260422134934-5e9fcd457a99
	// pulumi-vault 7.10.0 used v3.130.0, which the module proxy does not serve.
	github.com/pulumi/pulumi-terraform-bridge/v3 v3.134.0
)

// The bridge needs Pulumi's fork of the Terraform plugin SDK (the same one pulumi-vault 7.10.0 uses).
replace github.com/hashicorp/terraform-plugin-sdk/v2 => github.com/pulumi/terraform-plugin-sdk/v2 v2.0.0-20260318212141-5525259d096b
