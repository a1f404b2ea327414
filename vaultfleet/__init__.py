"""vaultfleet: onboard a fleet of Kubernetes clusters to one Vault, declaratively, on Pulumi.

Where code lives (one rule, followed by every command):
- `cli/<group>.py` holds a command's options, output formats and exit codes, nothing else.
- A command's logic lives in one module named for what it does: `validate.py`, `onboard.py`,
  `adopt/`, `release.py`, `access.py`, `verify/`, `consumers/configure.py`, `fleet/runner.py`
  (preview, up, destroy, with `fleet/selection.py` choosing the stacks), `lab/lab.py`.
- `program/` is the Pulumi program (`program/main.py`'s `run()`, which every fleet's `__main__.py`,
  this repository's too, calls); nothing but the program imports it.
- `scaffold.py` (`init`) writes a fleet repository from `templates/fleet/`, the package's data.
- Below them, shared by all: `stackfile/` reads and checks stack files (the one shape of a stack
  file's settings, from the schema to the components and the consumers); `render/` turns them into
  what goes to Vault; `kubeconfig.py` and `kube.py` talk to clusters; `toolchain.py` finds tools.
- `lab/` is a dev tool: nothing outside `lab/`, `demo.py` and `cli/lab.py` imports it.
"""

__version__ = "0.2.0"
