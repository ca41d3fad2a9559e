"""The ``topo-landscape`` command line."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings


def demo(
    output: str = "demo_output", *, device: str = "cpu", resolution: int = 41, seed: int = 0
) -> dict:
    """Train a small classifier on built-in spirals; sample its 2D filter-normalised landscape
    and a 3D landscape along the top Hessian eigenvectors; write the landscape files, contour
    plots, profiles and the persistence diagram. Returns {file name: path}."""
    import numpy as np
    import torch

    import topo_landscape as tl
    from topo_landscape._util import count

    os.makedirs(output, exist_ok=True)
    torch.manual_seed(seed)
    x, y = tl.examples.two_spirals(512, seed=seed)
    model = tl.examples.mlp(2, 2, hidden=(32, 32), activation=torch.nn.Tanh)
    loss_fn = tl.supervised(torch.nn.CrossEntropyLoss())
    path = []  # the training path: a checkpoint every 30 steps, for its PCA directions

    def keep(step, net):
        if step % 30 == 29:
            path.append({k: v.detach().clone() for k, v in net.state_dict().items()})

    history = tl.examples.train(
        model, loss_fn, (x, y), steps=600, lr=1e-2, seed=seed, callback=keep
    )
    model = model.to(device)
    batch = (x.to(device), y.to(device))
    dirs = tl.random_directions(model, n=2, normalization="filter", seed=seed)
    land = tl.sample(model, loss_fn, batch, dirs, resolution=resolution, span=1.0)
    paths = {}

    def save(name: str, fig) -> None:
        paths[name] = os.path.join(output, name)
        fig.savefig(paths[name], dpi=150)

    print(f"trained: loss {history[0]:.3f} -> {history[-1]:.3f} in {len(history)} Adam steps")
    paths["landscape.h5"] = os.path.join(output, "landscape.h5")
    land.save(paths["landscape.h5"])
    _report(land)
    tree = tl.merge_tree(land)
    save("contour.png", tl.plot.surface(land, title="two spirals MLP, filter-normalised"))
    save("profile.png", tl.plot.profile(tree, title="topological landscape profile"))
    save("diagram.png", tl.plot.diagram(tree, title="H0 persistence"))

    # the training path over the plane of its two principal directions (Li et al. 2018)
    pdirs = tl.trajectory_directions(path, n=2, model=model)
    coords = tl.project(path, pdirs, path[-1], model=model)
    reach = 1.2 * float(np.abs(coords).max(axis=0).max())
    land_path = tl.sample(model, loss_fn, batch, pdirs, resolution=resolution, span=reach)
    save(
        "path.png",
        tl.plot.surface(
            land_path,
            path=coords,
            title="the training path",
        ),
    )

    # the top-3 Hessian eigenvectors span a 3D landscape (Geniesse et al. 2024)
    hdirs = tl.hessian_directions(model, loss_fn, batch, n=3, seed=seed)
    span = 2.0 / float(abs(hdirs.eigenvalues[0])) ** 0.5  # the loss rises by ~2 along the top one
    land3 = tl.sample(model, loss_fn, batch, hdirs, resolution=min(resolution, 21), span=span)
    paths["landscape_hessian_3d.h5"] = os.path.join(output, "landscape_hessian_3d.h5")
    land3.save(paths["landscape_hessian_3d.h5"])
    print("Hessian eigenvalues: " + ", ".join(f"{v:.3g}" for v in hdirs.eigenvalues))
    _report(land3)
    tree3 = tl.merge_tree(land3)
    save("contour_hessian_3d.png", tl.plot.surface(land3, title="top-3 Hessian directions"))
    save("profile_hessian_3d.png", tl.plot.profile(tree3, title="3D Hessian profile"))
    features = tree3.features()
    print(
        f"3D Hessian landscape: {count(features['n_minima'], 'minimum', 'minima')}, "
        f"{count(features['n_saddles'], 'saddle')}, "
        f"max persistence {features['max_persistence']:.3g}"
    )
    return paths


def _report(land) -> None:
    s = land.metadata["sampling"]
    shape = "x".join(map(str, land.shape))
    missing = f"; {land.n_nonfinite} non-finite (NaN or inf)" if land.n_nonfinite else ""
    print(
        f"sampled {shape} = {land.values.size} points ({s['mode']} mode) in "
        f"{s['seconds']:.2f} s{missing}"
    )


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


def load_factory(spec: str):
    """'package.module:function' or 'path/to/file.py:function' -> the function.

    A file's folder is put on the import path (so that it can import the modules beside it),
    and for the module form the current folder is, as ``python -m`` would.
    """
    import importlib
    import importlib.util

    forms = "'package.module:function' or 'path/to/file.py:function'"
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"factory: expected {forms}; got {spec!r}")
    module_name, _, attr = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            if not os.path.isfile(module_name):
                raise ValueError(f"factory: no such file {module_name!r}")
            _importable(os.path.dirname(os.path.abspath(module_name)))
            name = "_topo_landscape_factory_" + os.path.basename(module_name)[:-3]
            loader = importlib.util.spec_from_file_location(name, module_name)
            module = importlib.util.module_from_spec(loader)
            sys.modules[name] = module  # so that pickle and dataclasses find it
            loader.loader.exec_module(module)
        else:
            _importable(os.getcwd())
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"factory: cannot import {module_name!r} ({err}); give {forms} (a file's folder "
            "and the current folder are searched for the modules it imports)"
        ) from None
    if not hasattr(module, attr):
        raise ValueError(f"factory: {module_name!r} has no attribute {attr!r}")
    function = getattr(module, attr)
    if not callable(function):
        raise ValueError(
            f"factory: {spec!r} is a {type(function).__name__}, not a function returning "
            "(model, loss_fn, batches)"
        )
    return function


def _importable(folder: str) -> None:
    if folder not in sys.path:
        sys.path.insert(0, folder)


def _built(spec: str):
    made = load_factory(spec)()
    if not (isinstance(made, tuple) and len(made) == 3):
        raise ValueError(f"factory: {spec!r} must return (model, loss_fn, batches)")
    return made


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


def _device(spec):
    """A --device value -> torch.device, checked: a clear error instead of torch's."""
    import torch

    if spec is None:
        return None
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"device: {spec!r} is not a torch device (cpu, cuda, cuda:1, mps, ...)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {spec!r} asked for, but torch sees no CUDA device here")
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device: {spec!r} asked for, but torch sees {torch.cuda.device_count()} CUDA "
                "device(s)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device: {spec!r} asked for, but MPS is not available here")
    return device


