"""The `hotswap` command: argument parsing, config file resolution, error reporting.

Each subcommand is one `register_*` function that adds its parser and sets
its handler; COMMANDS lists them. A handler takes the parsed arguments and
returns the exit code. HotswapError is translated here: its message goes to
stderr and its `exit_code` becomes the process's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from hotswap import __version__
from hotswap.config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    Config,
    default_config_path,
    load_config,
    render_default_config,
)
from hotswap.errors import ConfigError, HotswapError

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_USAGE = 2

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Run the `hotswap` command with `argv` (default: sys.argv[1:]); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        args.parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return exc.exit_code
    except HotswapError as exc:
        print(f"hotswap: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotswap",
        description="Zero-downtime deploy proxy for apps running in Docker on one host.",
    )
    parser.add_argument("--version", action="version", version=f"hotswap {__version__}")
    _add_config_option(parser, default=None)
    parser.set_defaults(parser=parser)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in COMMANDS:
        register(commands)
    return parser


def add_command(commands: Commands, name: str, summary: str) -> argparse.ArgumentParser:
    """Add subcommand `name`; it accepts --config after its name too."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=summary, description=summary)
    # SUPPRESS: a --config given before the subcommand is not reset to None here.
    _add_config_option(parser, default=argparse.SUPPRESS)
    parser.set_defaults(parser=parser)
    return parser


def _add_config_option(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        metavar="PATH",
        help=f"configuration file (default: ${CONFIG_ENV_VAR}, else {DEFAULT_CONFIG_PATH})",
    )


def config_path(args: argparse.Namespace) -> Path:
    """The config file to use: --config, else $HOTSWAP_CONFIG, else the default path."""
    given: Path | None = args.config
    return given.expanduser() if given is not None else default_config_path()


def config_path_is_explicit(args: argparse.Namespace) -> bool:
    """True when the user named the file (--config or $HOTSWAP_CONFIG)."""
    return args.config is not None or bool(os.environ.get(CONFIG_ENV_VAR))


def load_config_from_args(args: argparse.Namespace) -> Config:
    """Load the config file the command line names (for serve and the admin clients)."""
    return load_config(config_path(args))


def write_default_config(path: Path) -> None:
    """Write the commented default config to `path` (parents created, replaced atomically)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 (tempfile's mode): the file may later hold the admin token.
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as tmp:
            tmp.write(render_default_config())
        try:
            os.replace(tmp.name, path)
        except OSError:
            os.unlink(tmp.name)
            raise
    except OSError as exc:
        raise HotswapError(f"cannot write {path}: {exc.strerror or exc}") from exc


# ----------------------------------------------------------------------------- serve


def register_serve(commands: Commands) -> None:
    summary = "run the proxy, the admin API and the deploy controller"
    parser = add_command(commands, "serve", summary)
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_format, args.log_level)
    path = config_path(args)
    if not config_path_is_explicit(args) and not path.exists():
        write_default_config(path)
        print(
            f"hotswap: no configuration found; wrote a commented default to {path} "
            "(add routes there)",
            file=sys.stderr,
        )
    config = load_config(path)
    log.info("config loaded path=%s routes=%d", path, len(config.routes))
    # Imported here: the CLI's other commands must not pay for (or depend on) the server.
    from hotswap.app import serve

    return serve(config)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(log_format: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# ---------------------------------------------------------------------------- config


def register_config(commands: Commands) -> None:
    parser = add_command(commands, "config", "create or check a configuration file")
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    init = add_command(actions, "init", "write a commented default configuration")
    init.add_argument("path", nargs="?", type=Path, metavar="PATH", help="default: --config")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler=_config_init)
    check = add_command(actions, "check", "validate a configuration file")
    check.add_argument("path", nargs="?", type=Path, metavar="PATH", help="default: --config")
    check.set_defaults(handler=_config_check)


def _config_init(args: argparse.Namespace) -> int:
    path: Path = args.path.expanduser() if args.path else config_path(args)
    if path.exists() and not args.force:
        raise HotswapError(f"{path} already exists; use --force to overwrite it")
    write_default_config(path)
    print(f"wrote a commented default configuration to {path}")
    return 0


def _config_check(args: argparse.Namespace) -> int:
    path: Path = args.path.expanduser() if args.path else config_path(args)
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    routes, external = len(config.routes), len(config.external_routes)
    print(f"ok: {path}: {routes} routes, {external} external routes")
    return 0


COMMANDS: list[Callable[[Commands], None]] = [register_serve, register_config]
