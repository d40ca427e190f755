"""gRPC: the messaging API for sibling services (``proto/whispr/messaging/v1``).

- :mod:`whispr.grpc.status`: the one mapping of error reasons to status codes;
- :mod:`whispr.grpc.auth`: who is calling (bearer token per service, or mTLS);
- :mod:`whispr.grpc.convert`: domain records to protobuf messages and back;
- :mod:`whispr.grpc.service`: the ``MessagingService`` servicer;
- :mod:`whispr.grpc.server`: the server with health and reflection, as a node service.

Generated stubs live in :mod:`whispr.grpc.gen` (``make proto``).
"""
