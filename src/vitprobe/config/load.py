"""Load, assemble and validate a config: strict YAML (duplicate keys rejected), the files
passed *replace* the default config (never merge into it), command-line overrides by
dotted key, then the JSON schema (defaults filled in) and the semantic checks of
`vitprobe.config.plan.Plan`. Every error is a one-line `ConfigError` naming file, key and what is
allowed."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import TYPE_CHECKING

import jsonschema
import yaml

from vitprobe import claims, stats
from vitprobe.data.registry import DATASETS
from vitprobe.errors import ConfigError, first_line

if TYPE_CHECKING:
    from vitprobe.config.plan import Plan

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")
# `--config train__epochs=10` (Snakemake allows no dots in --config keys) or, for
# `vitprobe check-config --set`, `train.epochs=10` as well.
OVERRIDE_SEPARATORS = ("__", ".")


@functools.cache
def _schema_text() -> str:
    return SCHEMA_PATH.read_text()


def schema() -> dict:
    """The config's JSON schema, its dataset list from the dataset registry."""
    s = yaml.safe_load(_schema_text())
    s["$defs"]["dataset"]["enum"] = list(DATASETS)
    return s


# ---- strict YAML -------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML's last-wins would
    silently drop the first value)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: overriding merged keys is allowed
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConfigError(f"{self.name}:{key_node.start_mark.line + 1}: duplicate key {key!r} (first given on "
                                  f"line {seen[key] + 1}); give each key once")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path) -> dict:
    """A config file as a dict; missing file, syntax error or duplicate key -> one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    loader = _StrictLoader(path.read_text())
    loader.name = str(path)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {first_line(exc)}") from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys (data, experiments, ...), "
                          f"not a {type(data).__name__}")
    return data


# ---- overrides ---------------------------------------------------------------------
def _split_key(key: str) -> list[str]:
    for sep in OVERRIDE_SEPARATORS:
        if sep in key:
            return key.split(sep)
    return [key]


def _merge(base: dict, extra: dict) -> None:
    """Recursive update: mappings merge, everything else (lists too) is replaced."""
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)


def apply_overrides(config: dict, overrides: dict) -> None:
    """Set `{"train__epochs": 10}` / `{"train.epochs": 10}` / `{"train": {"epochs": 10}}` in place.
    Values that arrive as strings (Snakemake's --config parses nested values as strings) are
    converted to the type the schema wants for that key."""
    nested: dict = {}
    for key, value in overrides.items():
        parts = _split_key(str(key))
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: {p!r} is set both as a value and as a section")
        node[parts[-1]] = value
    _merge(config, _typed(nested, schema()))


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/"):
        node = root
        for part in ref[2:].split("/"):
            node = node[part]
        return {**_resolve(node, root), **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _types(schema: dict, root: dict) -> set[str]:
    schema = _resolve(schema, root)
    out = set()
    t = schema.get("type")
    out |= {t} if isinstance(t, str) else set(t or ())
    for alt in schema.get("oneOf", []) + schema.get("anyOf", []):
        out |= _types(alt, root)
    if "enum" in schema:
        out |= {"string" if isinstance(v, str) else "other" for v in schema["enum"]}
    return out


def _child(schema: dict, key, root: dict) -> dict | None:
    schema = _resolve(schema, root)
    for alt in [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]:
        alt = _resolve(alt, root)
        if isinstance(key, int) and isinstance(alt.get("items"), dict):
            return alt["items"]
        if isinstance(key, str):
            if key in alt.get("properties", {}):
                return alt["properties"][key]
            if isinstance(alt.get("additionalProperties"), dict):
                return alt["additionalProperties"]
    return None


def _typed(value, schema: dict | None, root: dict | None = None):
    """Convert strings to int/float/bool/null/list where the schema does not accept a
    string there; anything it cannot convert is left for the schema check to reject."""
    root = root if root is not None else schema
    if schema is None:
        return value
    if isinstance(value, dict):
        return {k: _typed(v, _child(schema, k, root), root) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v, _child(schema, i, root), root) for i, v in enumerate(value)]
    if isinstance(value, str) and "string" not in _types(schema, root):
        parsed = value
        for parse in (int, float, yaml.safe_load):  # float first: YAML 1.1 reads '2e-3' as a string
            try:
                parsed = parse(value)
                break
            except (ValueError, yaml.YAMLError):
                continue
        return _typed(parsed, schema, root) if not isinstance(parsed, str) else value
    return value


# ---- validation --------------------------------------------------------------------
def _with_defaults(validator_class):
    """A validator that fills in `default` values of missing properties while validating."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"config key {key}: {error.message}" + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
    if error.validator == "enum":
        allowed = ", ".join(map(repr, error.validator_value))
        return f"config key {key}: {error.instance!r} is not allowed; allowed: {allowed}"
    if error.validator == "oneOf" and key.endswith("fractions." + str(error.absolute_path[-1])):
        return f"config key {key}: {error.instance!r} is not a fraction in (0, 1] (a number or a string like '1/64')"
    if error.validator == "oneOf" and error.instance is not None and {"type": "null"} in error.validator_value:
        # "null or an object": the object's own error is the one to report
        inner = [e for e in error.context if error.validator_value[e.relative_schema_path[0]] != {"type": "null"}]
        if inner:
            return _describe(jsonschema.exceptions.best_match(inner))
    if error.validator in ("oneOf", "anyOf") and "description" in error.schema:
        return f"config key {key}: {error.instance!r} is not allowed; allowed: {error.schema['description']}"
    return f"config key {key}: {error.message}"


def validate(config: dict, source: str = "config") -> Plan:
    """Validate in place (filling defaults) and return the run plan; raise ConfigError.
    `source` (the file names) prefixes the message."""
    from vitprobe.config.plan import Plan  # the model registry (torch), only where a config is validated
    cls = _with_defaults(jsonschema.Draft202012Validator)
    errors = sorted(cls(schema()).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError(f"{source}: " + "; ".join(_describe(e) for e in errors))
    resolve_last(config)
    try:
        plan = Plan(config)
        claims.check(plan)
        return plan
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def resolve_last(config: dict) -> None:
    """`last` in an epoch list (train.checkpoint_epochs, probes.<name>.epochs) or as a figure's
    epoch becomes train.epochs, in place: a config that says `last` follows `--config
    train__epochs=N`, and every job sees numbers."""
    last = config["train"]["epochs"]
    lists = [config["train"], *config["probes"].values()]
    for block, key in [(b, "checkpoint_epochs" if b is config["train"] else "epochs") for b in lists]:
        if "last" in block.get(key, []):
            block[key] = sorted({last if e == "last" else e for e in block[key]})
    for figure in config["figures"].values():
        if figure.get("epoch") == "last":
            figure["epoch"] = last


def defaults(*keys: str):
    """The schema's defaults of a config block, e.g. defaults("train", "augment") (the one source
    of default values; library functions take explicit arguments)."""
    config = {"data": {"dataset": "synthetic"}, "experiments": {"x": {"models": ["x"]}}}
    list(_with_defaults(jsonschema.Draft202012Validator)(schema()).iter_errors(config))
    for key in keys:
        config = config[key]
    return copy.deepcopy(config)


def intervals(config: dict | None = None) -> stats.Intervals:
    """How intervals are computed for a config or a job spec (its `intervals` block, the
    schema's defaults for what it lacks)."""
    block = {**defaults("intervals"), **((config or {}).get("intervals") or {})}
    try:
        return stats.Intervals.of(block)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def assemble(files, overrides: dict | None = None, default=None) -> dict:
    """The config a run uses: the given files merged in order (the default file only when
    none is given: a file you pass is the whole config), then the overrides."""
    files = [Path(f) for f in files] or ([Path(default)] if default else [])
    config: dict = {}
    for f in files:
        _merge(config, load_yaml(f))
    apply_overrides(config, overrides or {})
    return config


def load(path, overrides: dict | None = None) -> tuple[dict, Plan]:
    config = assemble([path], overrides)
    return config, validate(config, source=str(path))
