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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias

from hotswap import __version__
from hotswap.config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    Config,
    default_config_path,
    load_config,
)
from hotswap.config_render import render_default_config
from hotswap.errors import ConfigError, HotswapError
from hotswap.logs import LOG_FORMATS, LOG_LEVELS, configure_logging

if TYPE_CHECKING:
    from hotswap.admin.client import AdminClient

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]

_ROUTE_HELP = 'a route key: a domain, or a domain with a path prefix ("example.com/api")'
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
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument(
        "--takeover",
        action="store_true",
        help="take over the listening sockets of the running `serve` of the same config; "
        "it stops accepting, finishes its requests and exits",
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_format, args.log_level)
    path = config_path(args)
    if not config_path_is_explicit(args) and not path.exists() and not args.takeover:
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

    return serve(config, takeover=args.takeover)


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


# ------------------------------------------------- clients of the admin API (admin/)


def admin_client(args: argparse.Namespace) -> AdminClient:
    """A client for the server the config file describes (admin_listen and the token)."""
    from hotswap.admin.client import AdminClient

    return AdminClient.from_config(load_config_from_args(args))


def follow_progress(events: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Print deploy progress as it arrives; the exit code: 0 done or skipped, 1 otherwise."""
    from hotswap.admin.render import ProgressRenderer, exit_code

    renderer = ProgressRenderer(tty=out.isatty())
    try:
        for event in events:
            out.write(renderer.feed(event))
            out.flush()
    except KeyboardInterrupt:
        out.write(renderer.finish())
        print("hotswap: stopped following; the deploy goes on in the server", file=sys.stderr)
        raise
    finally:
        out.write(renderer.finish())
        out.flush()
    if renderer.outcome is None:
        print(f"hotswap: {renderer.summary()}", file=sys.stderr)
    return exit_code(renderer.outcome)


def register_deploy(commands: Commands) -> None:
    parser = add_command(commands, "deploy", "deploy a route through the running server")
    parser.add_argument("domain", metavar="ROUTE", help=_ROUTE_HELP)
    parser.add_argument("--image", metavar="REF", help="image to deploy (default: the route's)")
    parser.add_argument(
        "--force", action="store_true", help="deploy even if the image id is the running one"
    )
    parser.set_defaults(handler=_deploy)


def _deploy(args: argparse.Namespace) -> int:
    events = admin_client(args).deploy(args.domain, args.image, force=args.force)
    return follow_progress(events, sys.stdout)


def register_rollback(commands: Commands) -> None:
    summary = "redeploy the image that ran before the last deploy"
    parser = add_command(commands, "rollback", summary)
    parser.add_argument("domain", metavar="ROUTE", help=_ROUTE_HELP)
    parser.set_defaults(handler=_rollback)


def _rollback(args: argparse.Namespace) -> int:
    return follow_progress(admin_client(args).rollback(args.domain), sys.stdout)


def register_status(commands: Commands) -> None:
    summary = "show routes, containers, in-flight counts and last deploys"
    parser = add_command(commands, "status", summary)
    parser.add_argument("--json", action="store_true", help="print the status document as JSON")
    parser.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from hotswap.admin.render import render_status

    document = admin_client(args).status()
    if args.json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_status(document))
    return 0


def register_reload(commands: Commands) -> None:
    parser = add_command(commands, "reload", "make the running server re-read its config file")
    parser.set_defaults(handler=_reload)


def _reload(args: argparse.Namespace) -> int:
    changes = admin_client(args).reload()
    if not changes:
        print("reloaded: no changes")
    for line in changes:
        print(f"reloaded: {line}")
    return 0


def register_pause(commands: Commands) -> None:
    summary = "hold a route's new requests until `hotswap resume` (each at most --timeout)"
    parser = add_command(commands, "pause", summary)
    parser.add_argument("route", metavar="ROUTE")
    parser.add_argument(
        "--timeout", default=None, help='how long a request may wait, then 503 (default "30s")'
    )
    parser.set_defaults(handler=_pause)


def _pause(args: argparse.Namespace) -> int:
    answer = admin_client(args).pause(args.route, args.timeout)
    print(f"paused {args.route}: new requests wait up to {answer.get('timeout', 0):g}s")
    return 0


def register_resume(commands: Commands) -> None:
    parser = add_command(commands, "resume", "release a paused route's requests, in order")
    parser.add_argument("route", metavar="ROUTE")
    parser.set_defaults(handler=_resume)


def _resume(args: argparse.Namespace) -> int:
    answer = admin_client(args).resume(args.route)
    print(f"resumed {args.route}" if answer.get("was_paused") else f"{args.route} was not paused")
    return 0


def register_maintenance(commands: Commands) -> None:
    summary = "answer a route with 503 and a maintenance page until --off"
    parser = add_command(commands, "maintenance", summary)
    parser.add_argument("route", metavar="ROUTE")
    parser.add_argument("--message", default="", help="shown on the page (and in the JSON)")
    parser.add_argument("--retry-after", default=None, help='sent as Retry-After (default "5m")')
    parser.add_argument("--off", action="store_true", help="serve the route again")
    parser.set_defaults(handler=_maintenance)


def _maintenance(args: argparse.Namespace) -> int:
    if args.off and (args.message or args.retry_after):
        print("hotswap maintenance: --off takes no --message or --retry-after", file=sys.stderr)
        return EXIT_USAGE
    client = admin_client(args)
    answer = client.maintenance(
        args.route, message=args.message, retry_after=args.retry_after, off=args.off
    )
    state = answer.get("maintenance")
    if state is None:
        print(f"{args.route}: maintenance off, serving again")
    else:
        print(f"{args.route}: in maintenance (503, Retry-After {state['retry_after']:g}s)")
    return 0


def register_logs(commands: Commands) -> None:
    summary = "show a route's container logs through the running server"
    parser = add_command(commands, "logs", summary)
    parser.add_argument("route", metavar="ROUTE", help=_ROUTE_HELP)
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing new lines, following the route across deploys and restarts",
    )
    parser.add_argument("--tail", type=_line_count, metavar="N", help="only the last N lines")
    parser.add_argument(
        "--since",
        metavar="DURATION",
        type=_duration_text,
        help='only lines from the last DURATION, e.g. "10m"',
    )
    parser.set_defaults(handler=_logs)


def _line_count(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a number of lines, got {text!r}")
    return int(text)


def _duration_text(text: str) -> str:
    from hotswap.units import parse_duration

    try:
        parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _logs(args: argparse.Namespace) -> int:
    """Log lines to stdout as they come; where the stream moves to another container, a
    note to stderr. With --follow the stream only ends when the server stops."""
    events = admin_client(args).logs(
        args.route, follow=args.follow, tail=args.tail, since=args.since or ""
    )
    containers = 0
    for event in events:
        kind = event.get("event")
        if kind == "container":
            containers += 1
            if containers > 1:
                print(
                    f"hotswap: now {event.get('container')} ({event.get('image')})",
                    file=sys.stderr,
                    flush=True,
                )
        elif kind == "error":
            raise HotswapError(str(event.get("error")))
        elif "line" in event:
            sys.stdout.write(f"{event['line']}\n")
            sys.stdout.flush()
    if args.follow:
        raise HotswapError("the server ended the log stream (is hotswap stopping?)")
    return 0


COMMANDS: list[Callable[[Commands], None]] = [
    register_serve,
    register_config,
    register_deploy,
    register_rollback,
    register_status,
    register_reload,
    register_pause,
    register_resume,
    register_maintenance,
    register_logs,
]
