"""The Textual TUI: the run screen, the review screen and the interactive session.

It consumes events and calls the same services as the CLI; it never talks to providers. Importing this package
is cheap: Textual is imported by the modules below, which the CLI imports only when it opens the TUI
(`aetherflow.tui.entry.run_in_tui`, `run_session`).
"""
