// pulumi-tfgen-vault writes the Pulumi package schema of the bridged Vault provider:
//
//	pulumi-tfgen-vault schema --out DIR --skip-docs --skip-examples
//
// and reports SDK tokens and Terraform names that did not pair up (on stderr).
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"

	"vaultfleet.local/pulumi-vault-bridge/provider"
)

var version = "0.0.0-dev" // set with -ldflags "-X main.version=..."

func main() {
	info := provider.Provider(version, nil)
	for _, m := range []struct {
		kind string
		m    *provider.Matcher
	}{{"resource", provider.ResourceMatcher}, {"function", provider.FunctionMatcher}} {
		unused, unmatched := m.m.Report()
		if len(unused) > 0 {
			fmt.Fprintf(os.Stderr, "tfgen: %d SDK %s tokens match no Terraform name: %s\n",
				len(unused), m.kind, strings.Join(unused, " "))
		}
		if len(unmatched) > 0 {
			fmt.Fprintf(os.Stderr, "tfgen: %d Terraform %ss have no SDK token (index-module default used): %s\n",
				len(unmatched), m.kind, strings.Join(unmatched, " "))
		}
	}
	tfgen.Main("vault", version, info)
}