def _sample(args) -> None:
    args.device = _device(args.device)
    rank, args.device = _torchrun(args.device)
    try:
        _sample_on(args, rank)
    finally:
        _leave_torchrun()


def _sample_on(args, rank: int) -> None:
    import topo_landscape as tl
    from topo_landscape.sampling.store import is_complete
    from topo_landscape.series import axis_spans, directions_for, load_checkpoint, span_rule

    say = print if rank == 0 else lambda *_, **__: None  # one process reports
    model, loss_fn, batches = _built(args.factory)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint)
    if args.device:
        model = model.to(args.device)
    if rank > 0:  # the directions come from rank 0
        dirs = _broadcast(None, args.device)
    else:
        hessian = args.directions == "hessian"
        normalization = args.normalization if not hessian or args.normalize_hessian else None
        dirs = directions_for(
            model,
            loss_fn,
            batches,
            args.directions,
            n=args.n,
            normalization=normalization,
            seed=args.seed,
        )
        if hessian:
            say(
                f"hessian: top-{args.n} eigenvalues "
                + ", ".join(f"{v:.4g}" for v in dirs.eigenvalues)
                + f" ({dirs.info.get('hvp_calls', '?')} Hessian-vector products)"
            )
    if rank == 0 and _torchrun_world() > 1:
        dirs = _broadcast(dirs, args.device)
    span = args.span if args.span is not None else axis_spans(dirs, args.rise)
    if args.span is None and dirs.unit_eigenvectors:
        say(
            "span: " + ", ".join(f"{s:.3g}" for s in span) + f" (where the quadratic model has "
            f"changed by {args.rise:g}: up along positive curvature, down along negative; "
            "--span sets them)"
        )
    finished = is_complete(args.output)
    land = tl.sample(
        model,
        loss_fn,
        batches,
        dirs,
        resolution=args.resolution,
        span=span,
        mode=args.mode,
        device=args.device,
        out=args.output,
        metadata=_provenance(args, span_rule=span_rule(dirs, args.span, args.rise)),
        data=args.data,
        max_batches=args.max_batches,
        autocast=None if args.autocast is None else _AUTOCAST[args.autocast](),
    )
    if finished:
        say(
            f"loaded {os.path.abspath(args.output)}: finished earlier "
            f"({land.metadata.get('created', '?')}) from the same model, data, loss and "
            "settings; nothing was sampled"
        )
    elif rank == 0:
        _report(land)
        print(f"wrote {os.path.abspath(args.output)}")


