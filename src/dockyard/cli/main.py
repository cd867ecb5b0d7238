"""``dockyard``: docker's command line over Dockyard's client.

Global flags come first (``-H``, ``--tls*``, ``-D``), then a verb
(``images``) or a management command and its verb (``image ls``).  Only the
module of the command run is imported (see ``registry``).

Exit codes as docker's: 0 success; 1 for a failed command (a daemon error
answer, a missing object); 125 for bad flags, and for ``run``/``create``
when the daemon fails them; 126/127 and container statuses belong to the
container verbs.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Sequence

from dockyard.cli.context import PROG, CommandFailed, Context, UsageError
from dockyard.cli.registry import COMMANDS, GROUPS, CommandSpec

GLOBAL_FLAGS_WITH_VALUE = {"-H", "--host", "-l", "--log-level", "--tlscacert", "--tlscert", "--tlskey",
                           "--config", "-c", "--context"}
GLOBAL_USAGE_TAIL = f"Usage:  {PROG} [OPTIONS] COMMAND [ARG...]\n\nRun '{PROG} --help' for more information"
GLOBAL_SWITCHES = {"-D", "--debug", "--tls", "--tlsverify", "-v", "--version", "-h", "--help"}
#: short global flags -> their long names
GLOBAL_ALIASES = {"-H": "host", "-l": "log-level", "-c": "context", "-D": "debug", "-v": "version", "-h": "help"}


def usage() -> str:
    lines = [f"Usage:  {PROG} [OPTIONS] COMMAND", "", "A container engine that speaks the Docker Engine API", "",
             "Management Commands:"]
    for name, group in GROUPS.items():
        lines.append(f"  {name:<12}{group.summary}")
    lines += ["", "Commands:"]
    for name, spec in COMMANDS.items():
        lines.append(f"  {name:<12}{spec.summary}")
    lines += ["", "Global Options:",
              "  -H, --host string        Daemon socket to connect to (env DOCKYARD_HOST, DOCKER_HOST)",
              "  -D, --debug              Enable debug mode",
              "      --tls                Use TLS; implied by --tlsverify",
              "      --tlscacert string   Trust certs signed only by this CA",
              "      --tlscert string     Path to TLS certificate file",
              "      --tlskey string      Path to TLS key file",
              "      --tlsverify          Use TLS and verify the remote",
              "  -v, --version            Print version information and quit",
              "", f"Run '{PROG} COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def group_usage(name: str) -> str:
    group = GROUPS[name]
    lines = [f"Usage:  {PROG} {name} COMMAND", "", group.summary, "", "Commands:"]
    for verb, spec in group.commands.items():
        lines.append(f"  {verb:<12}{spec.summary}")
    lines += ["", f"Run '{PROG} {name} COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _split_globals(argv: list[str]) -> tuple[dict[str, object], list[str]]:
    opts: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.partition("=")
        if name in GLOBAL_FLAGS_WITH_VALUE:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"flag needs an argument: {name}\n\n{GLOBAL_USAGE_TAIL}")
                value = argv[i + 1]
                i += 1
            opts[GLOBAL_ALIASES.get(name, name.lstrip("-"))] = value
        elif arg in GLOBAL_SWITCHES:
            opts[GLOBAL_ALIASES.get(arg, arg.lstrip("-"))] = True
        else:
            raise UsageError(f"unknown flag: {name}\n\n{GLOBAL_USAGE_TAIL}")
        i += 1
    return opts, argv[i:]


def _tls_from(opts: dict[str, object]):  # -> TLSConfig | None
    env_verify = os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
    verify = bool(opts.get("tlsverify")) or env_verify
    use_tls = verify or bool(opts.get("tls")) or any(k in opts for k in ("tlscacert", "tlscert", "tlskey"))
    if not use_tls:
        return None
    from dockyard.client import TLSConfig

    cert_path = os.environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")

    def pick(key: str, default_name: str) -> str | None:
        if key in opts:
            return str(opts[key])
        candidate = os.path.join(cert_path, default_name)
        return candidate if os.path.exists(candidate) else None

    return TLSConfig(ca_cert=pick("tlscacert", "ca.pem"), cert=pick("tlscert", "cert.pem"),
                     key=pick("tlskey", "key.pem"), verify=verify)


def resolve(args: list[str]) -> tuple[CommandSpec | None, str, list[str], str | None]:
    """(command, display name, its argv, help text to print instead)."""
    if not args:
        return None, "", [], usage()
    word = args[0]
    if word in GROUPS:
        if len(args) < 2 or args[1] in ("-h", "--help"):
            return None, word, [], group_usage(word)
        spec = GROUPS[word].find(args[1])
        if spec is None:
            raise UsageError(f"{PROG}: unknown command: {PROG} {word} {args[1]}\n\nUsage:  {PROG} {word}\n\n"
                             f"Run '{PROG} {word} --help' for more information", status=1)
        return spec, f"{word} {args[1]}", args[2:], None
    spec = COMMANDS.get(word)
    if spec is None:
        raise UsageError(f"{PROG}: unknown command: {PROG} {word}\n\nRun '{PROG} --help' for more information",
                         status=1)
    return spec, word, args[1:], None


def run(argv: Sequence[str], ctx: Context | None = None) -> int:
    from dockyard.errors import DockyardError

    ctx = ctx or Context()
    try:
        opts, rest = _split_globals(list(argv))
        if opts.get("help"):
            ctx.write(usage())
            return 0
        if opts.get("version"):
            from dockyard import __version__

            ctx.write(f"Dockyard version {__version__}\n")
            return 0
        ctx.host = str(opts["host"]) if "host" in opts else (
            os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST"))
        ctx.debug = bool(opts.get("debug"))
        ctx.tls = _tls_from(opts)
        spec, name, cmd_argv, help_text = resolve(rest)
        if help_text is not None or spec is None:
            ctx.write(help_text or usage())
            return 0
        module_name, func_name = spec.target.split(":")
        module = importlib.import_module(f"dockyard.cli.commands.{module_name}")
        return int(getattr(module, func_name)(ctx, cmd_argv, name) or 0)
    except UsageError as e:
        ctx.err.write(e.message.rstrip("\n") + "\n")
        return e.status
    except CommandFailed as e:
        return e.status
    except DockyardError as e:
        return report_error(ctx, e)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (| head): not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 141
    finally:
        if ctx._client is not None:
            ctx._client.close()


def report_error(ctx: Context, error: Exception, status: int = 1) -> int:
    """Print an error as docker does and return the exit status."""
    from dockyard.cli.template import TemplateError
    from dockyard.client import ConnectionFailed, RemoteError

    if isinstance(error, RemoteError):
        ctx.err.write(f"Error response from daemon: {error.message}\n")
    elif isinstance(error, ConnectionFailed):
        ctx.err.write(f"{error.message}\n")
    elif isinstance(error, TemplateError):
        ctx.err.write(f"template parsing error: {error.message}\n")
    else:
        ctx.err.write(f"Error: {getattr(error, 'message', str(error))}\n")
    return status


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
