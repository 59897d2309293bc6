"""The Double Ratchet (Signal's specification, revision 4, as the reference).

One small file per key of the schedule: :mod:`.root_key`, :mod:`.chain_key` (with the message
keys it yields), :mod:`.receiver_chain` (a receiving chain and its skipped keys) and
:mod:`.double_ratchet` (the state machine joining them).
"""
