//! Weekly time profiles: the shared implementation in `sync_core::time_profile` (central's
//! retrieval rules use the same windows).

pub use sync_core::time_profile::{TimeProfile, Window, WindowError};
