// Package provider bridges the Terraform Vault provider (hashicorp/terraform-provider-vault, its
// Plugin-SDK-v2 half) to Pulumi with pulumi-terraform-bridge, under the type tokens that the
// published Python SDK `pulumi_vault` uses.
//
// The tokens are not written out here: sdk-tokens.json (made at build time by
// tools/pulumi-vault-bridge/sdk_tokens.py from the pip package of the pinned version) lists every
// resource and function token the SDK knows, and each Terraform resource or data source is matched
// to the one whose module and name, lower-cased and without separators, spell its Terraform name
// (`vault_kubernetes_auth_backend_role` <-> `vault:kubernetes/authBackendRole:AuthBackendRole`).
package provider

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"

	tfschema "github.com/hashicorp/terraform-provider-vault/schema"
	"github.com/hashicorp/terraform-provider-vault/vault"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
)

const pkgName = "vault"

// sdkTokens is {"resources": [...], "functions": [...]}, tokens as the Python SDK spells them.
//
//go:embed sdk-tokens.json
var sdkTokens []byte

// moduleTFPrefixes: SDK modules whose members' Terraform names do not all start with the module
// name itself (the default). A token is matched under each prefix listed for its module.
var moduleTFPrefixes = map[string][]string{
	"index":     {""},
	"tokenauth": {"token"}, // vault_token_auth_backend_role -> vault:tokenauth/authBackendRole
	// vault_pki_secret_backend_acme_eab -> vault:pkiSecret/backendAcmeEab, but
	// vault_pki_secret_backend_role -> vault:pkiSecret/secretBackendRole
	"pkiSecret": {"pkiSecret", "pki"},
	// vault_azure_auth_backend_config -> vault:azure/authBackendConfig, but
	// vault_azure_secret_backend -> vault:azure/backend
	"azure": {"azure", "azureSecret"},
}

// fieldNames: properties whose Pulumi name differs from the bridge's default naming in the SDK.
var fieldNames = map[string]map[string]string{
	"vault_pki_secret_backend_role": {"ou": "organizationUnit"},
}

