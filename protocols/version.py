"""Protocol version and the header names every natsfleet message may carry."""

from typing import Final

#: Wire protocol version. New *fields* keep the version (additive evolution);
#: new message *types* or changed meanings bump it.
VERSION: Final = 1

#: Header carrying the sender's protocol version.
VERSION_HEADER: Final = "Natsfleet-Version"
#: Header naming an object in BLOBS that holds the real payload.
BLOB_HEADER: Final = "Natsfleet-Blob"
#: JetStream's de-duplication header.
MSG_ID_HEADER: Final = "Nats-Msg-Id"
#: W3C trace context headers.
TRACEPARENT_HEADER: Final = "traceparent"
TRACESTATE_HEADER: Final = "tracestate"
