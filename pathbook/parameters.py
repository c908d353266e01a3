"""Checking parameters against a notebook's `parameters` cell before anything runs."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import nbformat
import papermill
import yaml

from .project import PathbookError, coerce_number

# papermill's inferred type names -> the Python types a value may have.
_ACCEPTED = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "list": (list, tuple),
    "tuple": (list, tuple),
    "dict": (dict,),
}


def _type_of_default(default: str) -> str:
    """papermill types a parameter only from an annotation; else take the default literal's type."""
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return "None"
    return "None" if value is None else type(value).__name__


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """The parameters a notebook declares in its cell tagged `parameters`, each with a type."""
    if not nbformat.read(notebook, as_version=4).metadata.get("kernelspec"):
        raise PathbookError(
            f"{notebook.name} names no kernel; add metadata.kernelspec (name 'python3'), e.g. by "
            "saving it once from Jupyter."
        )
    declared = papermill.inspect_notebook(str(notebook))
    if not declared:
        raise PathbookError(
            f"{notebook.name} has no cell tagged 'parameters'; tag the cell that holds the "
            "defaults (Jupyter: View > Cell Toolbar > Tags)."
        )
    for entry in declared.values():
        if entry["inferred_type_name"] == "None":
            entry["inferred_type_name"] = _type_of_default(entry["default"])
    return declared


def _default_value(default: str) -> Any:
    try:
        return ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return default  # an expression: shown as written


def validate(name: str, notebook: Path, parameters: dict[str, Any]) -> dict[str, Any]:
    """Check `parameters` against the notebook; return every parameter's value, defaults included.

    Raises PathbookError naming the notebook and the parameter if one is unknown or mistyped.
    """
    declared = declared_parameters(notebook)
    known = ", ".join(
        f"{k} ({v['inferred_type_name']}, default {v['default']})" for k, v in declared.items()
    )
    for key, value in parameters.items():
        if key not in declared:
            raise PathbookError(
                f"notebook {name!r} has no parameter {key!r}. Known parameters: {known}."
            )
        type_name = declared[key]["inferred_type_name"]
        accepted = _ACCEPTED.get(type_name)
        if accepted is None:  # "None" or an expression papermill could not type: anything goes
            continue
        is_bool_as_number = isinstance(value, bool) and bool not in accepted
        if not isinstance(value, accepted) or is_bool_as_number:
            raise PathbookError(
                f"notebook {name!r}: parameter {key!r} expects {type_name} "
                f"(default {declared[key]['default']}), got {type(value).__name__} {value!r}."
            )
    return {
        key: parameters.get(key, _default_value(entry["default"]))
        for key, entry in declared.items()
    }


def parse_cli_value(text: str) -> Any:
    """`-p key value` on the command line: YAML scalars and lists (8 -> int, 0.9 -> float).

    Numbers YAML 1.1 leaves as strings (`1e-3`) are read as Python reads them.
    """
    try:
        return coerce_number(yaml.safe_load(text))
    except yaml.YAMLError:
        return text
