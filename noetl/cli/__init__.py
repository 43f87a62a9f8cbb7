"""The `noetl` command line (thin: parse, call the library, print)."""

from noetl.cli.lazy_ssl import import_asyncio_without_ssl

import_asyncio_without_ssl()  # before any command module imports asyncio
