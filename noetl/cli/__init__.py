"""The `noetl` command line (thin: parse, call the library, print)."""
