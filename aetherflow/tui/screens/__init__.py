"""The TUI's screens: run, review, session, and the modal dialogs."""
