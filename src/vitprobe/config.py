"""Load and validate a config: JSON schema first (defaults filled in), then the semantic
checks of `vitprobe.grid.Plan`. Errors name the key and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from vitprobe.grid import ConfigError, Plan

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


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
        return f"config key {key}: {error.instance!r} is not allowed; allowed: {', '.join(map(repr, error.validator_value))}"
    if error.validator == "oneOf" and key.endswith("fractions." + str(error.absolute_path[-1])):
        return f"config key {key}: {error.instance!r} is not a fraction in (0, 1] (a number or a string like '1/64')"
    return f"config key {key}: {error.message}"


def validate(config: dict) -> Plan:
    """Validate in place (filling defaults) and return the run plan; raise ConfigError."""
    cls = _with_defaults(jsonschema.Draft202012Validator)
    errors = sorted(cls(_schema()).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(_describe(e) for e in errors))
    return Plan(config)


def load(path) -> tuple[dict, Plan]:
    config = yaml.safe_load(Path(path).read_text()) or {}
    return config, validate(config)
