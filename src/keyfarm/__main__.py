"""`python -m keyfarm` runs the CLI."""
from keyfarm.cli import main

main()
