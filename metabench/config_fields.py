"""Learner config fields, discoverable: type, default and doc line of each, and choice checks.

A ``LearnerConfig`` subclass documents its fields in its docstring, one ``name: text``
entry per field (``a, b: text`` documents several; indented lines continue an entry);
``field_docs`` reads them along the class's bases. A field typed ``Literal[...]`` (or
``Literal[...] | None``) is a choice: ``check_choices`` (run by ``LearnerConfig`` when a
config is made) refuses any other value with a did-you-mean. Annotations do not enter
the config hash (values do), so typing a field ``Literal`` keeps every hash.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
import typing
from typing import Any, Literal

from metabench.errors import ConfigError

_ENTRY = re.compile(r"^(?P<names>[a-z_][a-z0-9_]*(?:\s*,\s*[a-z_][a-z0-9_]*)*)\s*:\s*(?P<text>.*)$")


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    """One config field: ``name``, ``type`` (as written), ``default``, ``doc`` (one line) and ``choices``."""

    name: str
    type: str
    default: Any
    doc: str
    choices: tuple[Any, ...] | None


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, cached per class (``{}`` where annotations do not resolve)."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):
        return {}


def choices_of(hint: Any) -> tuple[Any, ...] | None:
    """The values of a ``Literal[...]`` hint (``None`` included for ``Literal[...] | None``), else None."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        lits = [a for a in args if typing.get_origin(a) is Literal]
        if lits and all(a is type(None) or typing.get_origin(a) is Literal for a in args):
            values = tuple(v for a in lits for v in typing.get_args(a))
            return (*values, None) if type(None) in args else values
    return None


_SUB = re.compile(r"[;.]\s+(?P<names>[a-z_][a-z0-9_]*(?:\s*,\s*[a-z_][a-z0-9_]*)*):\s")


def _docs(cls: type) -> dict[str, str]:
    """``{field: its entry, one line}`` from the docstrings of ``cls`` and its bases (nearest wins).

    An entry may hold further ones after ``;`` or ``.`` (``hidden: sizes; log_std_init: ...``)
    when the names there are fields.
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = klass.__dict__.get("__doc__")
        if not doc:
            continue
        entries: list[tuple[list[str], list[str]]] = []
        for line in inspect.cleandoc(doc).splitlines():
            m = _ENTRY.match(line)
            if m and not line.startswith(" "):
                entries.append((re.split(r"\s*,\s*", m.group("names")), [m.group("text").strip()]))
            elif entries and line.strip():  # continues the entry (indented or not)
                entries[-1][1].append(line.strip())
            elif entries and not line.strip():
                entries.append(([], []))  # a blank line ends the entry
        for names, parts in entries:
            for sub_names, text in _split_entry(names, " ".join(parts), fields):
                for name in sub_names:
                    if name in fields:
                        out[name] = _one_line(text)
    return out


def _split_entry(names: list[str], text: str, fields: set[str]) -> list[tuple[list[str], str]]:
    """``[(names, text), ...]``: the entry and the entries of fields embedded in its text."""
    out: list[tuple[list[str], str]] = []
    pos, current = 0, names
    for m in _SUB.finditer(text):
        sub = re.split(r"\s*,\s*", m.group("names"))
        if all(n in fields for n in sub):
            out.append((current, text[pos:m.start() + 1]))
            pos, current = m.end(), sub
    out.append((current, text[pos:]))
    return out


def _one_line(text: str, width: int = 110) -> str:
    text = re.sub(r"\s+", " ", re.sub(r"``([^`]*)``", r"\1", text)).strip().rstrip(";").rstrip()
    return text if len(text) <= width else text[: width - 3].rsplit(" ", 1)[0] + " ..."


def _type_name(cls: type, field: dataclasses.Field[Any]) -> str:
    hint = type_hints(cls).get(field.name)
    written = field.type if isinstance(field.type, str) else None
    if written:
        return written.replace("typing.", "")
    return str(hint).replace("typing.", "") if hint is not None else "Any"


def field_docs(cls: type) -> list[FieldDoc]:
    """Every field of the dataclass ``cls`` with its type, default, doc line and choices."""
    docs = _docs(cls)
    hints = type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        out.append(FieldDoc(f.name, _type_name(cls, f), default, docs.get(f.name, ""), choices_of(hints.get(f.name))))
    return out


def check_choices(config: Any, where: str | None = None) -> None:
    """Raise ``ConfigError`` (with did-you-mean) when a ``Literal`` field holds another value."""
    from metabench.registry import did_you_mean

    cls: type = type(config)
    hints = type_hints(cls)
    for f in dataclasses.fields(cls):
        allowed = choices_of(hints.get(f.name))
        if allowed is None:
            continue
        value = getattr(config, f.name)
        if any(value == a and type(value) is type(a) for a in allowed):
            continue
        names = [str(a) for a in allowed if a is not None]
        hint = did_you_mean(str(value), names) if isinstance(value, str) else ""
        raise ConfigError(
            f"{where or cls.__qualname__}: {f.name}={value!r} is not a choice.{hint} "
            f"Choose one of: {', '.join(repr(a) for a in allowed)}."
        )


def coerce_choice(hint: Any, value: str) -> Any:
    """A ``--set key=value`` string as the ``Literal`` value it names (unchanged when none matches)."""
    allowed = choices_of(hint) or ()
    for a in allowed:
        if (a is None and value.lower() == "none") or (a is not None and str(a) == value):
            return a
    return value


def format_fields(cls: type, title: str) -> str:
    """A listing of ``cls``'s fields: ``name  type = default`` and the doc line beneath."""
    lines = [title]
    for fd in field_docs(cls):
        default = "(required)" if fd.default is dataclasses.MISSING else repr(fd.default)
        lines.append(f"  {fd.name}: {fd.type} = {default}")
        if fd.doc:
            lines.append(f"      {fd.doc}")
    return "\n".join(lines)
