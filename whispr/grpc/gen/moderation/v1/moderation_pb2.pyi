from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_ALLOW: _ClassVar[Verdict]
    VERDICT_BLOCK: _ClassVar[Verdict]
VERDICT_UNSPECIFIED: Verdict
VERDICT_ALLOW: Verdict
VERDICT_BLOCK: Verdict

class CheckContentRequest(_message.Message):
    __slots__ = ("user_id", "conversation_id", "content", "kind")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    conversation_id: str
    content: str
    kind: str
    def __init__(self, user_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., content: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class CheckContentResponse(_message.Message):
    __slots__ = ("verdict", "reason")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    reason: str
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class ReportActivityRequest(_message.Message):
    __slots__ = ("user_id", "pattern", "reason", "device_id", "node", "at", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    pattern: str
    reason: str
    device_id: str
    node: str
    at: float
    details: _containers.ScalarMap[str, str]
    def __init__(self, user_id: _Optional[str] = ..., pattern: _Optional[str] = ..., reason: _Optional[str] = ..., device_id: _Optional[str] = ..., node: _Optional[str] = ..., at: _Optional[float] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ReportActivityResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
