"""Everything the kit keeps on disk between runs, in one room.

- ``files``: where the cache lives, option keys, and writes that never leave half a file.
- ``entries``: a cached model verified against its hash, locked while one process builds it.
- ``checkpoints``: a long training's epoch checkpoint, so a killed one goes on.
- ``runs``: a method's finished runs, so a killed scoring goes on.
- ``reuse``: when a stored result still counts.

Nothing here knows what a model, a method or a preset is; the callers say what the key holds.
"""
