from google.protobuf import struct_pb2 as _struct_pb2
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as _messaging_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TopicKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOPIC_KIND_UNSPECIFIED: _ClassVar[TopicKind]
    TOPIC_KIND_NOTIFICATION: _ClassVar[TopicKind]
    TOPIC_KIND_USER: _ClassVar[TopicKind]

class RevocationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOCATION_KIND_UNSPECIFIED: _ClassVar[RevocationKind]
    REVOCATION_KIND_USER: _ClassVar[RevocationKind]
    REVOCATION_KIND_DEVICE: _ClassVar[RevocationKind]
    REVOCATION_KIND_JTI: _ClassVar[RevocationKind]

class PresenceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRESENCE_STATUS_UNSPECIFIED: _ClassVar[PresenceStatus]
    PRESENCE_STATUS_ONLINE: _ClassVar[PresenceStatus]
    PRESENCE_STATUS_AWAY: _ClassVar[PresenceStatus]
    PRESENCE_STATUS_OFFLINE: _ClassVar[PresenceStatus]
TOPIC_KIND_UNSPECIFIED: TopicKind
TOPIC_KIND_NOTIFICATION: TopicKind
TOPIC_KIND_USER: TopicKind
REVOCATION_KIND_UNSPECIFIED: RevocationKind
REVOCATION_KIND_USER: RevocationKind
REVOCATION_KIND_DEVICE: RevocationKind
REVOCATION_KIND_JTI: RevocationKind
PRESENCE_STATUS_UNSPECIFIED: PresenceStatus
PRESENCE_STATUS_ONLINE: PresenceStatus
PRESENCE_STATUS_AWAY: PresenceStatus
PRESENCE_STATUS_OFFLINE: PresenceStatus

class PublishRequest(_message.Message):
    __slots__ = ("topic", "user_id", "event", "payload")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    topic: TopicKind
    user_id: str
    event: str
    payload: _struct_pb2.Struct
    def __init__(self, topic: _Optional[_Union[TopicKind, str]] = ..., user_id: _Optional[str] = ..., event: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("topic",)
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: str
    def __init__(self, topic: _Optional[str] = ...) -> None: ...

class DisconnectRequest(_message.Message):
    __slots__ = ("user_id", "device_id", "reason")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    device_id: str
    reason: str
    def __init__(self, user_id: _Optional[str] = ..., device_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DisconnectResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevokeTokensRequest(_message.Message):
    __slots__ = ("kind", "user_id", "device_id", "jti", "expires_at", "reason")
    KIND_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    JTI_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    kind: RevocationKind
    user_id: str
    device_id: str
    jti: str
    expires_at: float
    reason: str
    def __init__(self, kind: _Optional[_Union[RevocationKind, str]] = ..., user_id: _Optional[str] = ..., device_id: _Optional[str] = ..., jti: _Optional[str] = ..., expires_at: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeTokensResponse(_message.Message):
    __slots__ = ("revocation_id", "issued_before")
    REVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    revocation_id: str
    issued_before: float
    def __init__(self, revocation_id: _Optional[str] = ..., issued_before: _Optional[float] = ...) -> None: ...

class QueryPresenceRequest(_message.Message):
    __slots__ = ("user_ids",)
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class UserPresence(_message.Message):
    __slots__ = ("user_id", "status", "last_seen", "last_seen_hidden")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    status: PresenceStatus
    last_seen: float
    last_seen_hidden: bool
    def __init__(self, user_id: _Optional[str] = ..., status: _Optional[_Union[PresenceStatus, str]] = ..., last_seen: _Optional[float] = ..., last_seen_hidden: _Optional[bool] = ...) -> None: ...

class QueryPresenceResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserPresence]
    def __init__(self, users: _Optional[_Iterable[_Union[UserPresence, _Mapping]]] = ...) -> None: ...

class ListUserConversationsRequest(_message.Message):
    __slots__ = ("user_id", "limit", "before", "before_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    BEFORE_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    limit: int
    before: float
    before_id: str
    def __init__(self, user_id: _Optional[str] = ..., limit: _Optional[int] = ..., before: _Optional[float] = ..., before_id: _Optional[str] = ...) -> None: ...

class UserConversation(_message.Message):
    __slots__ = ("conversation", "role", "unread_count", "last_activity")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    UNREAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    conversation: _messaging_pb2.Conversation
    role: str
    unread_count: int
    last_activity: float
    def __init__(self, conversation: _Optional[_Union[_messaging_pb2.Conversation, _Mapping]] = ..., role: _Optional[str] = ..., unread_count: _Optional[int] = ..., last_activity: _Optional[float] = ...) -> None: ...

class ListUserConversationsResponse(_message.Message):
    __slots__ = ("conversations",)
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    conversations: _containers.RepeatedCompositeFieldContainer[UserConversation]
    def __init__(self, conversations: _Optional[_Iterable[_Union[UserConversation, _Mapping]]] = ...) -> None: ...
