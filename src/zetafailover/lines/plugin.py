"""The built-in line-switch strategies as a plugin: ``ysplitter``, ``separate`` and ``pbx``.

Config (``[line]`` section; every key checked, errors name the file, the key and the reason):

* ``strategy = "ysplitter"`` — ``state`` (optional path, on the shared folder: the holder file);
* ``strategy = "separate"`` — ``lines`` (table node → list of line descriptions, required), ``numbers`` (list),
  ``events`` (path of the operator event log), ``state``, ``pbx`` (optional table with the ``pbx`` keys below:
  the PBX re-routes instead of the operator);
* ``strategy = "pbx"`` — ``transport`` (``webhook`` | ``ami`` | ``command``), ``targets`` (table node → line /
  trunk / extension; default the node name), ``state``, ``status`` (JSON-lines report), ``timeout`` (s, per
  round trip, default 2), ``retry_interval`` (s, default 2), ``retries`` (default 30), and per transport:
  webhook ``url``, ``method`` (POST/PUT/PATCH), ``body`` (table template), ``token`` / ``token_file``,
  ``tls_verify`` (default true), ``ca_file``, ``verify_url``; ami ``host``, ``port`` (5038), ``username``,
  ``secret`` / ``secret_file``, ``family`` (fax), ``key`` (active), ``value`` ({target}), ``term_key`` (term);
  command ``command`` (argument list), ``verify_command``, ``env``.

Relative paths are relative to the config file's folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zetafailover.plugins import hookimpl, section_error

if TYPE_CHECKING:
    from zetafailover.config import NodeConfig, SectionConfig
    from zetafailover.interfaces import Clock, LineSwitch

STRATEGIES = ("ysplitter", "separate", "pbx")

_COMMON_PBX = {"transport", "targets", "state", "status", "timeout", "retry_interval", "retries"}
_TRANSPORT_KEYS = {
    "webhook": {"url", "method", "body", "token", "token_file", "tls_verify", "ca_file", "verify_url"},
    "ami": {"host", "port", "username", "secret", "secret_file", "family", "key", "value", "term_key"},
    "command": {"command", "verify_command", "env"},
}


@hookimpl
def zetafailover_line_strategies() -> list[str]:
    return list(STRATEGIES)


@hookimpl
def zetafailover_validate_config(config: NodeConfig) -> None:
    if config.line is not None and config.line.kind in STRATEGIES:
        _build(config.line, config.node, dry=True)


@hookimpl
def zetafailover_make_line_switch(section: SectionConfig, node: str, clock: Clock) -> LineSwitch | None:
    if section.kind not in STRATEGIES:
        return None
    switch = _build(section, node, dry=False)
    assert switch is not None
    from zetafailover import lines  # noqa: PLC0415

    lines.register(node, switch)
    return switch


def _build(section: SectionConfig, node: str, *, dry: bool) -> LineSwitch | None:
    opts = section.options
    if section.kind == "ysplitter":
        _known(section, opts, {"state"}, "the 'ysplitter' strategy")
        state = _path(section, opts, "state")
        if dry:
            return None
        from zetafailover.lines.ysplitter import YSplitterLineSwitch  # noqa: PLC0415

        return YSplitterLineSwitch(state)
    if section.kind == "separate":
        _known(section, opts, {"lines", "numbers", "events", "state", "pbx"}, "the 'separate' strategy")
        lines = opts.get("lines")
        if (
            not isinstance(lines, dict)
            or not lines
            or not all(isinstance(v, list) and v and all(isinstance(x, str) and x for x in v) for v in lines.values())
        ):
            raise section_error(
                section, "lines", f'must be a table of node = ["line", ...] (each server\'s own lines), not {lines!r}'
            )
        numbers = opts.get("numbers", [])
        if not isinstance(numbers, list) or not all(isinstance(n, str) and n.strip() for n in numbers):
            raise section_error(section, "numbers", f"must be a list of fax numbers, not {numbers!r}")
        events = _path(section, opts, "events")
        state = _path(section, opts, "state")
        pbx_opts = opts.get("pbx")
        if pbx_opts is not None and not isinstance(pbx_opts, dict):
            raise section_error(section, "pbx", f"must be a table of pbx strategy keys, not {pbx_opts!r}")
        pbx = _pbx(section, dict(pbx_opts), "pbx.", dry=dry) if pbx_opts is not None else None
        if dry:
            return None
        from zetafailover.lines.separate import SeparateLinesSwitch  # noqa: PLC0415

        return SeparateLinesSwitch(lines, numbers, events=events, state=state, pbx=pbx)
    switch: LineSwitch | None = _pbx(section, dict(opts), "", dry=dry)
    return switch


def _pbx(section: SectionConfig, opts: dict[str, Any], prefix: str, *, dry: bool) -> Any:
    transport = opts.get("transport")
    if transport not in _TRANSPORT_KEYS:
        raise section_error(section, prefix + "transport", f"must be one of webhook, ami, command, not {transport!r}")
    _known(section, opts, _COMMON_PBX | _TRANSPORT_KEYS[transport], f"the pbx {transport!r} transport", prefix)
    targets = opts.get("targets", {})
    if not isinstance(targets, dict) or not all(isinstance(v, str) and v for v in targets.values()):
        raise section_error(
            section, prefix + "targets", f'must be a table of node = "line or extension", not {targets!r}'
        )
    timeout = _number(section, opts, "timeout", 2.0, prefix, positive=True)
    retry_interval = _number(section, opts, "retry_interval", 2.0, prefix, positive=True)
    retries = opts.get("retries", 30)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100000:
        raise section_error(section, prefix + "retries", f"must be a whole number from 0 to 100000, not {retries!r}")
    state = _path(section, opts, "state", prefix)
    status = _path(section, opts, "status", prefix)
    from zetafailover.lines import pbx  # noqa: PLC0415

    made: Any
    if transport == "webhook":
        url = opts.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise section_error(section, prefix + "url", f"must be an http:// or https:// URL, not {url!r}")
        method = opts.get("method", "POST")
        if method not in ("POST", "PUT", "PATCH"):
            raise section_error(section, prefix + "method", f"must be POST, PUT or PATCH, not {method!r}")
        body = opts.get("body")
        if body is not None and not isinstance(body, dict):
            raise section_error(section, prefix + "body", f"must be a table (the JSON body template), not {body!r}")
        tls_verify = opts.get("tls_verify", True)
        if not isinstance(tls_verify, bool):
            raise section_error(section, prefix + "tls_verify", f"must be true or false, not {tls_verify!r}")
        verify_url = opts.get("verify_url", "")
        if not isinstance(verify_url, str) or (verify_url and not verify_url.startswith(("http://", "https://"))):
            raise section_error(section, prefix + "verify_url", f"must be an http(s) URL, not {verify_url!r}")
        token = _secret(section, opts, "token", prefix, dry=dry)
        ca_file = _path(section, opts, "ca_file", prefix)
        if dry:
            return None
        made = pbx.WebhookTransport(
            url,
            method=method,
            body=body,
            token=token,
            tls_verify=tls_verify,
            ca_file=ca_file,
            timeout=timeout,
            verify_url=verify_url,
        )
    elif transport == "ami":
        host = opts.get("host", "127.0.0.1")
        if not isinstance(host, str) or not host or any(c.isspace() for c in host):
            raise section_error(section, prefix + "host", f"must be a host name or address, not {host!r}")
        port = opts.get("port", 5038)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise section_error(section, prefix + "port", f"must be a TCP port 1..65535, not {port!r}")
        username = opts.get("username")
        if not isinstance(username, str) or not username:
            raise section_error(section, prefix + "username", f"missing or not text: {username!r}")
        secret = _secret(section, opts, "secret", prefix, dry=dry, required=True)
        strings = {}
        for key, default in (("family", "fax"), ("key", "active"), ("value", "{target}"), ("term_key", "term")):
            value = opts.get(key, default)
            if not isinstance(value, str) or any(c in value for c in "\r\n") or (key != "term_key" and not value):
                raise section_error(section, prefix + key, f"must be text on one line, not {value!r}")
            strings[key] = value
        if dry:
            return None
        made = pbx.AmiTransport(host, port, username, secret, timeout=timeout, **strings)
    else:
        argv = _argv(section, opts, "command", prefix, required=True)
        verify = _argv(section, opts, "verify_command", prefix, required=False)
        env = opts.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise section_error(section, prefix + "env", f'must be a table of strings (NAME = "value"), not {env!r}')
        if dry:
            return None
        made = pbx.CommandTransport(argv, verify=verify, env=env, timeout=timeout)
    return pbx.PbxLineSwitch(made, targets, state=state, status=status, retry_interval=retry_interval, retries=retries)


# ---------------------------------------------------------------------------------------------- helpers


def _known(section: SectionConfig, opts: dict[str, Any] | Any, known: set[str], what: str, prefix: str = "") -> None:
    for key in opts:
        if key not in known:
            raise section_error(
                section, prefix + key, f"unknown key for {what}; known keys: {', '.join(sorted(known))}"
            )


def _path(section: SectionConfig, opts: Any, key: str, prefix: str = "") -> Path | None:
    value = opts.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise section_error(section, prefix + key, f"must be a file path, not {value!r}")
    return section.path(value)


def _number(section: SectionConfig, opts: Any, key: str, default: float, prefix: str, *, positive: bool) -> float:
    value = opts.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or math.isinf(value):
        raise section_error(section, prefix + key, f"must be a number of seconds, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise section_error(
            section, prefix + key, f"must be {'greater than 0' if positive else 'zero or more'}, not {value}"
        )
    return float(value)


def _argv(section: SectionConfig, opts: Any, key: str, prefix: str, *, required: bool) -> list[str]:
    argv = opts.get(key)
    if argv is None and not required:
        return []
    if (
        not isinstance(argv, list)
        or not argv
        or not all(isinstance(a, str) and "\x00" not in a for a in argv)
        or not argv[0]
    ):
        raise section_error(
            section,
            prefix + key,
            f"must be a non-empty list of strings (the program and its arguments, no shell), not {argv!r}",
        )
    return list(argv)


def _secret(section: SectionConfig, opts: Any, key: str, prefix: str, *, dry: bool, required: bool = False) -> str:
    value, file_key = opts.get(key), key + "_file"
    path = _path(section, opts, file_key, prefix)
    if value is not None and path is not None:
        raise section_error(section, prefix + file_key, f"give either {key} or {file_key}, not both")
    if value is not None:
        if not isinstance(value, str) or not value or any(c in value for c in "\r\n"):
            raise section_error(section, prefix + key, "must be non-empty text on one line")
        return value
    if path is not None:
        if dry:
            return ""
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise section_error(section, prefix + file_key, f"cannot read {path}: {exc.strerror or exc}") from None
        if not text:
            raise section_error(section, prefix + file_key, f"{path} is empty")
        return text
    if required:
        raise section_error(section, prefix + key, f"missing; give {key} or {file_key}")
    return ""
