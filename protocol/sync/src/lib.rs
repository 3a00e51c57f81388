//! sync-core (stub)
