"""vaultfleet: onboard a fleet of Kubernetes clusters to one Vault, declaratively, on Pulumi."""

__version__ = "0.1.0"
