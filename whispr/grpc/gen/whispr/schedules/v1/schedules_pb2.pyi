from google.protobuf import struct_pb2 as _struct_pb2
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as _messaging_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScheduledDraft(_message.Message):
    __slots__ = ("client_id", "kind", "content", "attachments", "reply_to", "metadata", "ttl")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    kind: str
    content: str
    attachments: _containers.RepeatedCompositeFieldContainer[_messaging_pb2.Attachment]
    reply_to: int
    metadata: _struct_pb2.Struct
    ttl: int
    def __init__(self, client_id: _Optional[str] = ..., kind: _Optional[str] = ..., content: _Optional[str] = ..., attachments: _Optional[_Iterable[_Union[_messaging_pb2.Attachment, _Mapping]]] = ..., reply_to: _Optional[int] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., ttl: _Optional[int] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("id", "conversation_id", "sender_id", "draft", "send_at", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    SEND_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    conversation_id: str
    sender_id: str
    draft: ScheduledDraft
    send_at: float
    created_at: float
    def __init__(self, id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., sender_id: _Optional[str] = ..., draft: _Optional[_Union[ScheduledDraft, _Mapping]] = ..., send_at: _Optional[float] = ..., created_at: _Optional[float] = ...) -> None: ...

class ScheduleMessageRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id", "draft", "send_at")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    SEND_AT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    draft: ScheduledDraft
    send_at: float
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., draft: _Optional[_Union[ScheduledDraft, _Mapping]] = ..., send_at: _Optional[float] = ...) -> None: ...

class ScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class ListScheduledRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class ListScheduledResponse(_message.Message):
    __slots__ = ("scheduled",)
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    scheduled: _containers.RepeatedCompositeFieldContainer[Schedule]
    def __init__(self, scheduled: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ...) -> None: ...

class UpdateScheduledRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id", "schedule_id", "send_at", "content")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    SEND_AT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    schedule_id: str
    send_at: float
    content: str
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., schedule_id: _Optional[str] = ..., send_at: _Optional[float] = ..., content: _Optional[str] = ...) -> None: ...

class CancelScheduledRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id", "schedule_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    schedule_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., schedule_id: _Optional[str] = ...) -> None: ...

class CancelScheduledResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetDisappearingRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id", "seconds")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    seconds: int
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., seconds: _Optional[int] = ...) -> None: ...

class SetDisappearingResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: _messaging_pb2.Conversation
    def __init__(self, conversation: _Optional[_Union[_messaging_pb2.Conversation, _Mapping]] = ...) -> None: ...
