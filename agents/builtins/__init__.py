"""The built-in agents: researcher, writer, editor (content) and booker (travel).

Run one with `natsfleet agent run researcher` (or writer, editor, booker).
Each module imports only what its agent needs; this package imports nothing
eagerly, so `natsfleet agent run booker` does not load the research index.
"""
