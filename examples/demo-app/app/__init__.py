"""A small web application with password login and sessions, used by AetherFlow's quick start."""
