"""Option on the blockchain RPC providers: switch the primary provider in the environment's
parameters file (``blockchain.primary`` in ``parameters/environments/<env>.yaml``).

Only that key's line changes; every other line, comments included, stays byte for byte. The
target must be a configured provider that this run's diagnosis found healthy, on a chain the
diagnosis could establish. Without ``to_provider`` the option switches only when the diagnosis
recommends it: a healthy primary is left as it is (skipped).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Protocol

import yaml

from runbook_lib.core.errors import SourceError
from runbook_lib.kernel.actions.guard import Guard, Option

NAME = "environment parameters"


class RpcDiagnosis(Protocol):
    """What the option needs of this run's diagnosis (checks.blockchain.Providers)."""

    checked: bool
    primary: str | None
    target: str | None
    expected_chain: int | None

    @property
    def status(self) -> dict[str, str]: ...

    @property
    def chain_unknown(self) -> bool: ...

    @property
    def switch_recommended(self) -> bool: ...


class BlockchainOptions(Guard):
    def switch_rpc_provider(
        self,
        to_provider: str | None = None,
        rpc: RpcDiagnosis | None = None,
        *,
        recommended: bool | None = None,
        why: str = "",
    ) -> dict[str, Any]:
        """Set ``blockchain.primary`` to ``to_provider`` (default: the healthy provider the
        diagnosis ``rpc`` recommends, only when it recommends a switch) in this environment's
        parameters file. Without ``to_provider`` and with a healthy primary, nothing to do."""
        settings = self.rb.settings
        path = settings.parameters_dir / "environments" / f"{settings.env}.yaml"
        shown = f"parameters/environments/{settings.env}.yaml"
        explicit = (to_provider or "").strip()
        target = explicit or (rpc.target if rpc is not None and rpc.switch_recommended else None)
        known = [p.name for p in settings.blockchain.providers]
        current = settings.blockchain.primary
        not_needed = None if explicit else healthy_primary(rpc)
        command = f"set blockchain.primary: {target or '<provider>'} in {shown} (now: {current or 'not set'})"
        if not_needed:
            command = f"nothing to do: {not_needed}; give to_provider to switch anyway"

        def plan() -> dict[str, Any]:
            text = _read(path)
            out: dict[str, Any] = {"file": shown, "from": current, "to": target, "command": command}
            out["sha256"] = hashlib.sha256(text.encode()).hexdigest()
            if not_needed:
                return {**out, "to": None, "noop": True, "note": not_needed}
            refusal = target_refusal(target, known, rpc)
            if refusal:
                return {**out, "missing": refusal}
            assert target is not None
            out["diff"] = _diff(text, set_yaml_key(text, "blockchain", "primary", target), shown)
            return {**out, "noop": target == current}

        def perform(p: dict[str, Any]) -> dict[str, Any]:
            text = _read(path)
            if hashlib.sha256(text.encode()).hexdigest() != p["sha256"]:
                raise SourceError(NAME, f"{shown} changed since the change was prepared; run the runbook again")
            _write(path, set_yaml_key(text, "blockchain", "primary", p["to"]))
            return {"file": shown, "primary": p["to"], "previous": current}

        title = f"Switch the primary RPC provider to {target}" if target else "Switch the primary RPC provider"
        option = Option(
            "switch_rpc_provider",
            f"{title} (not needed: {not_needed})" if not_needed else title,
            shown,
            command,
            ("rpc_provider", f"{settings.env}:{target or ''}"),
            plan,
            perform,
        )
        return self._run(option, recommended, why)


def healthy_primary(rpc: RpcDiagnosis | None) -> str | None:
    """Why no switch is needed when this run's diagnosis found the primary healthy (and so
    recommends none); None otherwise."""
    if rpc is None or not rpc.checked or rpc.switch_recommended or not rpc.primary:
        return None
    if rpc.status.get(rpc.primary) != "ok":
        return None
    return f"the primary {rpc.primary} is healthy"


