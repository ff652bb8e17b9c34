"""The TUI's widgets, each fed from a snapshot or a model rather than from events directly."""
