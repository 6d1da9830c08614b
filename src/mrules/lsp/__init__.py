"""The mrules language server: `analysis` (what is known about a rule set, on offsets)
and `server` (the protocol, on pygls; imported only by `mrules lsp`)."""
