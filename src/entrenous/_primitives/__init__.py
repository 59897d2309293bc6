"""Private primitives layer: thin, typed wrappers over pynacl (libsodium) and cryptography.

Nothing here is a primitive of our own: every operation is one call into libsodium or OpenSSL.
The wrappers fix sizes (checked on construction, "expected N bytes"), turn library exceptions into
entrenous errors, and refuse the edge cases the protocol must refuse (an all-zero X25519 output).

This package imports only :mod:`entrenous.errors`. Nothing outside ``entrenous`` may import it:
it is not part of the public API and may change without notice.
"""
