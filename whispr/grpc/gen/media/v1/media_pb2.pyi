from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ValidateAttachmentRequest(_message.Message):
    __slots__ = ("attachment_id", "mime_type", "size", "name", "uploader_id")
    ATTACHMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UPLOADER_ID_FIELD_NUMBER: _ClassVar[int]
    attachment_id: str
    mime_type: str
    size: int
    name: str
    uploader_id: str
    def __init__(self, attachment_id: _Optional[str] = ..., mime_type: _Optional[str] = ..., size: _Optional[int] = ..., name: _Optional[str] = ..., uploader_id: _Optional[str] = ...) -> None: ...

class ValidateAttachmentResponse(_message.Message):
    __slots__ = ("valid", "reason")
    VALID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    reason: str
    def __init__(self, valid: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...
