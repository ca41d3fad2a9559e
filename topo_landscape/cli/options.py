"""The command line's options: the parser of every command, its examples and their
Markdown page (docs/cli.md), and configuration files read as the flags are."""

from __future__ import annotations

import argparse
import os

ABOUT = """A factory is "package.module:function" (or "path/to/file.py:function") returning
(model, loss_fn, batches). A configuration file (TOML, or YAML with PyYAML installed) holds the
same options as the flags, with underscores: resolution = 21, directions = "hessian", ...
Flags given on the command line win over the file."""


EXAMPLES = {
    "demo": ["topo-landscape demo --output demo_output"],
    "sample": [
        "topo-landscape sample --factory mypkg.models:make --output run.h5",
        "topo-landscape sample --factory nets.py:make --checkpoint ckpt.pt \\\n"
        "      --directions hessian --n 3 --output run.h5",
        "topo-landscape sample --config sample.toml          # the same options from a file",
        "torchrun --nproc_per_node 4 -m topo_landscape.cli sample --factory nets.py:make \\\n"
        "      --device cuda --autocast bf16 --output run.h5    # one GPU per process",
    ],
    "analyze": ["topo-landscape analyze run.h5 --json features.json --pictures figs/"],
    "plot": [
        "topo-landscape plot run.h5 --kind profile --scale log --output profile.pdf",
        "topo-landscape plot run.h5 --kind surface --output contour.png",
    ],
    "series": [
        "topo-landscape series --factory mypkg.models:make --checkpoints ckpts/ --output series/",
        "topo-landscape series --factory nets.py:make --checkpoints 'run/epoch*.pt' \\\n"
        "      --directions hessian --output series/",
    ],
    "info": ["topo-landscape info run.h5", "topo-landscape info run.h5 --json"],
    "export": [
        "topo-landscape export run.h5 --output run.nc     # netCDF, through xarray",
        "topo-landscape export run.h5 --output run.vtu    # for ParaView, through meshio",
    ],
}


def _epilog(commands) -> str:
    lines = ["examples:"] + [f"  {line}" for c in commands for line in EXAMPLES[c]]
    return "\n".join(lines) + "\n\n" + ABOUT


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; each option's default shown after its help (where it has one)."""

    def _get_help_string(self, action):
        help = action.help or ""
        unset = action.default is None or action.default is False
        if unset or action.default == argparse.SUPPRESS or "%(default)" in help:
            return help
        return f"{help} (default: %(default)s)"


PLOT_KINDS = [
    "profile",
    "surface",
    "heatmap",
    "surface3d",
    "diagram",
    "barcode",
    "merge-tree",
    "html",
]


REQUIRED = {
    "sample": ["factory", "output"],
    "analyze": ["landscape"],
    "plot": ["landscape", "output"],
    "series": ["factory", "checkpoints", "output"],
    "info": ["landscape"],
    "export": ["landscape", "output"],
}


def _sampling_options(p) -> None:
    p.add_argument(
        "--factory",
        help="package.module:function or file.py:function returning (model, loss_fn, batches)",
    )
    p.add_argument(
        "--directions",
        choices=["random", "hessian"],
        default="random",
        help="random (filter-normalised) directions or the top Hessian eigenvectors",
    )
    p.add_argument("--n", type=int, default=2, help="number of directions (grid dimensions)")
    p.add_argument(
        "--normalization",
        choices=["filter", "layer", "global", "none"],
        default="filter",
        help="how random directions are scaled against the weights (Li et al. 2018)",
    )
    p.add_argument("--resolution", type=int, default=21, help="grid points per axis")
    p.add_argument(
        "--span",
        type=float,
        default=None,
        help="half-width of each axis; without it, 1 for random directions and, for "
        "Hessian ones, where the quadratic model has changed by --rise",
    )
    p.add_argument(
        "--rise",
        type=float,
        default=1.0,
        help="change of the quadratic model of the loss at the ends of each Hessian axis, "
        "when --span is not given",
    )
    p.add_argument(
        "--normalize-hessian",
        action="store_true",
        help="also apply --normalization to Hessian eigenvectors (they are then no longer "
        "eigenvectors, and --span defaults to 1)",
    )
    p.add_argument(
        "--mode",
        choices=["auto", "vmap", "loop"],
        default="auto",
        help="many grid points per call (vmap), one at a time in place (loop), or time both",
    )
    p.add_argument(
        "--device", default=None, help="torch device, e.g. cpu or cuda (the model's own)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions")


