"""python tools/aws_front --host 127.0.0.1 --aws-port A --opensearch-port O --iot-port I ..."""

from __future__ import annotations

import argparse
import os
import sys


def _package():
    if __package__:
        from . import server

        return server
    # Run as `python DIR/aws_front`: import the package by its directory name from DIR.
    import importlib

    here = os.path.dirname(os.path.abspath(__file__))
    parent, name = os.path.split(here)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    return importlib.import_module(f"{name}.server")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aws_front", description="The strict AWS front of the local stand-ins.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--aws-port", type=int, required=True)
    parser.add_argument("--opensearch-port", type=int, required=True)
    parser.add_argument("--opensearch-backend", default=None, help="osmem URL, e.g. http://127.0.0.1:9200")
    parser.add_argument("--opensearch-max-body", type=int, default=10 * 1024 * 1024)
    parser.add_argument("--opensearch-domain", default="robofleet")
    parser.add_argument("--iot-port", type=int, required=True)
    parser.add_argument("--iot-backend", default=None, help="the shadow service's HTTP URL")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--account", default="123456789012")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--developer",
        metavar="ACCESS_KEY:SECRET",
        default=None,
        help="register arn:aws:iam::ACCOUNT:user/NAME (NAME: --developer-name; allowed everything) with these fixed keys",
    )
    parser.add_argument("--developer-name", metavar="NAME", default="developer", help="the IAM user name of --developer (default: developer)")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.host.startswith("127."):
        parser.error("the front serves loopback only (its admin API is unauthenticated)")
    os.environ.setdefault("MOTO_ACCOUNT_ID", args.account)
    server_mod = _package()
    try:
        front = server_mod.Front(
            region=args.region,
            account=args.account,
            opensearch_domain=args.opensearch_domain,
            opensearch_backend=args.opensearch_backend.rstrip("/") if args.opensearch_backend else None,
            iot_backend=args.iot_backend.rstrip("/") if args.iot_backend else None,
            opensearch_max_body=args.opensearch_max_body,
        )
    except ValueError as e:
        parser.error(str(e))
    if args.developer:
        key, _, secret = args.developer.partition(":")
        if not key or not secret:
            parser.error("--developer takes ACCESS_KEY:SECRET")
        try:
            front.registry.register_principal(
                f"arn:aws:iam::{args.account}:user/{args.developer_name}",
                [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}],
                access_key=key,
                secret_key=secret,
            )
        except ValueError as e:  # policy.PolicyError: a bad --developer-name
            parser.error(f"--developer-name: {e}")
    server, ports = server_mod.make_server(front, args.host, args.aws_port, args.opensearch_port, args.iot_port, args.threads)
    h = args.host
    print(f"aws-front: aws http://{h}:{ports[0]} opensearch http://{h}:{ports[1]} iot http://{h}:{ports[2]}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()  # the endpoints opened at run time end with the process


if __name__ == "__main__":
    main()
