"""The embedded sandbox cloud (its CLI side; the plugins live in sandbox/)."""
