"""Allow `python -m aetherflow`."""

from aetherflow.cli import main

main()
