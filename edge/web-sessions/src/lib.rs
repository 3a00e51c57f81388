//! Login sessions and the login rate limit, as central's and the unit's web pages both keep
//! them: random tokens held in memory (a restart logs everyone out) with an idle and an
//! absolute timeout, and counts of failed logins over a sliding window per key (a client
//! address, a user name, or the whole unit). Pure logic over explicit instants, so it is tested
//! without waiting; each page chooses its own limits and keys.

mod failures;
mod table;

pub use failures::FailureLimit;
pub use table::{Session, SessionLimits, SessionTable};

/// A new random session token (256 bits, hex).
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_random_and_long() {
        let (x, y) = (super::new_token().unwrap(), super::new_token().unwrap());
        assert_eq!(x.len(), 64);
        assert!(x.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(x, y);
    }
}
