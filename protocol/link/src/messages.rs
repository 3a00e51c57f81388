//! Framed postcard messages on QUIC streams (see [`protocol::framing`]).

use protocol::framing::{self, PREFIX_LEN};
use serde::{Serialize, de::DeserializeOwned};

use crate::LinkError;

/// Writes one message.
pub async fn write<T: Serialize>(send: &mut quinn::SendStream, msg: &T) -> Result<(), LinkError> {
    let bytes = framing::encode(msg)?;
    send.write_all(&bytes).await?;
    Ok(())
}

/// One message read by [`read_tolerant`].
#[derive(Debug)]
pub enum Tolerant<T> {
    /// A message this build understands.
    Message(T),
    /// A well-framed message this build cannot decode (most likely a variant added by a newer
    /// peer); the stream stays usable.
    Unknown(String),
}

/// Reads one message, skipping over (and reporting) one this build cannot decode instead of
/// failing: the frame's length is known, so the stream stays in step. `Ok(None)` when the peer
/// finished the stream between messages.
pub async fn read_tolerant<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
) -> Result<Option<Tolerant<T>>, LinkError> {
    let Some(body) = read_body(recv).await? else {
        return Ok(None);
    };
    Ok(Some(match framing::decode(&body) {
        Ok(msg) => Tolerant::Message(msg),
        Err(e) => Tolerant::Unknown(e.to_string()),
    }))
}

/// Reads one message; `Ok(None)` when the peer finished the stream between messages.
pub async fn read<T: DeserializeOwned>(recv: &mut quinn::RecvStream) -> Result<Option<T>, LinkError> {
    match read_body(recv).await? {
        Some(body) => Ok(Some(framing::decode(&body)?)),
        None => Ok(None),
    }
}

async fn read_body(recv: &mut quinn::RecvStream) -> Result<Option<Vec<u8>>, LinkError> {
    let mut prefix = [0u8; PREFIX_LEN];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(LinkError::Truncated),
        Err(e) => return Err(e.into()),
    }
    let len = framing::body_len(prefix)?;
    let mut body = vec![0u8; len];
    match recv.read_exact(&mut body).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(LinkError::Truncated),
        Err(e) => return Err(e.into()),
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::pki::{CertificateAuthority, UnitIdentity, unit_key_and_request};

    /// A newer peer's message this build cannot decode is skipped; the next one is read.
    #[tokio::test]
    async fn an_unknown_message_is_skipped_and_the_stream_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let server =
            crate::endpoint::server("127.0.0.1:0".parse().unwrap(), &ca.server_identity(dir.path()).unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let (key, csr) = unit_key_and_request("bus-1").unwrap();
        let unit = UnitIdentity {
            identity: Identity { cert: ca.issue_unit(&csr, "bus-1").unwrap(), key },
            ca: ca.cert().clone(),
        };
        let client = crate::endpoint::client(addr, &unit).unwrap();
        let accept = tokio::spawn(async move {
            let conn = server.accept().await.unwrap().await.unwrap();
            let mut recv = conn.accept_uni().await.unwrap();
            let first = read_tolerant::<u8>(&mut recv).await.unwrap().unwrap();
            let second = read_tolerant::<u8>(&mut recv).await.unwrap().unwrap();
            (matches!(first, Tolerant::Unknown(_)), matches!(second, Tolerant::Message(7)))
        });
        let conn = client.connect(addr, crate::identity::SERVER_NAME).unwrap().await.unwrap();
        let mut send = conn.open_uni().await.unwrap();
        // A frame whose body is not a `u8` (as a variant this build does not know would not
        // be), then a good one.
        write(&mut send, &"a message from the future".to_owned()).await.unwrap();
        write(&mut send, &7u8).await.unwrap();
        send.finish().unwrap();
        assert_eq!(accept.await.unwrap(), (true, true));
    }
}
