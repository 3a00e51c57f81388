//! Wire types of the sync protocol (catalog exchange, retrieval, acknowledgements).
