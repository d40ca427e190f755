from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as _messaging_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
    added: _containers.RepeatedCompositeFieldContainer[_messaging_pb2.Member]
    def __init__(self, added: _Optional[_Iterable[_Union[_messaging_pb2.Member, _Mapping]]] = ...) -> None: ...

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

class LeaveRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class LeaveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetRoleRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id", "role", "acting_user_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ACTING_USER_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    role: str
    acting_user_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., role: _Optional[str] = ..., acting_user_id: _Optional[str] = ...) -> None: ...

class SetRoleResponse(_message.Message):
    __slots__ = ("member",)
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    member: _messaging_pb2.Member
    def __init__(self, member: _Optional[_Union[_messaging_pb2.Member, _Mapping]] = ...) -> None: ...

class UpdateConversationRequest(_message.Message):
    __slots__ = ("conversation_id", "title", "avatar", "description", "settings", "clear", "acting_user_id")
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    CLEAR_FIELD_NUMBER: _ClassVar[int]
    ACTING_USER_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    title: str
    avatar: str
    description: str
    settings: _containers.ScalarMap[str, str]
    clear: _containers.RepeatedScalarFieldContainer[str]
    acting_user_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., title: _Optional[str] = ..., avatar: _Optional[str] = ..., description: _Optional[str] = ..., settings: _Optional[_Mapping[str, str]] = ..., clear: _Optional[_Iterable[str]] = ..., acting_user_id: _Optional[str] = ...) -> None: ...

class UpdateConversationResponse(_message.Message):
    __slots__ = ("conversation", "description")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    conversation: _messaging_pb2.Conversation
    description: str
    def __init__(self, conversation: _Optional[_Union[_messaging_pb2.Conversation, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class TransferOwnershipRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id", "acting_user_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTING_USER_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    acting_user_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., acting_user_id: _Optional[str] = ...) -> None: ...

class TransferOwnershipResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[_messaging_pb2.Member]
    def __init__(self, members: _Optional[_Iterable[_Union[_messaging_pb2.Member, _Mapping]]] = ...) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ("conversation_id", "after", "limit", "acting_user_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ACTING_USER_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    after: str
    limit: int
    acting_user_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ..., acting_user_id: _Optional[str] = ...) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("members", "next")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[_messaging_pb2.Member]
    next: str
    def __init__(self, members: _Optional[_Iterable[_Union[_messaging_pb2.Member, _Mapping]]] = ..., next: _Optional[str] = ...) -> None: ...
