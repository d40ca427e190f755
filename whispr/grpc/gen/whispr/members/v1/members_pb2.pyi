from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as _messaging_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Notifications(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATIONS_UNSPECIFIED: _ClassVar[Notifications]
    NOTIFICATIONS_ALL: _ClassVar[Notifications]
    NOTIFICATIONS_MENTIONS: _ClassVar[Notifications]
    NOTIFICATIONS_NONE: _ClassVar[Notifications]
NOTIFICATIONS_UNSPECIFIED: Notifications
NOTIFICATIONS_ALL: Notifications
NOTIFICATIONS_MENTIONS: Notifications
NOTIFICATIONS_NONE: Notifications

class MemberSettings(_message.Message):
    __slots__ = ("conversation_id", "user_id", "muted_until", "muted_forever", "notifications", "archived", "pinned", "pin_order")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MUTED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    MUTED_FOREVER_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    PIN_ORDER_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    muted_until: float
    muted_forever: bool
    notifications: Notifications
    archived: bool
    pinned: bool
    pin_order: int
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., muted_until: _Optional[float] = ..., muted_forever: _Optional[bool] = ..., notifications: _Optional[_Union[Notifications, str]] = ..., archived: _Optional[bool] = ..., pinned: _Optional[bool] = ..., pin_order: _Optional[int] = ...) -> None: ...

class UpdateMemberSettingsRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id", "muted_until", "muted_forever", "unmute", "notifications", "archived", "pin_order", "unpin")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MUTED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    MUTED_FOREVER_FIELD_NUMBER: _ClassVar[int]
    UNMUTE_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    PIN_ORDER_FIELD_NUMBER: _ClassVar[int]
    UNPIN_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    muted_until: float
    muted_forever: bool
    unmute: bool
    notifications: Notifications
    archived: bool
    pin_order: int
    unpin: bool
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., muted_until: _Optional[float] = ..., muted_forever: _Optional[bool] = ..., unmute: _Optional[bool] = ..., notifications: _Optional[_Union[Notifications, str]] = ..., archived: _Optional[bool] = ..., pin_order: _Optional[int] = ..., unpin: _Optional[bool] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("user_id", "read_seq", "has_delivered", "delivered_seq")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    HAS_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_SEQ_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    read_seq: int
    has_delivered: bool
    delivered_seq: int
    def __init__(self, user_id: _Optional[str] = ..., read_seq: _Optional[int] = ..., has_delivered: _Optional[bool] = ..., delivered_seq: _Optional[int] = ...) -> None: ...

class GetMemberStateRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class GetMemberStateResponse(_message.Message):
    __slots__ = ("receipts", "pins", "settings")
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    PINS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[Receipt]
    pins: _containers.RepeatedCompositeFieldContainer[_messaging_pb2.Message]
    settings: MemberSettings
    def __init__(self, receipts: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ..., pins: _Optional[_Iterable[_Union[_messaging_pb2.Message, _Mapping]]] = ..., settings: _Optional[_Union[MemberSettings, _Mapping]] = ...) -> None: ...

class GetReceiptsRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id", "of_user_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    OF_USER_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    of_user_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., of_user_id: _Optional[str] = ...) -> None: ...

class GetReceiptsResponse(_message.Message):
    __slots__ = ("receipts",)
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[Receipt]
    def __init__(self, receipts: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ...) -> None: ...

class ListPinsRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class ListPinsResponse(_message.Message):
    __slots__ = ("pins",)
    PINS_FIELD_NUMBER: _ClassVar[int]
    pins: _containers.RepeatedCompositeFieldContainer[_messaging_pb2.Message]
    def __init__(self, pins: _Optional[_Iterable[_Union[_messaging_pb2.Message, _Mapping]]] = ...) -> None: ...

class ListThreadRequest(_message.Message):
    __slots__ = ("conversation_id", "user_id", "seq", "after_seq", "limit")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    seq: int
    after_seq: int
    limit: int
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., seq: _Optional[int] = ..., after_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListThreadResponse(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_messaging_pb2.Message]
    def __init__(self, messages: _Optional[_Iterable[_Union[_messaging_pb2.Message, _Mapping]]] = ...) -> None: ...

class GetUnreadStateRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class GetUnreadStateResponse(_message.Message):
    __slots__ = ("unread", "mentions")
    class UnreadEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class MentionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    UNREAD_FIELD_NUMBER: _ClassVar[int]
    MENTIONS_FIELD_NUMBER: _ClassVar[int]
    unread: _containers.ScalarMap[str, int]
    mentions: _containers.ScalarMap[str, int]
    def __init__(self, unread: _Optional[_Mapping[str, int]] = ..., mentions: _Optional[_Mapping[str, int]] = ...) -> None: ...
