"""The ``dbs-plan`` command line: ``main`` (parser and exit codes), one module per command, shared options,
and the child-process runner the Slicer module uses. The top layer: may import every product subpackage,
never ``training``/``simulation``; nothing below imports it."""
