"""The ``fastpath`` command: serve, client, bench, version."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from fastpath import __version__


def _serve(args) -> int:
    from fastpath.supervisor.supervisor import serve
    return serve(args.config, args.data_dir, use_uvloop=not args.no_uvloop,
                 reset_store=args.reset_store)


def _client(args) -> int:
    try:
        from fastpath.hy2.client_main import run_client
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
    serve.set_defaults(func=_serve)

    client = sub.add_parser("client", help="run a Hysteria 2 client with local SOCKS5/HTTP/forwarding listeners")
    client.add_argument("-c", "--config", required=True, help="client config (YAML, the reference client's keys)")
    client.set_defaults(func=_client)

    bench = sub.add_parser("bench", help="run the benchmark harness (bench/) and print ratios")
    bench.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    bench.set_defaults(func=_bench)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_version)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