func squash(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// tokenKeys: "vault:kubernetes/authBackendRole:AuthBackendRole" -> ["kubernetesauthbackendrole"];
// functions drop their "get" prefix ("vault:kv/getSecretV2:getSecretV2" -> ["kvsecretv2"]).
func tokenKeys(tok string, function bool) ([]string, error) {
	parts := strings.Split(tok, ":")
	if len(parts) != 3 || parts[0] != pkgName || !strings.Contains(parts[1], "/") {
		return nil, fmt.Errorf("unexpected token %q", tok)
	}
	mod := parts[1][:strings.Index(parts[1], "/")]
	prefixes, ok := moduleTFPrefixes[mod]
	if !ok {
		prefixes = []string{mod}
	}
	name := parts[2]
	if function {
		name = strings.TrimPrefix(name, "get")
	}
	var keys []string
	for _, p := range prefixes {
		keys = append(keys, squash(p+name))
	}
	return keys, nil
}

func tfKey(tfName string) string { return squash(strings.TrimPrefix(tfName, pkgName+"_")) }

// camel: "kubernetes_auth_backend_role" -> "KubernetesAuthBackendRole".
func camel(s string) string {
	var b strings.Builder
	for _, w := range strings.Split(s, "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToLower(r[0])
	return string(r)
}

// Matcher pairs Terraform names with SDK tokens; Unmatched lists what was left over.
type Matcher struct {
	byKey     map[string]string
	used      map[string]bool
	function  bool
	unmatched []string // Terraform names with no SDK token (given an index-module default token)
}

func newMatcher(toks []string, function bool) (*Matcher, error) {
	m := &Matcher{byKey: map[string]string{}, used: map[string]bool{}, function: function}
	for _, t := range toks {
		keys, err := tokenKeys(t, function)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if prev, dup := m.byKey[k]; dup {
				return nil, fmt.Errorf("tokens %q and %q have the same key %q", prev, t, k)
			}
			m.byKey[k] = t
		}
	}
	return m, nil
}

func (m *Matcher) token(tfName string) string {
	if t, ok := m.byKey[tfKey(tfName)]; ok && !m.used[t] {
		m.used[t] = true
		return t
	}
	m.unmatched = append(m.unmatched, tfName)
	name := camel(strings.TrimPrefix(tfName, pkgName+"_"))
	if m.function {
		name = "get" + name
		return fmt.Sprintf("%s:index/%s:%s", pkgName, name, name)
	}
	return fmt.Sprintf("%s:index/%s:%s", pkgName, lowerFirst(name), name)
}

// Report: SDK tokens no Terraform name matched, and Terraform names with no SDK token.
func (m *Matcher) Report() (unusedTokens, unmatchedTF []string) {
	seen := map[string]bool{}
	for _, t := range m.byKey {
		if !m.used[t] && !seen[t] {
			seen[t] = true
			unusedTokens = append(unusedTokens, t)
		}
	}
	sort.Strings(unusedTokens)
	unmatchedTF = append(unmatchedTF, m.unmatched...)
	sort.Strings(unmatchedTF)
	return
}

// Matchers of the last Provider() call, for the tfgen report.
var ResourceMatcher, FunctionMatcher *Matcher

// Provider returns the bridge description of the Vault provider at the given version.
// metadata is the bridge-metadata.json that tfgen wrote (nil while running tfgen itself).
func Provider(version string, metadata []byte) tfbridge.ProviderInfo {
	var lists struct {
		Resources []string `json:"resources"`
		Functions []string `json:"functions"`
	}
	if err := json.Unmarshal(sdkTokens, &lists); err != nil {
		panic(fmt.Sprintf("sdk-tokens.json: %v", err))
	}
	res, err := newMatcher(lists.Resources, false)
	if err != nil {
		panic(err)
	}
	fns, err := newMatcher(lists.Functions, true)
	if err != nil {
		panic(err)
	}
	ResourceMatcher, FunctionMatcher = res, fns

	if metadata == nil {
		metadata = []byte("{}")
	}
	prov := tfbridge.ProviderInfo{
		P:            shimv2.NewProvider(tfschema.NewProvider(vault.Provider()).SchemaProvider()),
		Name:         pkgName,
		DisplayName:  "HashiCorp Vault",
		Description:  "Pulumi provider for HashiCorp Vault, bridged from terraform-provider-vault.",
		Keywords:     []string{"pulumi", "vault"},
		License:      "Apache-2.0",
		GitHubOrg:    "hashicorp",
		Version:      version,
		MetadataInfo: tfbridge.NewProviderMetadata(metadata),
		Resources:    map[string]*tfbridge.ResourceInfo{},
		DataSources:  map[string]*tfbridge.DataSourceInfo{},
		// Environment defaults the SDK's Provider also applies.
		Config: map[string]*tfbridge.SchemaInfo{
			"skip_tls_verify": {Default: &tfbridge.DefaultInfo{EnvVars: []string{"VAULT_SKIP_VERIFY"}}},
			"max_lease_ttl_seconds": {Default: &tfbridge.DefaultInfo{
				EnvVars: []string{"TERRAFORM_VAULT_MAX_TTL"}, Value: 1200}},
			"max_retries": {Default: &tfbridge.DefaultInfo{EnvVars: []string{"VAULT_MAX_RETRIES"}, Value: 2}},
		},
	}
	for tf, fields := range fieldNames {
		info := &tfbridge.ResourceInfo{Fields: map[string]*tfbridge.SchemaInfo{}}
		for f, name := range fields {
			info.Fields[f] = &tfbridge.SchemaInfo{Name: name}
		}
		prov.Resources[tf] = info
	}
	prov.MustComputeTokens(tfbridge.Strategy{
		Resource: func(tfName string, r *tfbridge.ResourceInfo) error {
			r.Tok = tokens.Type(res.token(tfName))
			return nil
		},
		DataSource: func(tfName string, d *tfbridge.DataSourceInfo) error {
			d.Tok = tokens.ModuleMember(fns.token(tfName))
			return nil
		},
	})
	// Resources with a `name` field get an auto-name when none is given, as in the SDK (where
	// `name` is optional for e.g. vault.Policy).
	prov.SetAutonaming(255, "-")
	return prov
}
