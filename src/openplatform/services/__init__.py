"""Use cases beyond the protocol (registering apps, installing them, directory data),
shared by the CLI and the web screens. Input is validated here, once."""
