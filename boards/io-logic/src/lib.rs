//! io-logic (stub)
