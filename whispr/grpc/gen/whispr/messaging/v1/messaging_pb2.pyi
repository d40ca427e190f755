from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConversationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONVERSATION_KIND_UNSPECIFIED: _ClassVar[ConversationKind]
    CONVERSATION_KIND_DIRECT: _ClassVar[ConversationKind]
    CONVERSATION_KIND_GROUP: _ClassVar[ConversationKind]
CONVERSATION_KIND_UNSPECIFIED: ConversationKind
CONVERSATION_KIND_DIRECT: ConversationKind
CONVERSATION_KIND_GROUP: ConversationKind

class Conversation(_message.Message):
    __slots__ = ("id", "kind", "title", "avatar", "created_by", "created_at", "last_seq", "settings")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: ConversationKind
    title: str
    avatar: str
    created_by: str
    created_at: float
    last_seq: int
    settings: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[ConversationKind, str]] = ..., title: _Optional[str] = ..., avatar: _Optional[str] = ..., created_by: _Optional[str] = ..., created_at: _Optional[float] = ..., last_seq: _Optional[int] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("user_id", "role", "joined_at", "read_seq")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    JOINED_AT_FIELD_NUMBER: _ClassVar[int]
    READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    role: str
    joined_at: float
    read_seq: int
    def __init__(self, user_id: _Optional[str] = ..., role: _Optional[str] = ..., joined_at: _Optional[float] = ..., read_seq: _Optional[int] = ...) -> None: ...

class Attachment(_message.Message):
    __slots__ = ("id", "mime_type", "size", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    mime_type: str
    size: int
    name: str
    def __init__(self, id: _Optional[str] = ..., mime_type: _Optional[str] = ..., size: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("id", "conversation_id", "seq", "client_id", "sender_id", "kind", "content", "attachments", "reply_to", "created_at", "edited_at", "deleted", "metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EDITED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    conversation_id: str
    seq: int
    client_id: str
    sender_id: str
    kind: str
    content: str
    attachments: _containers.RepeatedCompositeFieldContainer[Attachment]
    reply_to: int
    created_at: float
    edited_at: float
    deleted: bool
    metadata: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., seq: _Optional[int] = ..., client_id: _Optional[str] = ..., sender_id: _Optional[str] = ..., kind: _Optional[str] = ..., content: _Optional[str] = ..., attachments: _Optional[_Iterable[_Union[Attachment, _Mapping]]] = ..., reply_to: _Optional[int] = ..., created_at: _Optional[float] = ..., edited_at: _Optional[float] = ..., deleted: _Optional[bool] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CreateConversationRequest(_message.Message):
    __slots__ = ("kind", "creator_id", "title", "member_ids")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREATOR_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_IDS_FIELD_NUMBER: _ClassVar[int]
    kind: ConversationKind
    creator_id: str
    title: str
    member_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[ConversationKind, str]] = ..., creator_id: _Optional[str] = ..., title: _Optional[str] = ..., member_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateConversationResponse(_message.Message):
    __slots__ = ("conversation", "members")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class GetConversationRequest(_message.Message):
    __slots__ = ("conversation_id",)
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    def __init__(self, conversation_id: _Optional[str] = ...) -> None: ...

class GetConversationResponse(_message.Message):
    __slots__ = ("conversation", "members")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class AddMembersRequest(_message.Message):
    __slots__ = ("conversation_id", "user_ids", "acting_user_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    ACTING_USER_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    acting_user_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., user_ids: _Optional[_Iterable[str]] = ..., acting_user_id: _Optional[str] = ...) -> None: ...

class AddMembersResponse(_message.Message):
    __slots__ = ("added",)
    ADDED_FIELD_NUMBER: _ClassVar[int]
    added: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, added: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class RemoveMemberRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id", "acting_user_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTING_USER_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    acting_user_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., acting_user_id: _Optional[str] = ...) -> None: ...

class RemoveMemberResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    def __init__(self, removed: _Optional[bool] = ...) -> None: ...

class SendSystemMessageRequest(_message.Message):
    __slots__ = ("conversation_id", "client_id", "event", "details")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    client_id: str
    event: str
    details: _struct_pb2.Struct
    def __init__(self, conversation_id: _Optional[str] = ..., client_id: _Optional[str] = ..., event: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SendServiceMessageRequest(_message.Message):
    __slots__ = ("conversation_id", "client_id", "content", "metadata")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    client_id: str
    content: str
    metadata: _struct_pb2.Struct
    def __init__(self, conversation_id: _Optional[str] = ..., client_id: _Optional[str] = ..., content: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SendMessageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: Message
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class ListMessagesRequest(_message.Message):
    __slots__ = ("conversation_id", "before_seq", "after_seq", "limit", "sender_id", "kind", "since", "until")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    BEFORE_SEQ_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    before_seq: int
    after_seq: int
    limit: int
    sender_id: str
    kind: str
    since: float
    until: float
    def __init__(self, conversation_id: _Optional[str] = ..., before_seq: _Optional[int] = ..., after_seq: _Optional[int] = ..., limit: _Optional[int] = ..., sender_id: _Optional[str] = ..., kind: _Optional[str] = ..., since: _Optional[float] = ..., until: _Optional[float] = ...) -> None: ...

class ListMessagesResponse(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ...) -> None: ...

class GetUnreadCountsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class GetUnreadCountsResponse(_message.Message):
    __slots__ = ("unread",)
    class UnreadEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    UNREAD_FIELD_NUMBER: _ClassVar[int]
    unread: _containers.ScalarMap[str, int]
    def __init__(self, unread: _Optional[_Mapping[str, int]] = ...) -> None: ...

class FollowConversationRequest(_message.Message):
    __slots__ = ("conversation_id", "after_seq")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    after_seq: int
    def __init__(self, conversation_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class ConversationEvent(_message.Message):
    __slots__ = ("conversation_id", "event", "message", "payload")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    event: str
    message: Message
    payload: _struct_pb2.Struct
    def __init__(self, conversation_id: _Optional[str] = ..., event: _Optional[str] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
