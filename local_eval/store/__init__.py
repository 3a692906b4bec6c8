"""Everything the kit keeps on disk between runs, in one room.

- ``files``: where the cache lives, option keys, writes that never leave half a file, and the
  reuse rule (a stored result counts while it carries the stamp a fresh run would).
- ``entries``: a cached model verified against its hash, locked while one process builds it.
- ``checkpoints``: a long training's epoch checkpoint, so a killed one goes on.
- ``runs``: a method's finished runs, so a killed scoring goes on.

Nothing here knows what a model, a method or a preset is; the callers say what the key holds.
"""
