// The mrules VS Code extension: the grammar and language configuration are declared in
// package.json; this starts the language server (`mrules lsp`) for .mr files.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("mrules");
  const command = config.get("server.command", "mrules");
  const args = config.get("server.args", ["lsp"]);
  const serverOptions = {
    run: { command, args, transport: TransportKind.stdio },
    debug: { command, args, transport: TransportKind.stdio },
  };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "mrules" }],
    synchronize: {
      // Rule files changed outside the editor (git checkout, mrules fmt) are checked again.
      fileEvents: vscode.workspace.createFileSystemWatcher("**/{*.mr,mrules.toml,pyproject.toml}"),
    },
  };
  client = new LanguageClient("mrules", "mrules", serverOptions, clientOptions);
  client.start().catch((err) => {
    vscode.window.showErrorMessage(
      `mrules: cannot start the language server with "${command} ${args.join(" ")}": ` +
        `${err.message}. Install it with: pip install 'mrules[lsp]', or set mrules.server.command.`
    );
  });
  context.subscriptions.push({ dispose: () => (client ? client.stop() : undefined) });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
