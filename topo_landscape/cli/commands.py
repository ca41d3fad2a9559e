"""The commands of the command line: each takes the parsed arguments and does its work
through the public API."""

from __future__ import annotations

import os
import sys


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
    from topo_landscape.checkpoints import axis_spans, directions_for, load_checkpoint, span_rule
    from topo_landscape.sampling.store import is_complete

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
        tf32=args.tf32,
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
    from topo_landscape._util import file_sha256

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

    from .._util import jsonable

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
