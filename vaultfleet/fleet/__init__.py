"""Engine runs over many stacks: the runner (order, parallelism), one engine operation per stack,
the preview skip, crash recovery, Vault health and the summary of a failed run."""
