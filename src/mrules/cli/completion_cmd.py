"""`mrules completion SHELL`: print the shell completion script for bash, zsh or fish."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

__all__ = ["COMMANDS", "completion"]

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    Commands, options, choices and paths complete with Tab once the script is
    loaded; docs/editors.md says where to put it for each shell.

    \b
    Example:
      eval "$(mrules completion bash)"                 # in ~/.bashrc
      mrules completion fish > ~/.config/fish/completions/mrules.fish

    Exit status (docs/exit-codes.md): 0 done; 2 a shell other than bash, zsh or
    fish; 4 standard output is closed.
    """
    from mrules.cli.common import stdout_or_exit

    stdout_or_exit()  # closed (`>&-`): exit 4, not a script printed nowhere
    root = ctx.find_root().command
    cls = get_completion_class(shell)
    assert cls is not None  # the three SHELLS are click's own
    script = cls(root, {}, "mrules", "_MRULES_COMPLETE").source()
    if shell == "fish":
        script = script.replace(_FISH_SPLIT, _FISH_SPLIT_ONCE)
    click.echo(script)


_FISH_SPLIT = 'string split "," $completion'
"""How click's fish script splits each answer (`file,PATH`, `plain,VALUE<TAB>HELP`) at
every comma: a help text was cut at its first comma, and a path with a comma in it
was completed from its part before the comma."""
_FISH_SPLIT_ONCE = 'string split -m 1 "," -- $completion'
"""At the first comma only: the answer's type, then the whole value and its help."""


COMMANDS = (completion,)
