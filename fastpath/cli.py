"""The ``fastpath`` command: serve, client, bench, version."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from fastpath import __version__


LOG_LEVELS = ("debug", "info", "warning", "error")


def _apply_log_level(args) -> None:
    """``--log-level`` wins over ``FASTPATH_LOG_LEVEL``; it is passed on through that variable,
    which every process of the node reads (supervisor, workers, control API, gunicorn)."""
    if getattr(args, "log_level", None):
        os.environ["FASTPATH_LOG_LEVEL"] = args.log_level.upper()


def _serve(args) -> int:
    from fastpath.supervisor.supervisor import serve
    return serve(args.config, args.data_dir, use_uvloop=not args.no_uvloop,
                 reset_store=args.reset_store)


def _client(args) -> int:
    try:
        from fastpath.hy2.client.client_main import run_client
    except ModuleNotFoundError:
        print("fastpath: this build has no Hysteria 2 client", file=sys.stderr)
        return 2
    return run_client(args.config)


def _bench(args) -> int:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bench_dir = os.path.join(here, "bench")
    if not os.path.isdir(bench_dir):
        print("fastpath: bench/ is not present (benchmarks run from a source checkout)",
              file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "pytest", bench_dir, "--benchmark-enable", "-q", *args.pytest_args]
    return subprocess.call(cmd, cwd=here)


def _version(_args) -> int:
    print(f"fastpath {__version__} (Python {sys.version.split()[0]})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastpath",
        description="Proxy and stream-relay node: Hysteria 2 over QUIC, live media fan-out, "
                    "and the control APIs existing panels speak.")
    parser.add_argument("--version", action="version",
                        version=f"fastpath {__version__} (Python {sys.version.split()[0]})")
    level_help = ("log level: debug, info, warning or error (default: FASTPATH_LOG_LEVEL, "
                  "else info)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    serve = sub.add_parser("serve", help="run a node (supervisor, data-plane workers, control API)",
                           description="Run a node.  Without -c it runs on built-in defaults: data "
                                       "in ./fastpath-data, control API on 127.0.0.1:9480.")
    serve.add_argument("-c", "--config", help="node config (YAML); Hysteria 2 server configs are accepted as is")
    serve.add_argument("--data-dir", help="data directory (default: node.dataDir or ./fastpath-data)")
    serve.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    serve.add_argument("--reset-store", action="store_true",
                       help="start with an empty state store when state.db is missing or unusable (moved aside)")
    serve.add_argument("--log-level", choices=LOG_LEVELS, type=str.lower, help=level_help)
    serve.set_defaults(func=_serve)

    client = sub.add_parser(
        "client", help="run a Hysteria 2 client with local SOCKS5/HTTP/forwarding listeners",
        description="Run a Hysteria 2 client: connect to a server (fastpath, the reference "
                    "server or sing-box) and serve local SOCKS5, HTTP proxy and TCP/UDP "
                    "forwarding listeners through it.  The config takes the reference client's "
                    "keys (server, auth, tls, obfs, quic, bandwidth, socks5, http, "
                    "tcpForwarding, udpForwarding).  Exits non-zero when it cannot start "
                    "(unreachable server, refused password, certificate that does not verify, "
                    "taken local port), with one line saying which.")
    client.add_argument("-c", "--config", required=True, help="client config (YAML, the reference client's keys)")
    client.add_argument("--log-level", choices=LOG_LEVELS, type=str.lower, help=level_help)
    client.set_defaults(func=_client)

    bench = sub.add_parser("bench", help="run the benchmark harness (bench/) and print ratios")
    bench.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    bench.set_defaults(func=_bench)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_version)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _apply_log_level(args)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
