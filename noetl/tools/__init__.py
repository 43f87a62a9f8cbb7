"""Tools: what a step runs. Each tool is an async callable registered by ``kind``."""
