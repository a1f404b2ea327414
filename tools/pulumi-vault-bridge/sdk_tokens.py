"""Write sdk-tokens.json: the resource and function type tokens of an unpacked pulumi_vault wheel.

usage: python3 sdk_tokens.py PULUMI_VAULT_PACKAGE_DIR OUT.json
The bridged provider (provider/provider.go) maps Terraform names onto these tokens.
"""
import json
import pathlib
import re
import sys

pkg, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
resources, functions = set(), set()
# Resource classes carry @pulumi.type_token("vault:mod/name:Name") and pass the same token to
# super().__init__; functions call pulumi.runtime.invoke('vault:mod/getX:getX', ...).
for py in pkg.rglob("*.py"):
    text = py.read_text(encoding="utf-8")
    for m in re.finditer(r"class \w+\(pulumi\.CustomResource\):", text):
        head = text[max(0, m.start() - 200):m.start()]
        tok = re.findall(r'@pulumi\.type_token\("(vault:[^"]+)"\)', head)
        if tok:
            resources.add(tok[-1])
    functions.update(re.findall(r"\.invoke(?:_output)?\('(vault:[^']+)'", text))
if not resources or not functions:
    sys.exit(f"no tokens found under {pkg}")
out.write_text(json.dumps({"resources": sorted(resources), "functions": sorted(functions)}, indent=1) + "\n")
print(f"sdk_tokens: {len(resources)} resources, {len(functions)} functions", file=sys.stderr)
