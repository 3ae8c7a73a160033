"""Protobuf JSON of the API's messages, several times faster than google.protobuf.json_format, with the same
results.

``json_format`` walks descriptors field by field in Python for every message (a 1,000-item batch costs
~30 ms each way, as much as the rest of its request path). Here each message type gets an encoder and a
decoder, built once from its descriptor: the encoder reads ``ListFields()`` (set fields only, in C) and
the decoder builds ``cls(**fields)`` (one C call per message). Anything they do not handle — well-known
types other than Timestamp, Duration and FieldMask, ``null``, bytes, duplicate or conflicting keys,
values of an unexpected JSON type — goes to ``json_format``, which stays the reference: the results are
the same (tests/test_fast_json.py checks it on generated messages), and so are its errors.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

__all__ = ["message_from_json", "message_to_json"]

_INT64 = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_INT32 = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_SFIXED32,
    }
)
# Well-known types whose JSON is one string, read and written by the message's own methods.
_STRING_WKT = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"})
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


class _UseJsonFormatError(Exception):
    """The fast path does not handle this input: json_format decides."""


# -- encoding --------------------------------------------------------------------------------------------------

_encoders: dict[Any, Encoder] = {}  # by descriptor


def message_to_json(message: Message) -> bytes:
    """``message`` as protobuf JSON (lowerCamelCase names, defaults left out), on one line, UTF-8."""
    return json.dumps(_encoder(message.DESCRIPTOR)(message), ensure_ascii=False, separators=(",", ":")).encode()


def _encoder(descriptor: Any) -> Encoder:
    found = _encoders.get(descriptor)
    if found is None:
        found = _encoders[descriptor] = _build_encoder(descriptor)
    return found


def _build_encoder(descriptor: Descriptor) -> Encoder:
    if descriptor.full_name in _STRING_WKT:
        return lambda message: message.ToJsonString()
    if descriptor.full_name.startswith("google.protobuf.") or any(
        field.type == FieldDescriptor.TYPE_FLOAT for field in descriptor.fields
    ):
        return json_format.MessageToDict  # Any, Struct, wrappers, float32 rounding: json_format's forms
    fields: dict[FieldDescriptor, tuple[str, Encoder]] = {
        field: (field.json_name, _field_encoder(field)) for field in descriptor.fields
    }

    def encode(message: Message) -> dict[str, Any]:
        return {fields[field][0]: fields[field][1](value) for field, value in message.ListFields()}

    return encode


def _double(value: float) -> Any:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _value_encoder(field: FieldDescriptor) -> Encoder:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        sub = field.message_type

        def nested(value: Message) -> Any:
            return _encoder(sub)(value)  # looked up on use: a message type may contain itself

        return nested
    if kind == FieldDescriptor.TYPE_ENUM:
        enum_type = field.enum_type
        assert enum_type is not None
        names = {value.number: value.name for value in enum_type.values}
        return lambda value: names.get(value, value)
    if kind in _INT64:
        return str
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return _double
    if kind == FieldDescriptor.TYPE_BYTES:
        return lambda value: base64.b64encode(value).decode()
    return lambda value: value  # bool, string, 32-bit integers


def _map_key_encoder(field: FieldDescriptor) -> Encoder:
    if field.type == FieldDescriptor.TYPE_BOOL:
        return lambda key: "true" if key else "false"
    return str


def _field_encoder(field: FieldDescriptor) -> Encoder:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key = _map_key_encoder(field.message_type.fields_by_name["key"])
        value = _value_encoder(field.message_type.fields_by_name["value"])
        return lambda entries: {key(k): value(v) for k, v in entries.items()}
    encode = _value_encoder(field)
    if field.is_repeated:
        return lambda values: [encode(v) for v in values]
    return encode


# -- decoding --------------------------------------------------------------------------------------------------

_decoders: dict[Any, Decoder] = {}  # by descriptor


def message_from_json(data: bytes | bytearray | str, message_class: type[Message]) -> Message:
    """The message of protobuf JSON ``data`` (field names lowerCamelCase or as in the proto; unknown
    fields are ignored); json_format.ParseError (a ValueError) when it is not one."""
    try:
        value = json.loads(data, object_pairs_hook=_no_duplicate_keys)
        decoded: Message = _decoder(message_class.DESCRIPTOR)(value)
    except (_UseJsonFormatError, ValueError, TypeError, AttributeError, KeyError):
        message = message_class()
        json_format.Parse(data if isinstance(data, str) else bytes(data), message, ignore_unknown_fields=True)
        return message
    return decoded


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _UseJsonFormatError  # json_format refuses duplicate keys, with its message
    return found


def _decoder(descriptor: Any) -> Decoder:
    found = _decoders.get(descriptor)
    if found is None:
        found = _decoders[descriptor] = _build_decoder(descriptor)
    return found


def _build_decoder(descriptor: Descriptor) -> Decoder:
    cls = message_factory.GetMessageClass(descriptor)
    if descriptor.full_name in _STRING_WKT:

        def from_string(value: Any) -> Any:
            if type(value) is not str:
                raise _UseJsonFormatError
            message: Any = cls()
            message.FromJsonString(value)  # Timestamp, Duration, FieldMask
            return message

        return from_string
    if descriptor.full_name.startswith("google.protobuf."):

        def fall_back(value: Any) -> Message:
            raise _UseJsonFormatError

        return fall_back
    # JSON name and proto name -> (proto name, decoder, oneof name or None)
    by_key: dict[str, tuple[str, Decoder, str | None]] = {}
    for field in descriptor.fields:
        oneof = field.containing_oneof.name if field.containing_oneof is not None else None
        spec = (field.name, _field_decoder(field), oneof)
        by_key[field.json_name] = spec
        by_key[field.name] = spec
    has_oneofs = bool(descriptor.oneofs)

    def decode(value: Any) -> Message:
        if type(value) is not dict:
            raise _UseJsonFormatError
        fields: dict[str, Any] = {}
        oneofs: set[str] = set()
        for key, item in value.items():
            spec = by_key.get(key)
            if spec is None:
                continue  # an unknown field: ignored (json_format's ignore_unknown_fields)
            name, decode_field, oneof = spec
            if item is None or name in fields:
                raise _UseJsonFormatError  # null has meanings of its own; a field given twice is an error
            if has_oneofs and oneof is not None:
                if oneof in oneofs:
                    raise _UseJsonFormatError
                oneofs.add(oneof)
            fields[name] = decode_field(item)
        return cls(**fields)

    return decode


def _string(value: Any) -> str:
    if type(value) is not str:
        raise _UseJsonFormatError
    return value


def _boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise _UseJsonFormatError
    return value


def _integer(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is str and value.lstrip("-").isdigit() and value.isascii():
        return int(value)
    raise _UseJsonFormatError


def _double_in(value: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    if type(value) is str and value in _NON_FINITE:
        return _NON_FINITE[value]
    raise _UseJsonFormatError


def _unhandled(value: Any) -> Any:
    raise _UseJsonFormatError


_SCALAR_DECODERS: dict[int, Decoder] = {
    FieldDescriptor.TYPE_DOUBLE: _double_in,
    FieldDescriptor.TYPE_BOOL: _boolean,
    FieldDescriptor.TYPE_STRING: _string,
    **dict.fromkeys(_INT64 | _INT32, _integer),
}


def _value_decoder(field: FieldDescriptor) -> Decoder:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        sub = field.message_type

        def nested(value: Any) -> Any:
            return _decoder(sub)(value)  # looked up on use: a message type may contain itself

        return nested
    if kind == FieldDescriptor.TYPE_ENUM:
        enum_type = field.enum_type
        assert enum_type is not None
        numbers = {value.name: value.number for value in enum_type.values}

        def enum(value: Any) -> int:
            if type(value) is str and value in numbers:
                return numbers[value]
            if type(value) is int:
                return value  # proto3 enums are open
            raise _UseJsonFormatError  # an unknown name: json_format decides (it ignores the field)

        return enum
    return _SCALAR_DECODERS.get(kind, _unhandled)  # bytes, float32: json_format


def _field_decoder(field: FieldDescriptor) -> Decoder:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_field = field.message_type.fields_by_name["key"]
        if key_field.type == FieldDescriptor.TYPE_STRING:
            key: Decoder = _string
        elif key_field.type in _INT64 or key_field.type in _INT32:
            key = _integer
        else:
            key = _unhandled
        value = _value_decoder(field.message_type.fields_by_name["value"])

        def entries(found: Any) -> dict[Any, Any]:
            if type(found) is not dict:
                raise _UseJsonFormatError
            return {key(k): value(v) for k, v in found.items()}

        return entries
    decode = _value_decoder(field)
    if field.is_repeated:

        def repeated(found: Any) -> list[Any]:
            if type(found) is not list:
                raise _UseJsonFormatError
            return [decode(v) for v in found]

        return repeated
    return decode
