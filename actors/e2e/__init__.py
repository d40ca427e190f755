"""End-to-end encryption: the key directory, per-device envelopes, blind-index search.

The server never decrypts anything. Its jobs are to hand out keys honestly (each one-time
prekey once, signatures checked before anything is stored), to route one ciphertext to each
device and refuse a send that would silently leave one out, and to answer searches over
tokens it cannot read. ``docs/e2e.md`` describes the model and what the server can see.
"""
