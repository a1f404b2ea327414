"""A fleet spread over CI runners: each runner takes a deterministic shard of the cluster stacks, and
the shared stack runs once, before them (it owns what the cluster stacks use).

Shards are drawn over the sorted names of the selected cluster stacks, round robin, so they differ
in size by one at most and every runner that is given the same selection computes the same shards
without talking to the others: the CI system is the scheduler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vaultfleet.stackfile import access_cluster

_SHARD = re.compile(r"^([1-9][0-9]*)/([1-9][0-9]*)$")
MAX_SHARDS = 256


@dataclass(frozen=True)
class Shard:
    index: int
    """1-based."""
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'I/N' with 1 <= I <= N <= MAX_SHARDS; ValueError otherwise."""
        match = _SHARD.match(text.strip())
        if not match or not 1 <= int(match[1]) <= int(match[2]) <= MAX_SHARDS:
            raise ValueError(f"--shard {text!r} must be I/N with 1 <= I <= N <= {MAX_SHARDS} (e.g. 2/4)")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def of(self, clusters: list[str]) -> list[str]:
        """This shard's share of the cluster stacks. An access stack (vault.<cluster>) among them
        is counted with its cluster's stack, so both land in one shard."""
        keys = sorted({access_cluster(name) or name for name in clusters})[self.index - 1 :: self.count]
        return sorted(name for name in clusters if (access_cluster(name) or name) in keys)


def matrix(shared: list[str], clusters: list[str], count: int) -> dict:
    """A CI job matrix: the shared stacks (run first, once) and one entry per non-empty shard.

    GitHub Actions: `strategy: {matrix: {include: ${{ fromJSON(...).include }}}}`, each job running
    `vaultfleet up ... --shard ${{ matrix.shard }}` after a job that ups `shared`.
    """
    shards = [Shard(i, count) for i in range(1, count + 1)]
    return {
        "shared": sorted(shared),
        "include": [{"shard": str(s), "stacks": " ".join(s.of(clusters))} for s in shards if s.of(clusters)],
    }
