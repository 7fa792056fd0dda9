"""`python -m keyfarm.enforce` runs the enforce command on its own."""
from keyfarm.enforce.command import enforce_command

enforce_command()
