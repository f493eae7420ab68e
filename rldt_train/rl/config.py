"""RLDT fine-tuning configuration (placeholder fields; the RLDT implementation extends it)."""
from dataclasses import dataclass


@dataclass
class FinetuneConfig:
    """RLDT fine-tuning (ARCHITECTURE.md section 4)."""

    iterations: int = 10
    """Outer iterations (collect, critic rounds, actor steps)."""
