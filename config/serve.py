"""daphne, with secrets taken out of its access log: `python -m config.serve` takes daphne's
arguments.

daphne writes each request's full URI to its access log, query included, so an API token sent
as `?token=` (websockets, scripts) would sit in every log that keeps those lines. Its command
line has no hook for the log's format; its Server takes the function that writes each line,
so this one hands it the path redacted (config.logfilters.redact_url_secrets).
"""

from __future__ import annotations

from collections.abc import Callable

from daphne.cli import CommandLineInterface
from daphne.server import Server

from config.logfilters import redact_url_secrets

ActionLogger = Callable[[str, str, dict], None]


def redacting(action_logger: ActionLogger) -> ActionLogger:
    def log(protocol: str, action: str, details: dict) -> None:
        path = details.get("path")
        if isinstance(path, str):
            details = {**details, "path": redact_url_secrets(path)}
        action_logger(protocol, action, details)

    return log


class RedactingServer(Server):
    def __init__(self, *args, action_logger: ActionLogger | None = None, **kwargs) -> None:
        if action_logger is not None:
            action_logger = redacting(action_logger)
        super().__init__(*args, action_logger=action_logger, **kwargs)


class RedactingCommandLine(CommandLineInterface):
    server_class = RedactingServer


if __name__ == "__main__":
    RedactingCommandLine.entrypoint()
