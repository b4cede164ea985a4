"""Strict JSON5 configs: `base_config` inheritance, `--set` overrides, validation into typed dataclasses.

A config file is JSON5. It may name one parent with `"base_config": "relative/path.json"` (relative to the file
that names it); the child overrides the parent key by key (nested objects merge, everything else replaces).
The merged tree is then checked against a schema made of nested `@dataclass`es: an unknown key, a wrong type or
a missing required value raises `ConfigError` naming the file (or `--set`) that supplied the value and the
dotted key, with the closest known key suggested for a typo.
"""

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any

import json5

BASE_KEY = "base_config"


class ConfigError(ValueError):
    """A config problem, with the source (file or `--set`) and the dotted key in the message."""


def _read_json5(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        tree = json5.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ConfigError(f"{path}: not valid JSON5 ({error})") from error
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the top level must be an object, got {type(tree).__name__}")
    return tree


def _merge(base: dict, child: dict, child_source: str, sources: dict[str, str], prefix: str = "") -> dict:
    """Merge `child` over `base` key by key, recording in `sources` which file set each dotted key."""
    merged = dict(base)
    for key, value in child.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value, child_source, sources, f"{dotted}.")
        else:
            merged[key] = value
            for known in [k for k in sources if k.startswith(f"{dotted}.")]:
                del sources[known]
            _record_sources(value, dotted, child_source, sources)
    return merged


def _record_sources(value: Any, dotted: str, source: str, sources: dict[str, str]) -> None:
    sources[dotted] = source
    if isinstance(value, dict):
        for key, inner in value.items():
            _record_sources(inner, f"{dotted}.{key}", source, sources)


def load_tree(path: Path | str) -> tuple[dict, dict[str, str]]:
    """Read a config and its `base_config` chain; returns (merged tree, dotted key -> source file)."""
    path = Path(path)
    chain: list[Path] = []
    current = path
    while True:
        resolved = current.resolve()
        if resolved in chain:
            raise ConfigError(f"{current}: base_config chain loops back to itself")
        chain.append(resolved)
        tree = _read_json5(current)
        parent = tree.get(BASE_KEY)
        if parent is None:
            break
        if not isinstance(parent, str):
            raise ConfigError(f"{current}: {BASE_KEY} must be a path string, got {type(parent).__name__}")
        parent_path = current.parent / parent
        if not parent_path.is_file():
            raise ConfigError(f"{current}: {BASE_KEY} names {parent_path}, which does not exist")
        current = parent_path
    merged: dict = {}
    sources: dict[str, str] = {}
    for file_path in reversed(chain):
        tree = {k: v for k, v in _read_json5(file_path).items() if k != BASE_KEY}
        merged = _merge(merged, tree, str(file_path), sources)
    return merged, sources


def _parse_override_value(text: str) -> Any:
    """`--set` values are JSON5 literals (numbers, true/false/null, lists, objects, quoted strings); anything
    that does not parse is taken as a plain string, so `--set preprocess.processed_dir=data/x` works."""
    try:
        return json5.loads(text)
    except ValueError:
        return text


def apply_overrides(tree: dict, sources: dict[str, str], overrides: typing.Iterable[str]) -> dict:
    """Apply `dotted.key=value` overrides to a merged tree (validation happens afterwards)."""
    tree = json.loads(json.dumps(tree))
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"--set {override}: expected dotted.key=value")
        dotted, text = override.split("=", 1)
        dotted = dotted.strip()
        parts = dotted.split(".")
        if not all(parts):
            raise ConfigError(f"--set {override}: malformed key {dotted!r}")
        node = tree
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {dotted}: {prefix} is a value, not a section")
            node = child
        value = _parse_override_value(text)
        node[parts[-1]] = value
        _record_sources(value, dotted, f"--set {dotted}", sources)
    return tree


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _check_value(annotation: Any, value: Any, dotted: str, sources: dict[str, str], root_source: str) -> Any:
    """Validate `value` against a type annotation; returns the converted value (dataclasses built, tuples made)."""
    source = sources.get(dotted, root_source)
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)

    def fail(expected: str) -> typing.NoReturn:
        raise ConfigError(f"{source}: {dotted}: expected {expected}, got {type(value).__name__} {value!r}")

    if annotation is Any:
        return value
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            fail(f"a section ({annotation.__name__})")
        return _build(annotation, value, f"{dotted}.", sources, root_source)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in arguments:
            return None
        errors = []
        for option in [a for a in arguments if a is not type(None)]:
            try:
                return _check_value(option, value, dotted, sources, root_source)
            except ConfigError as error:
                errors.append(error)
        if len(errors) == 1:
            raise errors[0]
        fail(" or ".join(_type_name(a) for a in arguments))
    if origin is typing.Literal:
        if value not in arguments:
            fail("one of " + ", ".join(repr(a) for a in arguments))
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            fail(_type_name(annotation))
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            if len(value) != len(arguments):
                fail(f"{len(arguments)} items")
            items = [
                _check_value(a, v, f"{dotted}[{i}]", sources, root_source)
                for i, (a, v) in enumerate(zip(arguments, value))
            ]
        else:
            item_type = arguments[0] if arguments else Any
            items = [_check_value(item_type, v, f"{dotted}[{i}]", sources, root_source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            fail(_type_name(annotation))
        value_type = arguments[1] if arguments else Any
        return {str(k): _check_value(value_type, v, f"{dotted}.{k}", sources, root_source) for k, v in value.items()}
    if annotation is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail("a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            fail("a string")
        return value
    raise TypeError(f"schema type {annotation!r} at {dotted} is not supported by utils.config")


def _build(schema: type, tree: dict, prefix: str, sources: dict[str, str], root_source: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for key in tree:
        if key not in fields:
            dotted = f"{prefix}{key}"
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            known = ", ".join(fields)
            raise ConfigError(
                f"{sources.get(dotted, root_source)}: unknown key '{dotted}'{hint}; known keys here: {known}"
            )
    values = {}
    for name, field in fields.items():
        dotted = f"{prefix}{name}"
        if name in tree:
            values[name] = _check_value(hints[name], tree[name], dotted, sources, root_source)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{root_source}: missing required value '{dotted}'")
    try:
        return schema(**values)
    except ConfigError as error:
        raise ConfigError(f"{root_source}: {error}") from error
    except ValueError as error:
        section = prefix.rstrip(".") or "config"
        raise ConfigError(f"{root_source}: {section}: {error}") from error


def validate(schema: type, tree: dict, sources: dict[str, str] | None = None, root_source: str = "<config>") -> Any:
    """Build a `schema` dataclass instance from a plain tree, with strict checks (see module docstring)."""
    return _build(schema, tree, "", sources or {}, root_source)


def load_config(path: Path | str, schema: type, overrides: typing.Iterable[str] = ()) -> Any:
    """Load a JSON5 config with its `base_config` chain and `--set` overrides into `schema`."""
    tree, sources = load_tree(path)
    tree = apply_overrides(tree, sources, overrides)
    return validate(schema, tree, sources, str(path))


def config_to_dict(config: Any) -> dict:
    """The resolved config as plain JSON-ready data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def save_resolved_config(config: Any, path: Path | str) -> None:
    """Write the resolved config as JSON atomically (temp name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".{path.name}.partial")
    temp_path.write_text(json.dumps(config_to_dict(config), indent=2) + "\n", encoding="utf-8")
    temp_path.replace(path)
