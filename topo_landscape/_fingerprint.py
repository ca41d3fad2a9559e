"""Fingerprints of what determines a stored result: tensors, evaluation data, loss functions.

A fingerprint is a SHA-256 over a canonical walk of a value. Tensors and arrays contribute their
dtype, shape and exact bytes; containers their items; a function its code (bytecode, constants,
names), defaults, the values its closure captured and the values of the globals it reads; an
``nn.Module`` its class, its configuration attributes (``label_smoothing``, ``reduction``, ...)
and its parameters and buffers; any other object its class and attributes. Globals and
attributes whose names start with an underscore are taken as state (a call counter), not
configuration, and left out. What the walk cannot see into (an object without attributes whose
``repr`` names a memory address, a C function's hidden state) is listed by path, so that
callers can say what the fingerprint does not cover.
"""

from __future__ import annotations

import hashlib
import math
import types
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

_MAX_DEPTH = 12
_PLAIN = (type(None), bool, int, float, complex, str, bytes)


def tensor_bytes(t: torch.Tensor) -> bytes:
    """The exact bytes of a tensor's values in row-major order (any shape, stride or dtype)."""
    flat = t.detach().cpu().reshape(-1)
    if flat.numel() == 0:
        return b""
    if flat.stride() != (1,):  # (a one-element slice can keep the stride of its parent)
        flat = torch.empty(flat.shape, dtype=flat.dtype).copy_(flat)
    return flat.view(torch.uint8).numpy().tobytes()


