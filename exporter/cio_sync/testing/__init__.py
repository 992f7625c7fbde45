"""Local stand-ins for the services cio-export talks to, for tests and demos. They listen on
loopback only; nothing here contacts the real services."""