def target_refusal(target: str | None, known: list[str], rpc: RpcDiagnosis | None) -> str | None:
    """Why ``target`` may not become the primary (None: it may): not a configured provider, no
    diagnosis in this run, the chain unknown in it (no blockchain.chain_id and the providers
    disagree), no target, or not healthy in it."""
    if target and target not in known:
        return f"{target!r} is not a configured provider (known: {', '.join(known) or 'none'})"
    if rpc is None or not rpc.checked:
        if not target:
            return "no healthy provider to switch to in this run's diagnosis; name one with to_provider"
        return "this run could not check the providers, so it cannot tell whether the target is healthy"
    if rpc.expected_chain is None and rpc.chain_unknown:
        return (
            "the providers disagree on the chain and no blockchain.chain_id is set, so this run cannot tell which "
            "provider reads the right network; set blockchain.chain_id and run it again"
        )
    if not target:
        return "no healthy provider to switch to in this run's diagnosis; name one with to_provider"
    state = rpc.status.get(target)
    if state != "ok":
        return f"{target} is {(state or 'unknown').replace('_', ' ')} in this run's diagnosis; switch only to a healthy provider"
    return None


# -- the parameters file --------------------------------------------------------------------------------
def set_yaml_key(text: str, section: str, key: str, value: str) -> str:
    """``text`` (a YAML file) with ``section.key`` set to ``value``, every other line kept as it
    is (comments too). Raises SourceError when the file is not in a form this can edit safely
    (the result is parsed and compared with the intended change)."""
    lines = text.splitlines(keepends=True)
    header = next(
        (i for i, line in enumerate(lines) if re.fullmatch(rf"{re.escape(section)}:[ \t]*(#.*)?\r?\n?", line)), None
    )
    if header is None:
        _must_be_absent(text, section)
        new = text + ("\n" if text and not text.endswith("\n") else "") + f"{section}:\n  {key}: {_scalar(value)}\n"
    else:
        new = "".join(_set_in_block(lines, header, key, value))
    _verify(text, new, section, key, value)
    return new


def _set_in_block(lines: list[str], header: int, key: str, value: str) -> list[str]:
    end = next((i for i in range(header + 1, len(lines)) if re.match(r"[^\s#]", lines[i])), len(lines))
    body = [i for i in range(header + 1, end) if lines[i].strip() and not lines[i].lstrip().startswith("#")]
    indent = re.match(r"[ \t]*", lines[body[0]]).group(0) if body else "  "  # type: ignore[union-attr]
    pattern = re.compile(rf"({re.escape(indent)}{re.escape(key)}:[ \t]*)([^#\r\n]*?)([ \t]+#[^\r\n]*)?(\r?\n?)")
    for i in body:
        m = pattern.fullmatch(lines[i])
        if m:
            return [*lines[:i], f"{m[1]}{_scalar(value)}{m[3] or ''}{m[4]}", *lines[i + 1 :]]
    return [*lines[: header + 1], f"{indent}{key}: {_scalar(value)}\n", *lines[header + 1 :]]


def _scalar(value: str) -> str:
    """``value`` as a YAML string: plain when it reads back as itself, else double-quoted."""
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


def _must_be_absent(text: str, section: str) -> None:
    if section in (_load(text) or {}):
        raise SourceError(NAME, f"{section} is not a block mapping (flow style or null); edit the file by hand")


def _verify(old: str, new: str, section: str, key: str, value: str) -> None:
    expected = copy.deepcopy(_load(old) or {})
    if not isinstance(expected, dict):
        raise SourceError(NAME, "the top level is not a mapping; edit the file by hand")
    if not isinstance(expected.get(section), dict):
        expected[section] = {}
    expected[section][key] = value
    if _load(new) != expected:
        raise SourceError(NAME, f"cannot set {section}.{key} without changing something else; edit the file by hand")


def _load(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SourceError(NAME, f"not valid YAML: {exc}") from None


def _diff(old: str, new: str, name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), name, name, n=1))


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SourceError(NAME, f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SourceError(NAME, f"{path} is not UTF-8 text") from None


def _write(path: Path, text: str) -> None:
    """Replace the file in one step (a reader never sees half of it), keeping its mode."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(text.encode("utf-8"))
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SourceError(NAME, f"cannot write {path}: {exc.strerror}") from None
