from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnvelopeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENVELOPE_TYPE_UNSPECIFIED: _ClassVar[EnvelopeType]
    ENVELOPE_TYPE_PREKEY: _ClassVar[EnvelopeType]
    ENVELOPE_TYPE_MESSAGE: _ClassVar[EnvelopeType]
ENVELOPE_TYPE_UNSPECIFIED: EnvelopeType
ENVELOPE_TYPE_PREKEY: EnvelopeType
ENVELOPE_TYPE_MESSAGE: EnvelopeType

class SignedPreKey(_message.Message):
    __slots__ = ("key_id", "public_key", "signature")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    key_id: int
    public_key: bytes
    signature: bytes
    def __init__(self, key_id: _Optional[int] = ..., public_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class OneTimePreKey(_message.Message):
    __slots__ = ("key_id", "public_key")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    key_id: int
    public_key: bytes
    def __init__(self, key_id: _Optional[int] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("user_id", "device_id", "registration_id", "name", "created_at", "identity_key", "one_time_prekeys", "signed_prekey_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    ONE_TIME_PREKEYS_FIELD_NUMBER: _ClassVar[int]
    SIGNED_PREKEY_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    device_id: str
    registration_id: int
    name: str
    created_at: float
    identity_key: bytes
    one_time_prekeys: int
    signed_prekey_id: int
    def __init__(self, user_id: _Optional[str] = ..., device_id: _Optional[str] = ..., registration_id: _Optional[int] = ..., name: _Optional[str] = ..., created_at: _Optional[float] = ..., identity_key: _Optional[bytes] = ..., one_time_prekeys: _Optional[int] = ..., signed_prekey_id: _Optional[int] = ...) -> None: ...

class RegisterDeviceRequest(_message.Message):
    __slots__ = ("user_id", "device_id", "registration_id", "name")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    device_id: str
    registration_id: int
    name: str
    def __init__(self, user_id: _Optional[str] = ..., device_id: _Optional[str] = ..., registration_id: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ...) -> None: ...

class RemoveDeviceRequest(_message.Message):
    __slots__ = ("user_id", "device_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    device_id: str
    def __init__(self, user_id: _Optional[str] = ..., device_id: _Optional[str] = ...) -> None: ...

class RemoveDeviceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UploadKeysRequest(_message.Message):
    __slots__ = ("user_id", "device_id", "identity_key", "signed_prekey", "one_time_prekeys", "kem_prekey")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNED_PREKEY_FIELD_NUMBER: _ClassVar[int]
    ONE_TIME_PREKEYS_FIELD_NUMBER: _ClassVar[int]
    KEM_PREKEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    device_id: str
    identity_key: bytes
    signed_prekey: SignedPreKey
    one_time_prekeys: _containers.RepeatedCompositeFieldContainer[OneTimePreKey]
    kem_prekey: SignedPreKey
    def __init__(self, user_id: _Optional[str] = ..., device_id: _Optional[str] = ..., identity_key: _Optional[bytes] = ..., signed_prekey: _Optional[_Union[SignedPreKey, _Mapping]] = ..., one_time_prekeys: _Optional[_Iterable[_Union[OneTimePreKey, _Mapping]]] = ..., kem_prekey: _Optional[_Union[SignedPreKey, _Mapping]] = ...) -> None: ...

class UploadKeysResponse(_message.Message):
    __slots__ = ("one_time_prekeys",)
    ONE_TIME_PREKEYS_FIELD_NUMBER: _ClassVar[int]
    one_time_prekeys: int
    def __init__(self, one_time_prekeys: _Optional[int] = ...) -> None: ...

class Bundle(_message.Message):
    __slots__ = ("user_id", "device_id", "registration_id", "identity_key", "signed_prekey", "one_time_prekey", "kem_prekey")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNED_PREKEY_FIELD_NUMBER: _ClassVar[int]
    ONE_TIME_PREKEY_FIELD_NUMBER: _ClassVar[int]
    KEM_PREKEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    device_id: str
    registration_id: int
    identity_key: bytes
    signed_prekey: SignedPreKey
    one_time_prekey: OneTimePreKey
    kem_prekey: SignedPreKey
    def __init__(self, user_id: _Optional[str] = ..., device_id: _Optional[str] = ..., registration_id: _Optional[int] = ..., identity_key: _Optional[bytes] = ..., signed_prekey: _Optional[_Union[SignedPreKey, _Mapping]] = ..., one_time_prekey: _Optional[_Union[OneTimePreKey, _Mapping]] = ..., kem_prekey: _Optional[_Union[SignedPreKey, _Mapping]] = ...) -> None: ...

class GetBundlesRequest(_message.Message):
    __slots__ = ("user_id", "device_ids")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetBundlesResponse(_message.Message):
    __slots__ = ("bundles",)
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    bundles: _containers.RepeatedCompositeFieldContainer[Bundle]
    def __init__(self, bundles: _Optional[_Iterable[_Union[Bundle, _Mapping]]] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("user_id", "device_id", "registration_id", "type", "ciphertext")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    device_id: str
    registration_id: int
    type: EnvelopeType
    ciphertext: bytes
    def __init__(self, user_id: _Optional[str] = ..., device_id: _Optional[str] = ..., registration_id: _Optional[int] = ..., type: _Optional[_Union[EnvelopeType, str]] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class SendEndToEndMessageRequest(_message.Message):
    __slots__ = ("conversation_id", "client_id", "user_id", "device_id", "envelopes", "blind_tokens", "metadata")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ENVELOPES_FIELD_NUMBER: _ClassVar[int]
    BLIND_TOKENS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    client_id: str
    user_id: str
    device_id: str
    envelopes: _containers.RepeatedCompositeFieldContainer[Envelope]
    blind_tokens: _containers.RepeatedScalarFieldContainer[bytes]
    metadata: _struct_pb2.Struct
    def __init__(self, conversation_id: _Optional[str] = ..., client_id: _Optional[str] = ..., user_id: _Optional[str] = ..., device_id: _Optional[str] = ..., envelopes: _Optional[_Iterable[_Union[Envelope, _Mapping]]] = ..., blind_tokens: _Optional[_Iterable[bytes]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SendEndToEndMessageResponse(_message.Message):
    __slots__ = ("id", "seq", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    seq: int
    created_at: float
    def __init__(self, id: _Optional[str] = ..., seq: _Optional[int] = ..., created_at: _Optional[float] = ...) -> None: ...
