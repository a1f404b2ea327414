"""What the Pulumi program runs: from a validated stack file to the components' typed Args
(args.py) and the consumer objects a stack file asks `up` to create (managed.py).

Only `__main__.py` imports this package: nothing a CLI command runs lives here.
"""
