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

/// Reads one message; `Ok(None)` when the peer finished the stream between messages.
pub async fn read<T: DeserializeOwned>(recv: &mut quinn::RecvStream) -> Result<Option<T>, LinkError> {
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
    Ok(Some(framing::decode(&body)?))
}
