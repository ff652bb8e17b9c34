"""AetherFlow: plan software work as a graph of subtasks and route each to the cheapest capable model."""

__version__ = "0.1.0"
