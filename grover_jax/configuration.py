"""Loading run configs: `configs/*.py` files (big_vision style `get_config(arg)`) plus `--set a.b=c`."""

import ast
import importlib
import importlib.util
from pathlib import Path

import ml_collections


class ConfigError(ValueError):
    pass


def load_config(spec: str, overrides: list[str] | tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """`spec` is a config file (`configs/tiny.py`, optionally `:arg`) or a bundled config's name
    (`tiny`, `grover_base`); overrides are `section.field=value`, type-checked against the config."""
    spec, _, arg = spec.partition(":")
    if spec.endswith(".py") or "/" in spec:
        path = Path(spec)
        if not path.exists():
            raise ConfigError(f"{path}: no such config file")
        module_spec = importlib.util.spec_from_file_location(f"_grover_config_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
        except Exception as error:  # noqa: BLE001 - any error in a user's config file is a config error
            raise ConfigError(f"{path}: cannot load config ({type(error).__name__}: {error})") from None
    else:
        try:
            module = importlib.import_module(f"configs.{spec}")
        except ModuleNotFoundError:
            raise ConfigError(f"no bundled config named {spec!r} (try tiny, grover_base, or a path)") from None
    config = module.get_config(arg or None)
    apply_overrides(config, overrides)
    return config


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str] | tuple[str, ...]) -> None:
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep:
            raise ConfigError(f"--set {override!r}: expected section.field=value")
        parent, _, field = key.strip().rpartition(".")
        node = config
        for part in filter(None, parent.split(".")):
            if part not in node:
                raise ConfigError(f"--set {override!r}: the config has no section {part!r}")
            node = node[part]
        if field not in node:
            raise ConfigError(f"--set {override!r}: the config has no field {key.strip()!r}")
        current = node[field]
        value = _parse_value(text.strip())
        if isinstance(current, bool) and not isinstance(value, bool):
            raise ConfigError(f"--set {override!r}: {key} takes true/false")
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(current, str) and not isinstance(value, str):
            value = text.strip()
        if current is not None and type(value) is not type(current):
            raise ConfigError(f"--set {override!r}: {key} is a {type(current).__name__}, got {value!r}")
        node[field] = value


def _parse_value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
