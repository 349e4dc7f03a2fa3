"""Fast twins of strict decoders, for bodies that cannot hold what a pattern refuses.

msgspec checks a `pattern` constraint with Python's `re` on every string, which is
most of the cost of decoding a view. The printable-text pattern (`types.PRINTABLE`)
can only fail on a control character, DEL or a lone surrogate; in JSON text, a
control character or a surrogate can only come from an escape (`\\`: a raw control
character is malformed JSON and a raw surrogate is invalid UTF-8, both refused by
the decoder itself) and DEL only as the raw byte 0x7f. So a body without `\\` and
without 0x7f decodes exactly alike with or without that pattern, and is decoded
with a twin whose texts drop it. Any other body goes through the strict decoder,
so every error (message and path) is the strict one.

The twins subclass the declared structs, with the same names and an equality that
ignores which of the two made an instance: callers get instances of the declared
classes (`isinstance(t, Tile)` holds), and the limits stay declared on the types.
"""
from __future__ import annotations

import types
import typing
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from parsers.types import PRINTABLE


def can_skip_printable_check(body: bytes) -> bool:
    """True when no string of this JSON body can fail the printable pattern."""
    return b"\\" not in body and b"\x7f" not in body


def _lean_meta(meta: Meta) -> Meta | None:
    if meta.pattern != PRINTABLE:
        return meta
    kept = {k: getattr(meta, k) for k in ("min_length", "max_length") if getattr(meta, k) is not None}
    return Meta(**kept) if kept else None


def _eq_as(declared: type) -> tuple[Any, Any]:
    def __eq__(self: Any, other: object) -> Any:
        if not isinstance(other, declared):
            return NotImplemented
        return msgspec.structs.astuple(self) == msgspec.structs.astuple(other)  # type: ignore[arg-type]

    def __ne__(self: Any, other: object) -> Any:
        equal = __eq__(self, other)
        return equal if equal is NotImplemented else not equal

    return __eq__, __ne__


def lean_type(tp: Any, _memo: dict[type, type] | None = None) -> Any:
    """`tp` with the printable pattern removed everywhere (structs become subclasses)."""
    memo = {} if _memo is None else _memo
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        leaned = [m if not isinstance(m, Meta) else _lean_meta(m) for m in extras]
        kept = [m for m in leaned if m is not None]
        base = lean_type(base, memo)
        return Annotated[(base, *kept)] if kept else base
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        if tp not in memo:
            fields = []
            for f in msgspec.structs.fields(tp):
                if f.default is not msgspec.NODEFAULT:
                    default = msgspec.field(default=f.default, name=f.encode_name)
                elif f.default_factory is not msgspec.NODEFAULT:
                    default = msgspec.field(default_factory=f.default_factory, name=f.encode_name)
                else:
                    default = msgspec.field(name=f.encode_name)
                fields.append((f.name, lean_type(f.type, memo), default))
            # Same name as the declared class, equal to it field for field: a caller
            # cannot tell which decoder made an instance.
            eq, ne = _eq_as(tp)
            twin = msgspec.defstruct(tp.__name__, fields, bases=(tp,), module=__name__,
                                     namespace={"__eq__": eq, "__ne__": ne})
            memo[tp] = twin
        return memo[tp]
    args = typing.get_args(tp)
    if origin is None or not args or origin is typing.Literal:
        return tp
    leaned_args = tuple(lean_type(a, memo) for a in args)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[leaned_args]  # noqa: UP007
    return origin[leaned_args]