_AUTOCAST = {  # (torch imported when used)
    "bf16": lambda: __import__("torch").bfloat16,
    "fp16": lambda: __import__("torch").float16,
}


def _torchrun_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _torchrun(device):
    """Under torchrun (WORLD_SIZE > 1): join the process group (nccl for CUDA, gloo otherwise)
    and take this process's GPU (cuda:LOCAL_RANK). Returns (rank, device)."""
    if _torchrun_world() <= 1:
        return 0, device
    import torch
    import torch.distributed as dist

    if device is not None and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        cuda = device is not None and device.type == "cuda"
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), device


def _leave_torchrun() -> None:
    """Leave the process group the command joined (a process that exits without doing so can
    take gloo down with it: 'terminate called without an active exception')."""
    if _torchrun_world() <= 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _broadcast(dirs, device):
    """Rank 0's directions on every rank (so that all sample the same grid)."""
    import torch.distributed as dist

    box = [None if dirs is None else dirs.to("cpu")]
    dist.broadcast_object_list(box, src=0)
    return box[0] if device is None else box[0].to(device)


def _provenance(args, span_rule: str) -> dict:
    """What the file records of how it was made: the command line, factory, checkpoint, and
    how the half-widths were chosen."""
    from topo_landscape.series import file_sha256

    made = {"command": args.command_line, "factory": args.factory, "span_rule": span_rule}
    if getattr(args, "checkpoint", None):
        made["checkpoint"] = os.path.abspath(args.checkpoint)
        made["checkpoint_sha256"] = file_sha256(args.checkpoint)
    return {"provenance": made}


def _tree(args, land):
    import topo_landscape as tl

    tree = tl.merge_tree(land, graph=args.graph, connectivity=args.connectivity, k=args.k)
    if args.threshold or args.noise is not None:
        return tree.simplify(args.threshold, noise=args.noise)
    return tree


def _analyze(args) -> None:
    import topo_landscape as tl

    land = _load(args.landscape)
    tree = _tree(args, land)
    features = tl.features(land, tree)
    text = _strict_json(features)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
        print(f"wrote {os.path.abspath(args.json)}")
    else:
        print(text)
    if args.pictures:
        os.makedirs(args.pictures, exist_ok=True)
        name = os.path.basename(args.landscape)
        log = _scale(args)
        for file, fig in [
            ("profile.png", tl.plot.profile(tree, log=log, title=f"{name}: landscape profile")),
            ("diagram.png", tl.plot.diagram(tree, title=f"{name}: H0 persistence diagram")),
            ("merge_tree.png", tl.plot.merge_tree(tree, log=log, title=f"{name}: merge tree")),
            ("surface.png", tl.plot.surface(land, log=log, title=f"{name}: loss")),
        ]:
            fig.savefig(os.path.join(args.pictures, file), dpi=150)
        print(f"wrote pictures to {os.path.abspath(args.pictures)}")


def _scale(args) -> bool | None:
    """--scale as the plot functions' ``log``: None (their one automatic rule), True, False."""
    return {"auto": None, "log": True, "linear": False}[args.scale]


