"""The pure engine: events in, commands out. No I/O, no clock, no random ids."""
