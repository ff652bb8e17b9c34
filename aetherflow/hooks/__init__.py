"""Git hooks: a generic installer (`installer`) and the entry points the installed scripts call."""