def _plot(args) -> None:
    import topo_landscape as tl

    land = _load(args.landscape)
    log = _scale(args)
    if args.kind == "html":
        tl.plot.surface_html(land, args.output, log=log)
    elif args.kind in ("surface", "heatmap", "surface3d"):
        kind = "contour" if args.kind == "surface" else args.kind
        tl.plot.surface(land, kind=kind, log=log).savefig(args.output, dpi=150)
    else:
        tree = _tree(args, land)
        fig = {
            "profile": lambda: tl.plot.profile(tree, log=log, max_basins=args.max_basins),
            "diagram": lambda: tl.plot.diagram(tree),
            "barcode": lambda: tl.plot.diagram(tree, kind="barcode"),
            "merge-tree": lambda: tl.plot.merge_tree(tree, log=log, max_basins=args.max_basins),
        }[args.kind]()
        fig.savefig(args.output, dpi=150)
    print(f"wrote {os.path.abspath(args.output)}")


def _series(args) -> None:
    import topo_landscape as tl

    args.device = _device(args.device)
    _, loss_fn, batches = _built(args.factory)
    result = tl.series(
        args.checkpoints,
        lambda: _built(args.factory)[0],
        loss_fn,
        batches,
        directions=args.directions,
        n=args.n,
        normalization=(
            args.normalization if args.directions == "random" or args.normalize_hessian else None
        ),
        resolution=args.resolution,
        span=args.span,
        rise=args.rise,
        mode=args.mode,
        seed=args.seed,
        device=args.device,
        out=args.output,
    )
    for name, path in result.files.items():
        if not name.startswith("landscape:"):
            print(f"wrote {name}: {os.path.abspath(path)}")


def _export(args) -> None:
    land = _load(args.landscape)
    if args.output.endswith(".nc"):
        land.to_xarray().to_netcdf(args.output)
    elif args.output.endswith((".vtu", ".vtk")):
        land.to_vtk(args.output)
    else:
        raise ValueError(
            f"--output: expected a .nc (netCDF), .vtu or .vtk (VTK) file; got {args.output!r}"
        )
    print(f"wrote {os.path.abspath(args.output)}")


def _info(args) -> None:
    land = _load(args.landscape)
    if args.json:
        record = {
            "shape": list(land.shape),
            "fields": list(land.fields),
            "n_nonfinite": land.n_nonfinite,
            "metadata": land.metadata,
        }
        print(_strict_json(record))
        return
    print(summary(land, args.landscape))


def summary(land, path: str = "") -> str:
    """A few lines on a landscape for people: grid, directions, values, how and when it was made."""
    import numpy as np

    meta = land.metadata
    directions = meta.get("directions", {})
    sampling = meta.get("sampling", {})
    grid = " x ".join(map(str, land.shape))
    spans = ", ".join(  # symmetric axes as ±span; others (bounds=) as [low, high]
        f"±{a[-1]:.3g}" if np.isclose(a[0], -a[-1]) else f"[{a[0]:.3g}, {a[-1]:.3g}]"
        for a in land.axes
    )
    lines = [f"{path or 'landscape'}: {grid} = {land.values.size:,} points, axes {spans}"]
    kind = directions.get("kind", "?")
    described = f"{directions.get('n', land.ndim)} {kind} directions"
    if directions.get("normalization", "none") != "none":
        described += f", {directions['normalization']}-normalised"
    if "eigenvalues" in directions:
        described += ", eigenvalues " + ", ".join(
            f"{v:.4g}" for v in np.asarray(directions["eigenvalues"], dtype=float)
        )
    lines.append(f"directions: {described}")
    finite = land.values[np.isfinite(land.values)]
    values = f"loss {finite.min():.4g} to {finite.max():.4g}" if finite.size else "no finite loss"
    if "loss_at_center" in sampling:
        values += f", {sampling['loss_at_center']:.4g} at the centre"
    values += f"; {land.n_nonfinite} non-finite" if land.n_nonfinite else "; all finite"
    lines.append(f"values: {values}; fields {', '.join(land.fields)}")
    if sampling:
        lines.append(
            f"sampled: {meta.get('loss', '?')} over {sampling.get('n_batches', '?')} batch(es), "
            f"{sampling.get('mode', '?')} mode on {sampling.get('device', '?')}, "
            f"{sampling.get('seconds', float('nan')):.1f} s, {meta.get('created', '?')}"
        )
        if "auto_reason" in sampling:
            lines.append(f"mode chosen by auto: {sampling['auto_reason']}")
    made = meta.get("provenance", {})
    if made:
        lines.append(f"made by: {made.get('command', '?')}")
        if "checkpoint" in made:
            lines.append(f"checkpoint: {made['checkpoint']} (sha256 {made['checkpoint_sha256']})")
    versions = meta.get("versions", {})
    if versions:
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return "\n".join(lines)


