"""nbsim's own implementations, registered through the same hooks as third-party plugins."""