def tensors_sha256(tensors) -> str:
    """A hash of the exact bytes (and dtypes, shapes) of a sequence of tensors."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(tensor_bytes(t))
    return digest.hexdigest()


def fingerprint(value, name: str) -> tuple[str, list[str]]:
    """SHA-256 of ``value`` and the paths (starting with ``name``) that it could not cover."""
    walk = _Walk()
    walk.add(value, name, 0)
    return walk.digest.hexdigest(), walk.unknown


def fingerprint_parts(value, name: str, depth: int = 2) -> tuple[str, list[str], dict]:
    """:func:`fingerprint`, and a short hash of each part of ``value`` down to ``depth`` levels
    (a function's captured values, defaults and globals, an object's attributes, ...) by path,
    with ``name + " (code)"`` for what no part holds (the code itself): two fingerprints that
    differ can then say where."""
    walk = _Walk(parts_depth=depth)
    walk.add(value, name, 0)
    parts = {path: h.hexdigest()[:16] for path, h in walk.parts.items()}
    parts[f"{name} (code)"] = walk.own.hexdigest()[:16]
    return walk.digest.hexdigest(), walk.unknown, parts


def differing_parts(old: dict, new: dict) -> list[str]:
    """The paths whose hashes differ (or that one side lacks), leaving out those with a
    differing part below them: the most precise places."""
    differ = sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
    return [p for p in differ if not any(q.startswith((p + ".", p + "[", p + " ")) for q in differ)]


class _Walk:
    def __init__(self, parts_depth: int = 0):
        self.digest = hashlib.sha256()
        self.unknown: list[str] = []
        self.seen: dict[int, str] = {}
        self.keep: list = []  # keeps walked objects alive, so that their ids stay unique
        self.parts_depth = parts_depth
        self.parts: dict[str, object] = {}  # path -> hash of that part (depths 1..parts_depth)
        self.active: list = []  # the hashes of the parts being walked
        self.own = hashlib.sha256()  # what is put outside every part

    def update(self, data: bytes) -> None:
        self.digest.update(data)
        for h in self.active:
            h.update(data)
        if not self.active and self.parts_depth:
            self.own.update(data)

    def put(self, *parts) -> None:
        for part in parts:
            self.update(str(part).encode())
            self.update(b"\x00")

    def add(self, value, path: str, depth: int) -> None:
        if not 1 <= depth <= self.parts_depth:
            return self._add(value, path, depth)
        part = hashlib.sha256()
        self.active.append(part)
        try:
            self._add(value, path, depth)
        finally:
            self.active.pop()
            self.parts[path] = part

    def _add(self, value, path: str, depth: int) -> None:  # noqa: C901 - one case per kind
        if isinstance(value, _PLAIN):
            if isinstance(value, float) and math.isnan(value):
                value = "nan"
            self.put(type(value).__name__, repr(value))
            return
        if isinstance(value, (np.generic, torch.dtype, torch.device, torch.Size)):
            self.put(type(value).__name__, repr(value))
            return
        if depth > _MAX_DEPTH:
            self.unknown.append(f"{path} (nested too deeply)")
            self.put("deep")
            return
        if id(value) in self.seen:  # shared or cyclic: refer to where it was first met
            self.put("same-as", self.seen[id(value)])
            return
        self.seen[id(value)] = path
        self.keep.append(value)
        if isinstance(value, torch.Tensor):
            self.put("tensor", value.dtype, tuple(value.shape))
            self.update(tensor_bytes(value))
        elif isinstance(value, np.ndarray):
            if value.dtype.kind == "O":
                self.put("object-array", value.shape)
                for i, item in enumerate(value.ravel().tolist()):
                    self.add(item, f"{path}[{i}]", depth + 1)
            else:
                self.put("array", value.dtype.str, value.shape)
                self.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, Mapping):
            self.put("mapping", type(value).__qualname__, len(value))
            for key, item in value.items():
                self.add(key, f"{path} key", depth + 1)
                self.add(item, f"{path}[{key!r}]", depth + 1)
        elif isinstance(value, (list, tuple)):
            self.put(type(value).__qualname__, len(value))
            for i, item in enumerate(value):
                self.add(item, f"{path}[{i}]", depth + 1)
        elif isinstance(value, (set, frozenset)):
            items = sorted(fingerprint(item, path)[0] for item in value)
            self.put(type(value).__qualname__, *items)
        elif isinstance(value, nn.Module):
            self.module(value, path, depth)
        elif isinstance(value, types.FunctionType):
            self.function(value, path, depth)
        elif isinstance(value, types.MethodType):
            self.put("method")
            self.add(value.__func__, f"{path}.__func__", depth + 1)
            self.add(value.__self__, f"{path}.__self__", depth + 1)
        elif hasattr(value, "func") and hasattr(value, "args") and hasattr(value, "keywords"):
            self.put("partial")  # functools.partial and look-alikes
            self.add(value.func, f"{path}.func", depth + 1)
            self.add(value.args, f"{path}.args", depth + 1)
            self.add(value.keywords, f"{path}.keywords", depth + 1)
        elif isinstance(value, (type, types.ModuleType, types.BuiltinFunctionType)):
            self.put(type(value).__name__, _qualified(value))
        elif isinstance(value, types.CodeType):
            self.code(value, path, depth)
        else:
            self.instance(value, path, depth)

    def module(self, module: nn.Module, path: str, depth: int) -> None:
        self.put("module", _qualified(type(module)))
        for key, item in vars(module).items():
            if key.startswith("_") or key == "training":
                continue
            self.add(item, f"{path}.{key}", depth + 1)
        for key, tensor in module.state_dict(keep_vars=True).items():
            self.put(key)
            self.add(tensor, f"{path}.{key}", depth + 1)
        call = getattr(type(module), "forward", None)
        if isinstance(call, types.FunctionType) and _is_users(call):
            self.function(call, f"{path}.forward", depth + 1)

    def function(self, func: types.FunctionType, path: str, depth: int) -> None:
        self.put("function", func.__module__, func.__qualname__)
        self.code(func.__code__, path, depth)
        self.add(func.__defaults__, f"{path}.__defaults__", depth + 1)
        self.add(func.__kwdefaults__, f"{path}.__kwdefaults__", depth + 1)
        for var, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                content = None
            self.put("free", var)
            self.add(content, f"{path}.<{var}>", depth + 1)
        for var in sorted(_global_names(func.__code__)):
            if var in func.__globals__ and not var.startswith("_"):
                self.put("global", var)
                self.add(func.__globals__[var], f"{path}.<global {var}>", depth + 1)

    def code(self, code: types.CodeType, path: str, depth: int) -> None:
        self.put("code", code.co_code.hex(), code.co_names, code.co_varnames)
        for i, const in enumerate(code.co_consts):
            self.add(const, f"{path}.<const {i}>", depth + 1)

    def instance(self, value, path: str, depth: int) -> None:
        cls = type(value)
        self.put("object", _qualified(cls))
        call = vars(cls).get("__call__") or getattr(cls, "__call__", None)  # noqa: B004
        if isinstance(call, types.FunctionType) and _is_users(call):
            self.function(call, f"{path}.__call__", depth + 1)
        attributes = getattr(value, "__dict__", None)
        slots = [s for c in cls.__mro__ for s in getattr(c, "__slots__", ())]
        if attributes is None and not slots:
            text = repr(value)
            if " at 0x" in text or text.startswith("<"):
                self.unknown.append(f"{path} ({cls.__qualname__})")
            else:
                self.put(text)
            return
        for key, item in (attributes or {}).items():
            if not key.startswith("_"):  # private attributes: state, not configuration
                self.add(item, f"{path}.{key}", depth + 1)
        for key in slots:
            if not key.startswith("_") and hasattr(value, key):
                self.add(getattr(value, key), f"{path}.{key}", depth + 1)


def _qualified(obj) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"


def _is_users(func: types.FunctionType) -> bool:
    """Whether a function is the user's code rather than torch's or the standard library's."""
    module = func.__module__ or ""
    return not module.startswith(("torch", "builtins", "functools", "numpy"))


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names