def _scale_option(p) -> None:
    p.add_argument(
        "--scale",
        choices=["auto", "log", "linear"],
        default="auto",
        help="the loss axis and colours: logarithmic when the loss is positive and spans "
        "two decades (auto, as every picture of the library), or as asked",
    )


def _tree_options(p) -> None:
    p.add_argument(
        "--graph",
        choices=["grid", "knn"],
        default="grid",
        help="neighbours: the grid's stencil, or a mutual k-nearest-neighbour graph",
    )
    p.add_argument(
        "--connectivity",
        choices=["full", "axis"],
        default="full",
        help="grid stencil: all 3^n - 1 neighbours, or the 2n along the axes",
    )
    p.add_argument("--k", type=int, default=None, help="neighbours of the k-NN graph (4n)")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.0,
        help="drop branches of persistence below this loss difference",
    )
    p.add_argument(
        "--noise",
        type=float,
        default=None,
        metavar="K",
        help="drop branches within K standard errors of the noise over batches "
        "(a file sampled over several batches)",
    )


def _demo_options(p) -> None:
    p.add_argument("--output", default="demo_output", help="folder for the files")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--resolution", type=int, default=41, help="grid points per axis")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, training and directions")


def _sample_options(p) -> None:
    _sampling_options(p)
    p.add_argument(
        "--data",
        choices=["auto", "device", "stream"],
        default="auto",
        help="batches on the device, or moved there one at a time (auto: stream when they "
        "would take over a quarter of the GPU's free memory)",
    )
    p.add_argument("--max-batches", type=int, default=None, help="use the first so many batches")
    p.add_argument(
        "--autocast",
        choices=["bf16", "fp16"],
        default=None,
        help="evaluate under torch.autocast in bfloat16 or float16",
    )
    p.add_argument(
        "--tf32",
        action="store_true",
        help="on a GPU, allow TF32 matrix products and convolutions (faster, about 1e-3 "
        "relative per product; off: full float32)",
    )
    p.add_argument("--checkpoint", help="a state dict to load into the factory's model first")
    p.add_argument(
        "--output", help="the landscape file (.h5); the same command resumes or reuses it"
    )


def _analyze_options(p) -> None:
    p.add_argument("landscape", nargs="?", help="a landscape file")
    _tree_options(p)
    _scale_option(p)
    p.add_argument("--json", help="write the features here as JSON (default: print them)")
    p.add_argument("--pictures", help="a folder for profile, diagram, merge tree and surface")


def _plot_options(p) -> None:
    p.add_argument("landscape", nargs="?", help="a landscape file")
    p.add_argument(
        "--kind",
        default="profile",
        choices=PLOT_KINDS,
        help="the picture: " + ", ".join(PLOT_KINDS),
    )
    _scale_option(p)
    p.add_argument(
        "--max-basins",
        type=int,
        default=None,
        help="profile and merge tree: the most persistent basins only",
    )
    _tree_options(p)
    p.add_argument("--output", help="the picture (.png, .pdf, .svg; .html for --kind html)")


def _series_options(p) -> None:
    _sampling_options(p)
    p.add_argument("--checkpoints", help="a folder of .pt/.pth/.ckpt files, or a glob pattern")
    p.add_argument("--output", help="a folder for landscapes, features.csv and figures")


def _info_options(p) -> None:
    p.add_argument("landscape", nargs="?", help="a landscape file")
    p.add_argument("--json", action="store_true", help="print the full record as JSON")


def _export_options(p) -> None:
    p.add_argument("landscape", nargs="?", help="a landscape file")
    p.add_argument("--output", help="a .nc, .vtu or .vtk file (needs topo_landscape[export])")


COMMANDS = {  # name: (what it does, its options)
    "demo": ("train a small model and draw its landscape", _demo_options),
    "sample": ("sample a model's landscape into an HDF5 file (resumable)", _sample_options),
    "analyze": ("merge tree and features of a landscape file", _analyze_options),
    "plot": ("one picture of a landscape file", _plot_options),
    "series": ("features, trends and profiles over a folder of checkpoints", _series_options),
    "info": ("summarise a landscape file (--json: its whole record)", _info_options),
    "export": ("write a landscape file as netCDF (xarray) or VTK (ParaView)", _export_options),
}


