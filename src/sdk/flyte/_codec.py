"""Encoding of task inputs and outputs, so that what crosses a task boundary locally would also cross a process one.

A value is encoded by, in order:

1. a registered :class:`TypeEncoder` whose type name appears in the value's MRO (plugins use this for values that
   live in an engine, e.g. a Spark DataFrame written as Parquet under the run's raw data path);
2. msgspec MessagePack, when the parameter's annotation is a type msgspec can decode (validated on decode, so a str
   passed for an ``int`` fails as it would on a cluster);
3. cloudpickle, for everything else (functions, untyped values, arbitrary objects).

Anything that none of them can encode (a lock, a generator, an open socket) fails with an :class:`EncodingError`
that names the task and parameter.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle
import msgspec

from .errors import EncodingError

_MSGPACK = b"m"
_PICKLE = b"p"
_EXTENSION = b"x"

_encoder = msgspec.msgpack.Encoder()
_decoders: dict[Any, msgspec.msgpack.Decoder | None] = {}


@dataclass(frozen=True)
class TypeEncoder:
    """Encodes values of foreign types (named by ``"module.QualName"``, so the engine need not be imported to
    register). ``encode(value, raw_data_path) -> bytes`` and ``decode(payload, raw_data_path) -> value``."""

    name: str
    type_names: tuple[str, ...]
    encode: Callable[[Any, str], bytes]
    decode: Callable[[bytes, str], Any]


_type_encoders: dict[str, TypeEncoder] = {}
_type_encoders_by_name: dict[str, TypeEncoder] = {}


def register_type_encoder(encoder: TypeEncoder) -> None:
    """Register ``encoder`` for each of its ``type_names`` (a later registration replaces an earlier one)."""
    _type_encoders_by_name[encoder.name] = encoder
    for type_name in encoder.type_names:
        _type_encoders[type_name] = encoder


def _extension_for(value: Any) -> TypeEncoder | None:
    if not _type_encoders:
        return None
    for klass in type(value).__mro__:
        found = _type_encoders.get(f"{klass.__module__}.{klass.__qualname__}")
        if found is not None:
            return found
    return None


def _decoder_for(annotation: Any) -> msgspec.msgpack.Decoder | None:
    try:
        return _decoders[annotation]
    except (KeyError, TypeError):
        pass
    decoder: msgspec.msgpack.Decoder | None
    if annotation is Any or annotation is inspect.Parameter.empty or annotation is object:
        decoder = None
    else:
        try:
            decoder = msgspec.msgpack.Decoder(annotation)
        except Exception:  # not a type msgspec understands: fall back to cloudpickle
            decoder = None
    try:
        _decoders[annotation] = decoder
    except TypeError:
        pass
    return decoder


def encode_value(value: Any, annotation: Any, where: str, raw_data_path: str) -> bytes:
    if raw_data_path and "://" in raw_data_path:
        # flyte.io values of a remote run travel as URIs under its raw data: on an object store, or file:// on a
        # volume every pod mounts (a path on one pod's own disk means nothing to another).
        from .io._paths import offloading

        with offloading(raw_data_path):
            return _encode_value(value, annotation, where, raw_data_path)
    return _encode_value(value, annotation, where, raw_data_path)


def _encode_value(value: Any, annotation: Any, where: str, raw_data_path: str) -> bytes:
    extension = _extension_for(value)
    if extension is not None:
        return _EXTENSION + _encoder.encode((extension.name, extension.encode(value, raw_data_path)))
    if _decoder_for(annotation) is not None:
        try:
            return _MSGPACK + _encoder.encode(value)
        except (TypeError, OverflowError):
            pass
    try:
        return _PICKLE + cloudpickle.dumps(value)
    except Exception as exc:
        raise EncodingError(
            f"{where}: a {type(value).__name__} cannot cross a process boundary ({exc}); "
            "pass plain data, a msgspec Struct or dataclass, or something cloudpickle can serialize"
        ) from exc


def decode_value(data: bytes, annotation: Any, where: str, raw_data_path: str) -> Any:
    tag, payload = data[:1], data[1:]
    if tag == _MSGPACK:
        decoder = _decoder_for(annotation)
        try:
            return decoder.decode(payload) if decoder is not None else msgspec.msgpack.decode(payload)
        except msgspec.ValidationError as exc:
            raise EncodingError(f"{where}: {exc} (declared type {_type_name(annotation)})") from None
    if tag == _PICKLE:
        return cloudpickle.loads(payload)
    if tag == _EXTENSION:
        name, inner = msgspec.msgpack.decode(payload)
        extension = _type_encoders_by_name.get(name)
        if extension is None:
            raise EncodingError(f"{where}: no type encoder {name!r} is registered here (import its plugin)")
        return extension.decode(inner, raw_data_path)
    raise EncodingError(f"{where}: unknown encoding tag {tag!r}")


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


class Interface:
    """A function's parameters and return type, with fast binding of call arguments."""

    __slots__ = ("task_name", "signature", "names", "annotations", "output", "simple")

    def __init__(self, func: Callable[..., Any], task_name: str) -> None:
        self.task_name = task_name
        self.signature = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func)
        except Exception:  # unresolvable forward references: treat as untyped
            hints = {}
        params = list(self.signature.parameters.values())
        self.names = [p.name for p in params]
        self.annotations = {p.name: hints.get(p.name, Any) for p in params}
        self.output = hints.get("return", Any)
        # Plain positional-or-keyword parameters without *args/**kwargs can be bound without inspect.
        self.simple = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.simple and not kwargs and len(args) == len(self.names):
            return dict(zip(self.names, args, strict=True))
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.task_name}: {exc}") from None
        bound.apply_defaults()
        return bound.arguments

    def split(self, arguments: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Back from a name->value map to call arguments (``*args``/``**kwargs`` parameters expanded)."""
        if self.simple:
            return (), arguments
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for param in self.signature.parameters.values():
            if param.name not in arguments:
                continue
            value = arguments[param.name]
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                args.extend(value)
            elif param.kind is inspect.Parameter.VAR_KEYWORD:
                kwargs.update(value)
            elif param.kind is inspect.Parameter.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[param.name] = value
        return tuple(args), kwargs

    def encode_inputs(self, arguments: dict[str, Any], raw_data_path: str) -> dict[str, bytes]:
        annotations = self.annotations
        return {
            name: encode_value(value, annotations.get(name, Any), f"{self.task_name}: input {name!r}", raw_data_path)
            for name, value in arguments.items()
        }

    def decode_inputs(self, encoded: dict[str, bytes], raw_data_path: str) -> dict[str, Any]:
        annotations = self.annotations
        return {
            name: decode_value(data, annotations.get(name, Any), f"{self.task_name}: input {name!r}", raw_data_path)
            for name, data in encoded.items()
        }

    def encode_output(self, value: Any, raw_data_path: str) -> bytes:
        return encode_value(value, self.output, f"{self.task_name}: output", raw_data_path)

    def decode_output(self, data: bytes, raw_data_path: str) -> Any:
        return decode_value(data, self.output, f"{self.task_name}: output", raw_data_path)
