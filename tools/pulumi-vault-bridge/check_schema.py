"""Compare the bridged provider's schema with an unpacked pulumi_vault wheel.

usage: python3 check_schema.py SCHEMA.json PULUMI_VAULT_PACKAGE_DIR
For every resource class of the SDK: the token must be in the schema, and every output
property the SDK reads (its @pulumi.getter names) must be a property of that resource.
Prints the differences; exits 1 when a resource the SDK has is missing from the schema.
"""
import json
import pathlib
import re
import sys

schema = json.load(open(sys.argv[1]))
pkg = pathlib.Path(sys.argv[2])
missing, prop_diffs, checked = [], [], 0
for py in sorted(pkg.rglob("*.py")):
    text = py.read_text(encoding="utf-8")
    for m in re.finditer(r'@pulumi\.type_token\("(vault:[^"]+)"\)\s*\nclass \w+\(pulumi\.CustomResource\):', text):
        tok = m.group(1)
        body = text[m.end():]
        nxt = re.search(r"\n(class |@pulumi\.type_token)", body)
        body = body[: nxt.start()] if nxt else body
        names = set()
        for g in re.finditer(r'@pulumi\.getter(?:\(name="(\w+)"\))?\s*\n\s*def (\w+)\(', body):
            names.add(g.group(1) or g.group(2))
        checked += 1
        res = schema.get("resources", {}).get(tok)
        if res is None:
            missing.append(tok)
            continue
        have = set(res.get("properties", {}))
        if names - have:
            prop_diffs.append(f"{tok}: SDK reads {sorted(names - have)} not in schema")
for line in prop_diffs:
    print("check_schema:", line)
print(f"check_schema: {checked} SDK resources, {len(missing)} missing: {missing}, "
      f"{len(prop_diffs)} with property differences")
sys.exit(1 if missing else 0)