def _parser():
    """The command line: the parser and each command's subparser, by name."""
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="topo-landscape",
        epilog=_epilog(EXAMPLES),
        description="Loss landscapes of PyTorch models, with topology.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"topo-landscape {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers = {}
    for name, (help, add_options) in COMMANDS.items():
        p = commands.add_parser(
            name, help=help, description=help, epilog=_epilog([name]), formatter_class=_Formatter
        )
        p.add_argument("--config", help="a TOML or YAML file of options (flags override it)")
        add_options(p)
        subparsers[name] = p
    return parser, subparsers


def markdown() -> str:
    """The command-line reference as a Markdown page (docs/cli.md is this, kept so by a test)."""
    parser, subparsers = _parser()
    out = [
        "# Command line",
        "",
        "<!-- made by `./dev cli-docs` from topo_landscape/cli/options.py; do not edit by hand -->",
        "",
        "`topo-landscape COMMAND [options]`; `topo-landscape --version` prints the version and "
        "`topo-landscape COMMAND --help` the options below.",
        "",
        ABOUT,
        "",
        "Bad input ends with one line `topo-landscape COMMAND: error: ...` and exit code 2; "
        "Ctrl-C with one line saying what was saved and the command that goes on from there, "
        "and exit code 130.",
    ]
    for name, sub in subparsers.items():
        out += ["", f"## {name}", "", sub.description[0].upper() + sub.description[1:] + ".", ""]
        out += ["| option | default | what it does |", "|---|---|---|"]
        for action in sub._actions:
            if action.dest == "help":
                continue
            flag = ", ".join(action.option_strings) or action.dest
            if action.choices is not None:
                flag += " {" + ",".join(map(str, action.choices)) + "}"
            default = (
                "" if action.default is None or action.default is False else f"`{action.default}`"
            )
            text = (action.help or "").replace("|", "\\|")
            out.append(f"| `{flag}` | {default} | {text} |")
        out += ["", "```bash", *EXAMPLES[name], "```"]
    return "\n".join(out) + "\n"


def read_config(path: str) -> dict:
    """A TOML or YAML file of options -> dict (keys with dashes or underscores)."""
    if not os.path.isfile(path):
        raise ValueError(f"config: no such file {path!r}")
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ValueError(
                f"config: reading {path!r} needs PyYAML; use TOML or pip install pyyaml"
            ) from None
        with open(path) as f:
            try:
                data = yaml.safe_load(f) or {}
            except yaml.YAMLError as err:
                raise ValueError(f"config: {path!r} is not valid YAML ({err})") from None
    else:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        with open(path, "rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"config: {path!r} is not valid TOML ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"config: {path!r} must hold a table of options")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _text(value) -> str:
    """A configuration file's number as it would be typed on the command line; a boolean as
    'true'/'false', which no number option takes."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _checked_config(config: dict, sub: argparse.ArgumentParser, command: str) -> dict:
    """The options of a configuration file, each converted and checked as its flag would be."""
    actions = {a.dest: a for a in sub._actions if a.dest not in ("help", "config")}
    unknown = sorted(set(config) - set(actions))
    if unknown:
        raise ValueError(f"config: unknown option(s) {unknown} for '{command}'")
    checked = {}
    for key, value in config.items():
        action = actions[key]
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise ValueError(f"config: {key} = {value!r}: expected true or false")
        elif value is not None:
            if action.type is not None:
                try:  # from its text, as the flag would be (int(5.7) and int(True) are not)
                    if isinstance(value, (dict, list)):
                        raise TypeError
                    value = action.type(value if isinstance(value, str) else _text(value))
                except (TypeError, ValueError):
                    raise ValueError(
                        f"config: {key} = {value!r}: expected a value of type "
                        f"{action.type.__name__}"
                    ) from None
            elif not isinstance(value, str):
                raise ValueError(f"config: {key} = {value!r}: expected a string")
            if action.choices is not None and value not in action.choices:
                raise ValueError(
                    f"config: {key} = {value!r}: expected one of {list(action.choices)}"
                )
        checked[key] = value
    return checked
