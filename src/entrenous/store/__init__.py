"""The encrypted store: everything a client must remember, at rest under SQLCipher 4.

The store sits behind the small :class:`~entrenous.store.base.Store` protocol, so that a
server-side deployment can add another backend; :class:`~entrenous.store.sqlcipher.SqlCipherStore`
is the embedded default. Nothing above this package writes SQL.

Layering: this package imports :mod:`entrenous.errors`, :mod:`entrenous._primitives` and
:mod:`entrenous.protocol`; it never imports the client API or the CLI.
"""

from entrenous.store.base import ConversationRecord, MessageRecord, Store
from entrenous.store.sqlcipher import SqlCipherStore

__all__ = ["ConversationRecord", "MessageRecord", "SqlCipherStore", "Store"]
