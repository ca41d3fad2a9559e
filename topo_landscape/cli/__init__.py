"""The ``topo-landscape`` command line."""

from __future__ import annotations

import os
import sys
import time
import warnings

from .commands import (
    _analyze,
    _device,
    _export,
    _info,
    _plot,
    _sample,
    _series,
    demo,
)
from .commands import load_factory as load_factory  # (names scripts and tests use, from here)
from .commands import summary as summary
from .options import EXAMPLES as EXAMPLES
from .options import REQUIRED, _checked_config, _parser, read_config
from .options import markdown as markdown

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``topo-landscape`` command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program's name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        The exit status: 0, 2 for bad input or a file that cannot be used (one ``error:``
        line), 1 for an error from the user's model or loss, 130 after Ctrl-C, 141 when the
        reader of the output stopped.
    """
    parser, subparsers = _parser()
    args = parser.parse_args(argv)
    sub = subparsers[args.command]
    with warnings.catch_warnings():  # each warning as one line, as the errors are
        warnings.simplefilter("default")
        warnings.showwarning = lambda message, *_, **__: print(
            f"topo-landscape {args.command}: warning: {' '.join(str(message).split())}",
            file=sys.stderr,
        )
        return _run(parser, sub, args, argv)


def _run(parser, sub, args, argv) -> int:
    import shlex

    command_line = shlex.join(["topo-landscape", *(sys.argv[1:] if argv is None else argv)])
    args.command_line = command_line
    try:
        if args.config:
            sub.set_defaults(**_checked_config(read_config(args.config), sub, args.command))
            args = parser.parse_args(argv)
            args.command_line = command_line
        if getattr(args, "normalization", None) == "none":  # flag or config file alike
            args.normalization = None
        missing = [name for name in REQUIRED.get(args.command, []) if getattr(args, name) is None]
        if missing:
            sub.error(
                "missing "
                + ", ".join(f"--{m.replace('_', '-')}" if m != "landscape" else m for m in missing)
            )
        if args.command == "demo":
            start = time.perf_counter()
            paths = demo(
                args.output, device=_device(args.device), resolution=args.resolution, seed=args.seed
            )
            for name, path in paths.items():
                print(f"wrote {name}: {os.path.abspath(path)}")
            print(f"done in {time.perf_counter() - start:.1f} s")
        else:
            {
                "sample": _sample,
                "analyze": _analyze,
                "plot": _plot,
                "series": _series,
                "info": _info,
                "export": _export,
            }[args.command](args)
    except KeyboardInterrupt:
        print(f"topo-landscape {args.command}: {_interrupted(args)}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, ImportError) as err:
        # bad input: the message names the argument and what was expected, on one line
        print(
            f"topo-landscape {args.command}: error: {' '.join(str(err).split())}", file=sys.stderr
        )
        return 2
    except BrokenPipeError:  # the reader of our output stopped (`... | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # (so that flushing at exit cannot fail again)
        return 141  # as a shell reports a process ended by SIGPIPE
    except OSError as err:  # a file that cannot be read or written
        where = f": {err.filename!r}" if err.filename else ""
        print(
            f"topo-landscape {args.command}: error: {err.strerror or err}{where}", file=sys.stderr
        )
        return 2
    except Exception as err:  # from the user's model or loss, or a bug of ours
        if os.environ.get("TOPO_LANDSCAPE_TRACEBACK"):
            raise
        print(
            f"topo-landscape {args.command}: error: {type(err).__name__}: {err} "
            "(TOPO_LANDSCAPE_TRACEBACK=1 shows where)",
            file=sys.stderr,
        )
        return 1
    return 0


def _interrupted(args) -> str:
    """One line after Ctrl-C: what was saved, and the command that goes on from there."""
    again = args.command_line
    output = getattr(args, "output", None)
    if args.command == "sample" and output:
        from topo_landscape.sampling.store import progress_of

        done, total = progress_of(output) or (0, 0)
        if total and done == total:
            return f"interrupted after {output} was complete"
        if done:
            return (
                f"interrupted: {done:,} of {total:,} points are saved in {output}; to go on, "
                f"run again: {again}"
            )
    if args.command == "series" and output and os.path.isdir(output):
        return (
            f"interrupted: finished landscapes (and the one in progress, in part) are saved in "
            f"{output}; to go on, run again: {again}"
        )
    return "interrupted; nothing was saved"
