"""`cg3d serve`: the search page over an index, on this machine only unless ``--host`` says otherwise."""

from __future__ import annotations

import sys

from cg3d.inference.commands import method_option, model_options, open_search


def _serve(args) -> None:
    from cg3d.serve.app import create_app

    app = create_app(open_search(args))
    print(f"cg3d serve: http://{args.host}:{args.port}/ (Ctrl-C stops it)", file=sys.stderr)
    app.run(host=args.host, port=args.port, threaded=False)  # one request at a time: the model is not thread-safe


def add_serve_command(sub) -> None:
    """Add ``serve`` to the ``cg3d`` parser's subparsers."""
    serve = sub.add_parser("serve", help="a local search page over an index")
    serve.add_argument("--index", required=True, help="an embeddings file with thumbnails")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    method_option(serve)
    model_options(serve, checkpoint_required=False)
    serve.set_defaults(handler=_serve, user_command=True)
