"""The ``weightcache`` command line (typer + rich): every command, registered from one list."""

from . import adopt_commands, commands, modal_commands, prefetch_commands, selftest_command, source_commands
from .app import app, main

#: Every command, by name, in the order ``weightcache --help`` lists them.
COMMANDS = [
    ("ensure", commands.ensure),
    ("ls", commands.list_entries),
    ("status", commands.status),
    ("verify", commands.verify),
    ("rm", commands.remove),
    ("gc", commands.gc),
    ("outdated", source_commands.outdated),
    ("prefetch", prefetch_commands.prefetch),
    ("push", modal_commands.push),
    ("pull", modal_commands.pull),
    ("export", modal_commands.export_command),
    ("import", modal_commands.import_command),
    ("adopt-hf-cache", adopt_commands.adopt_hf_cache_command),
    ("selftest", selftest_command.selftest),
    ("demo", commands.demo),
]

#: Each command's --help ends with the global options, which the app's callback takes.
_EPILOG = "Global options, before or after the command: --store DIR, --json, --debug (weightcache --help)."

for _name, _function in COMMANDS:
    app.command(_name, epilog=_EPILOG)(_function)

__all__ = ["COMMANDS", "app", "main"]
