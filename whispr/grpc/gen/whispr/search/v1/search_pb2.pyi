from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as _messaging_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KIND_UNSPECIFIED: _ClassVar[Kind]
    KIND_TEXT: _ClassVar[Kind]
    KIND_MEDIA: _ClassVar[Kind]
    KIND_SYSTEM: _ClassVar[Kind]
KIND_UNSPECIFIED: Kind
KIND_TEXT: Kind
KIND_MEDIA: Kind
KIND_SYSTEM: Kind

class SearchRequest(_message.Message):
    __slots__ = ("user_id", "query", "conversation_id", "sender_id", "kind", "has_attachment", "since", "until", "limit", "cursor")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HAS_ATTACHMENT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    query: str
    conversation_id: str
    sender_id: str
    kind: Kind
    has_attachment: bool
    since: float
    until: float
    limit: int
    cursor: str
    def __init__(self, user_id: _Optional[str] = ..., query: _Optional[str] = ..., conversation_id: _Optional[str] = ..., sender_id: _Optional[str] = ..., kind: _Optional[_Union[Kind, str]] = ..., has_attachment: _Optional[bool] = ..., since: _Optional[float] = ..., until: _Optional[float] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class Highlight(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("message", "rank", "snippet", "highlights")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    HIGHLIGHTS_FIELD_NUMBER: _ClassVar[int]
    message: _messaging_pb2.Message
    rank: float
    snippet: str
    highlights: _containers.RepeatedCompositeFieldContainer[Highlight]
    def __init__(self, message: _Optional[_Union[_messaging_pb2.Message, _Mapping]] = ..., rank: _Optional[float] = ..., snippet: _Optional[str] = ..., highlights: _Optional[_Iterable[_Union[Highlight, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "cursor")
    HITS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    cursor: str
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., cursor: _Optional[str] = ...) -> None: ...

class ExportHistoryRequest(_message.Message):
    __slots__ = ("user_id", "conversation_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    conversation_id: str
    def __init__(self, user_id: _Optional[str] = ..., conversation_id: _Optional[str] = ...) -> None: ...

class ExportLine(_message.Message):
    __slots__ = ("json", "exported", "total")
    JSON_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    json: str
    exported: int
    total: int
    def __init__(self, json: _Optional[str] = ..., exported: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...
