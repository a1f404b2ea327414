// pulumi-resource-vault is the Pulumi resource provider plugin for Vault, bridged from
// terraform-provider-vault. schema-embed.json and bridge-metadata.json are written by the build
// (tools/build-providers.sh) from the output of pulumi-tfgen-vault.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"

	"vaultfleet.local/pulumi-vault-bridge/provider"
)

var version = "0.0.0-dev" // set with -ldflags "-X main.version=..."

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed bridge-metadata.json
var metadata []byte

func main() {
	tfbridge.Main("vault", version, provider.Provider(version, metadata), pulumiSchema)
}
