"""The Pulumi program: `main.run()` (what every fleet's `__main__.py` calls), from a validated
stack file to the components' typed Args (args.py) and the consumer objects a stack file asks `up`
to create (managed.py).

Only the program imports this package: nothing a CLI command runs lives here.
"""
