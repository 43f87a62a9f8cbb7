"""The `noetl` command line (thin: parse, call the library, print)."""

from noetl.cli.lazy_ssl import import_asyncio_without_ssl
from noetl.cli.startup import long_lived_imports

with long_lived_imports():
    import_asyncio_without_ssl()  # before any command module imports asyncio