def _strict_json(value) -> str:
    """JSON that any reader takes: NaN and infinities as null."""
    import json

    import numpy as np

    from ._util import jsonable

    def clean(v):
        if isinstance(v, float) and not np.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(jsonable(value)), indent=2, allow_nan=False, default=str)


def _load(path: str):
    import topo_landscape as tl

    try:
        return tl.load(path)
    except FileNotFoundError:
        raise ValueError(f"landscape: no such file {path!r}") from None
    except OSError as err:
        raise ValueError(f"landscape: {path!r} is not a landscape file ({err})") from None


def _parser():
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="topo-landscape",
        epilog=_epilog(EXAMPLES),
        description="Loss landscapes of PyTorch models, with topology.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"topo-landscape {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers = {}

    def command(name, help):
        p = commands.add_parser(
            name, help=help, description=help, epilog=_epilog([name]), formatter_class=_Formatter
        )
        p.add_argument("--config", help="a TOML or YAML file of options (flags override it)")
        subparsers[name] = p
        return p

    def sampling_options(p):
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

    def scale_option(p):
        p.add_argument(
            "--scale",
            choices=["auto", "log", "linear"],
            default="auto",
            help="the loss axis and colours: logarithmic when the loss is positive and spans "
            "two decades (auto, as every picture of the library), or as asked",
        )

    def tree_options(p):
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

    p = command("demo", "train a small model and draw its landscape")
    p.add_argument("--output", default="demo_output", help="folder for the files")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--resolution", type=int, default=41, help="grid points per axis")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, training and directions")
    p = command("sample", "sample a model's landscape into an HDF5 file (resumable)")
    sampling_options(p)
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
    p.add_argument("--checkpoint", help="a state dict to load into the factory's model first")
    p.add_argument(
        "--output", help="the landscape file (.h5); the same command resumes or reuses it"
    )
    p = command("analyze", "merge tree and features of a landscape file")
    p.add_argument("landscape", nargs="?", help="a landscape file")
    tree_options(p)
    scale_option(p)
    p.add_argument("--json", help="write the features here as JSON (default: print them)")
    p.add_argument("--pictures", help="a folder for profile, diagram, merge tree and surface")
    p = command("plot", "one picture of a landscape file")
    p.add_argument("landscape", nargs="?", help="a landscape file")
    p.add_argument(
        "--kind",
        default="profile",
        choices=PLOT_KINDS,
        help="the picture: " + ", ".join(PLOT_KINDS),
    )
    scale_option(p)
    p.add_argument(
        "--max-basins",
        type=int,
        default=None,
        help="profile and merge tree: the most persistent basins only",
    )
    tree_options(p)
    p.add_argument("--output", help="the picture (.png, .pdf, .svg; .html for --kind html)")
    p = command("series", "features, trends and profiles over a folder of checkpoints")
    sampling_options(p)
    p.add_argument("--checkpoints", help="a folder of .pt/.pth/.ckpt files, or a glob pattern")
    p.add_argument("--output", help="a folder for landscapes, features.csv and figures")
    p = command("info", "summarise a landscape file (--json: its whole record)")
    p.add_argument("landscape", nargs="?", help="a landscape file")
    p.add_argument("--json", action="store_true", help="print the full record as JSON")
    p = command("export", "write a landscape file as netCDF (xarray) or VTK (ParaView)")
    p.add_argument("landscape", nargs="?", help="a landscape file")
    p.add_argument("--output", help="a .nc, .vtu or .vtk file (needs topo_landscape[export])")
    return parser, subparsers


def markdown() -> str:
    """The command-line reference as a Markdown page (docs/cli.md is this, kept so by a test)."""
    parser, subparsers = _parser()
    out = [
        "# Command line",
        "",
        "<!-- made by `./dev cli-docs` from topo_landscape/cli.py; do not edit by hand -->",
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


def main(argv: list[str] | None = None) -> int:
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


if __name__ == "__main__":  # python -m topo_landscape.cli
    sys.exit(main())
