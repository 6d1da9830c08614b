"""`mrules lsp`: run the language server over standard input and output."""

from __future__ import annotations

import signal

import click

from mrules.cli.common import fail

__all__ = ["COMMANDS", "lsp"]


@click.command()
@click.option(
    "--stdio",
    is_flag=True,
    help="Talk over standard input and output (the only "
    "transport, and the default; accepted because many clients pass it).",
)
def lsp(stdio: bool) -> None:
    """Run the mrules language server (for editors).

    Speaks the Language Server Protocol over standard input and output:
    diagnostics as you type (the whole rule folder is the program), hover,
    completion, go to definition, find references, rename, document symbols,
    formatting and quick fixes. docs/editors.md shows how to set up VS Code,
    Neovim and other editors. Needs the `lsp` extra: pip install 'mrules[lsp]'.

    \b
    Example:
      mrules lsp        # started by the editor, not by hand

    Exit status: 0 when the editor ends the session (shutdown, then exit), or
    closes the server's input without exit; 1 when it sends exit without
    shutdown first, as the protocol says; 2 the `lsp` extra is not installed.
    """
    try:
        from mrules.lsp.server import serve
    except ImportError as e:
        fail(
            f"the language server needs pygls and lsprotocol ({e}); "
            "install them with: pip install 'mrules[lsp]'"
        )
    # An editor stops a server that hangs with SIGTERM: it must end at once, not be met
    # as Ctrl-C (the program's default, for commands that keep state), which the server's
    # thread reading standard input would outlive.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    serve()


COMMANDS = (lsp,)
