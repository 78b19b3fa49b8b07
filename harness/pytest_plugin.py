"""pytest plugin: options, markers and fixtures that wire the harness into pytest."""
