"""HDF5 helpers of the landscape files: opening one (with a clear word when another process
holds it), arrays written with a checksum and read back checked, any field name as a member
name, and nested metadata as groups and attributes. What the layout holds is the business of
``landscape.py`` (a complete file) and ``sampling/store.py`` (one being sampled)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import h5py
import numpy as np

from ._util import jsonable


def open_file(path: str, mode: str, argument: str = "path") -> h5py.File:
    """``h5py.File(path, mode)``, with a clear refusal when another process holds the file
    (HDF5 locks a file while it is open for writing)."""
    try:
        return h5py.File(path, mode)
    except BlockingIOError:
        raise ValueError(
            f"{argument}: {path!r} is in use by another process (a sample writing it?); wait "
            "for it to finish, or use another path"
        ) from None


_CHECKSUM = "sha256"  # of a dataset's dtype, shape and bytes, kept as its attribute


def _array_sha256(a: np.ndarray) -> str:
    digest = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def write_array(group: h5py.Group, name: str, data) -> None:
    data = np.asarray(data)
    group.create_dataset(name, data=data).attrs[_CHECKSUM] = _array_sha256(data)


def read_array(group: h5py.Group, name: str) -> np.ndarray:
    """A dataset's values, refused when they do not match the checksum written with them (a
    file from before checksums is read as it is)."""
    if name not in group:
        raise ValueError(
            f"path: {group.file.filename!r} has no {group.name.rstrip('/')}/{name}: the file is "
            "damaged; sample it again"
        )
    ds = group[name]
    values = ds[()]
    stored = ds.attrs.get(_CHECKSUM)
    if stored is not None and stored != _array_sha256(np.asarray(values)):
        raise ValueError(
            f"path: {group.file.filename!r}: the data of {ds.name} do not match the checksum "
            "written with them (the file was changed or damaged since it was written); sample "
            "it again"
        )
    return values


def h5_name(name: str) -> str:
    """A field's name as an HDF5 member name: ``/`` (a path separator there) and ``%`` written
    as ``%2F`` and ``%25``, the empty name and ``.`` (which HDF5 refuses) as ``%`` and ``%2E``."""
    if name == "":
        return "%"
    if name == ".":
        return "%2E"
    return name.replace("%", "%25").replace("/", "%2F")


def read_named(group: h5py.Group) -> dict:
    """The datasets of a group written with :func:`h5_name` and a ``names`` attribute, by
    their names, in order (a file without the attribute: by the members' own names)."""
    if "names" not in group.attrs:
        return {name: read_array(group, name) for name in group}
    return {name: read_array(group, h5_name(name)) for name in json.loads(group.attrs["names"])}


_JSON_ATTR = "json_encoded"


def write_tree(group: h5py.Group, tree: Mapping) -> None:
    """Nested dict -> groups; numeric arrays -> datasets; str/number/bool -> attributes.

    Anything else (None, lists of strings, ragged lists) is stored as a JSON string attribute and
    listed in the group's ``json_encoded`` attribute so that :func:`read_tree` decodes it.
    """
    encoded = []
    for key, value in tree.items():
        key = str(key)
        if isinstance(value, Mapping):
            write_tree(group.create_group(key), value)
        elif isinstance(value, str):  # also str subclasses (torch.__version__, np.str_)
            group.attrs[key] = str(value)
        elif isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
            group.attrs[key] = value
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            group.create_dataset(key, data=value)
        else:
            group.attrs[key] = json.dumps(jsonable(value))
            encoded.append(key)
    if encoded:
        group.attrs[_JSON_ATTR] = json.dumps(encoded)


def read_tree(group: h5py.Group) -> dict:
    encoded = set(json.loads(group.attrs.get(_JSON_ATTR, "[]")))
    out = {}
    for key, value in group.attrs.items():
        if key == _JSON_ATTR:
            continue
        if key in encoded:
            out[key] = json.loads(value)
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    for key, item in group.items():
        out[key] = read_tree(item) if isinstance(item, h5py.Group) else item[()]
    return out
