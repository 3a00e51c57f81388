//! RTSP 1.0 message framing on a byte stream that also carries interleaved `$` frames.
//!
//! Parsing of complete messages is done by `rtsp-types`; this module decides
//! where a message ends, bounds how much may be buffered, and recovers from
//! malformed requests when their extent is known.

use bytes::{Buf, BytesMut};
use rtsp_types::{Message, Request};

/// Largest accepted header section (request line plus headers).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest accepted message (headers plus body).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// One item read from the client.
#[derive(Debug)]
pub enum Incoming {
    /// A parsed request.
    Request(Box<Request<Vec<u8>>>),
    /// An interleaved binary frame (RTCP from the client); its bytes were discarded.
    Interleaved {
        /// The channel id after the `$`.
        channel: u8,
        /// Payload length in bytes.
        len: usize,
    },
    /// A complete message that is not a valid request; answer 400 and go on.
    Malformed {
        /// The CSeq found in it, if any (digits only).
        cseq: Option<String>,
    },
    /// A response from the client (the server sends no requests); ignored.
    Response,
}

/// The byte stream cannot be framed any further; answer 400 and close.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// The header section or the whole message is larger than allowed.
    #[error("message larger than the limit")]
    TooLarge {
        /// The CSeq found in the headers, if any.
        cseq: Option<String>,
    },
    /// The bytes are not RTSP and their extent is unknown.
    #[error("unparseable data")]
    Garbage {
        /// The CSeq found in the data, if any.
        cseq: Option<String>,
    },
}

impl FramingError {
    /// The CSeq to echo in the 400 response, if one could be found.
    pub fn cseq(&self) -> Option<&str> {
        match self {
            FramingError::TooLarge { cseq } | FramingError::Garbage { cseq } => cseq.as_deref(),
        }
    }
}

/// Incremental framer; keeps where the header-end search left off.
#[derive(Debug, Default)]
pub struct Framer {
    scanned: usize,
}

impl Framer {
    /// Takes the next complete item off the front of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, FramingError> {
        // Stray CRLFs between messages are allowed.
        let blank = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
        if blank > 0 {
            buf.advance(blank);
            self.scanned = 0;
        }
        if buf.is_empty() {
            return Ok(None);
        }
        if buf[0] == b'$' {
            if buf.len() < 4 {
                return Ok(None);
            }
            let channel = buf[1];
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            if buf.len() < 4 + len {
                return Ok(None);
            }
            buf.advance(4 + len);
            self.scanned = 0;
            return Ok(Some(Incoming::Interleaved { channel, len }));
        }

        let from = self.scanned.saturating_sub(3);
        let Some(header_end) = find(&buf[from..], b"\r\n\r\n").map(|i| from + i + 4) else {
            self.scanned = buf.len();
            if find(buf, b"\n\n").is_some() {
                // Bare-LF line endings: never valid RTSP.
                return Err(FramingError::Garbage { cseq: scrape_cseq(buf) });
            }
            if buf.len() > MAX_HEADER_BYTES {
                return Err(FramingError::TooLarge { cseq: scrape_cseq(buf) });
            }
            return Ok(None);
        };
        if header_end > MAX_HEADER_BYTES {
            return Err(FramingError::TooLarge { cseq: scrape_cseq(&buf[..header_end]) });
        }
        let head = &buf[..header_end];
        let content_length = match scrape_header(head, "content-length") {
            None => Some(0),
            Some(v) => v.parse::<usize>().ok(),
        };
        match Message::<Vec<u8>>::parse(&buf[..]) {
            Ok((message, consumed)) => {
                buf.advance(consumed);
                self.scanned = 0;
                Ok(Some(match message {
                    Message::Request(request) => Incoming::Request(Box::new(request)),
                    Message::Response(_) => Incoming::Response,
                    Message::Data(data) => Incoming::Interleaved { channel: data.channel_id(), len: data.len() },
                }))
            }
            Err(rtsp_types::ParseError::Incomplete(_)) => {
                // The header section is complete, so only the body is missing.
                match content_length {
                    Some(len) if header_end.saturating_add(len) <= MAX_MESSAGE_BYTES => Ok(None),
                    Some(_) => Err(FramingError::TooLarge { cseq: scrape_cseq(head) }),
                    None => Err(FramingError::Garbage { cseq: scrape_cseq(head) }),
                }
            }
            Err(rtsp_types::ParseError::Error) => {
                let cseq = scrape_cseq(head);
                match content_length {
                    Some(0) => {
                        buf.advance(header_end);
                        self.scanned = 0;
                        Ok(Some(Incoming::Malformed { cseq }))
                    }
                    // The body's extent cannot be trusted: give up on the stream.
                    _ => Err(FramingError::Garbage { cseq }),
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Finds a header by (case-insensitive) name in raw header bytes, for error replies.
fn scrape_header(head: &[u8], name: &str) -> Option<String> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = std::str::from_utf8(line).ok()?;
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// The CSeq of raw header bytes, if it is a plain number (safe to echo).
fn scrape_cseq(head: &[u8]) -> Option<String> {
    scrape_header(head, "cseq").filter(|v| is_cseq(v))
}

/// True if `v` is a CSeq value that can be echoed: 1 to 10 ASCII digits.
pub fn is_cseq(v: &str) -> bool {
    (1..=10).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit())
}

/// Picks the interleaved RTP channel from a `Transport` request header.
///
/// The header may list alternatives separated by commas; the first
/// `RTP/AVP/TCP` unicast one wins. Returns `None` when no alternative is
/// TCP interleaved (for example UDP only), which is answered with 461.
pub fn interleaved_channel(transport: &str) -> Option<u8> {
    transport.split(',').find_map(|spec| {
        let mut params = spec.split(';').map(str::trim);
        let protocol = params.next()?;
        if !protocol.eq_ignore_ascii_case("RTP/AVP/TCP") {
            return None;
        }
        let mut channel = 0u8;
        for p in params {
            if p.eq_ignore_ascii_case("multicast") {
                return None;
            }
            if let Some(v) = p.strip_prefix("interleaved=") {
                let first = v.split('-').next()?.trim();
                channel = first.parse().ok()?;
            }
        }
        // The RTCP channel (channel + 1) must fit in a byte too.
        (channel < u8::MAX).then_some(channel)
    })
}

/// The session id of a `Session` request header (the part before any `;`).
pub fn session_id(header: &str) -> &str {
    header.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtsp_types::Method;

    fn framer_all(input: &[u8]) -> (Vec<Incoming>, Option<FramingError>, usize) {
        let mut buf = BytesMut::from(input);
        let mut framer = Framer::default();
        let mut out = Vec::new();
        loop {
            match framer.next(&mut buf) {
                Ok(Some(item)) => out.push(item),
                Ok(None) => return (out, None, buf.len()),
                Err(e) => return (out, Some(e), buf.len()),
            }
        }
    }

    #[test]
    fn frames_requests_and_interleaved_data() {
        let input = b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n\
                      $\x01\x00\x03abc\
                      \r\nGET_PARAMETER rtsp://h/cam RTSP/1.0\r\nCSeq: 2\r\nSession: x\r\n\r\n\
                      DESCRIBE rtsp://h/cam RTSP/1.0\r\nCSe";
        let (items, err, left) = framer_all(input);
        assert!(err.is_none());
        assert_eq!(items.len(), 3);
        match &items[0] {
            Incoming::Request(r) => assert_eq!(r.method(), &Method::Options),
            other => panic!("{other:?}"),
        }
        assert!(matches!(items[1], Incoming::Interleaved { channel: 1, len: 3 }));
        match &items[2] {
            Incoming::Request(r) => assert_eq!(r.method(), &Method::GetParameter),
            other => panic!("{other:?}"),
        }
        assert_eq!(left, "DESCRIBE rtsp://h/cam RTSP/1.0\r\nCSe".len());
    }

    #[test]
    fn waits_for_split_messages() {
        let whole = b"SETUP rtsp://h/cam/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n";
        let mut framer = Framer::default();
        let mut buf = BytesMut::new();
        let mut got = None;
        for &b in whole.iter() {
            buf.extend_from_slice(&[b]);
            if let Some(item) = framer.next(&mut buf).unwrap() {
                got = Some(item);
            }
        }
        assert!(matches!(got, Some(Incoming::Request(_))));
        assert!(buf.is_empty());
        // Interleaved frame split too.
        let mut buf = BytesMut::from(&b"$\x00\x00"[..]);
        assert!(framer.next(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"\x02z");
        assert!(framer.next(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"z");
        assert!(matches!(framer.next(&mut buf).unwrap(), Some(Incoming::Interleaved { channel: 0, len: 2 })));
    }

    #[test]
    fn malformed_but_framed_request_is_recoverable() {
        let input = b"HELLO THERE\r\nCSeq: 7\r\n\r\nOPTIONS * RTSP/1.0\r\nCSeq: 8\r\n\r\n";
        let (items, err, _) = framer_all(input);
        assert!(err.is_none());
        assert!(matches!(&items[0], Incoming::Malformed { cseq: Some(c) } if c == "7"));
        assert!(matches!(&items[1], Incoming::Request(_)));
    }

    #[test]
    fn hostile_input_is_bounded() {
        // Endless header section.
        let mut big = b"OPTIONS * RTSP/1.0\r\nX: ".to_vec();
        big.resize(MAX_HEADER_BYTES + 10, b'a');
        let (_, err, _) = framer_all(&big);
        assert!(matches!(err, Some(FramingError::TooLarge { .. })));
        // Huge declared body.
        let (_, err, _) = framer_all(b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 4\r\nContent-Length: 99999999999\r\n\r\n");
        assert!(matches!(err, Some(FramingError::TooLarge { cseq: Some(ref c) }) if c == "4"));
        // Bare LF.
        let (_, err, _) = framer_all(b"OPTIONS * RTSP/1.0\nCSeq: 1\n\n");
        assert!(matches!(err, Some(FramingError::Garbage { .. })));
        // Header injection in CSeq is not echoed.
        let (items, _, _) = framer_all(b"BAD\r\nCSeq: 1 Evil: yes\r\n\r\n");
        assert!(matches!(&items[0], Incoming::Malformed { cseq: None }));
    }

    #[test]
    fn random_bytes_never_panic() {
        let seeds: &[&[u8]] = &[
            b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            b"SETUP rtsp://h/cam RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\nContent-Length: 4\r\n\r\nabcd",
            b"$\x00\x00\x04abcd",
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..3000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            for _ in 0..(round % 7) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let pos = (x as usize) % (input.len() + 1);
                match (x >> 32) % 3 {
                    0 if pos < input.len() => input[pos] = (x >> 40) as u8,
                    1 => input.insert(pos, (x >> 48) as u8),
                    _ => input.truncate(pos),
                }
            }
            let _ = framer_all(&input);
        }
    }

    #[test]
    fn transport_selection() {
        assert_eq!(interleaved_channel("RTP/AVP/TCP;unicast;interleaved=0-1"), Some(0));
        assert_eq!(
            interleaved_channel("RTP/AVP;unicast;client_port=5000-5001, RTP/AVP/TCP;unicast;interleaved=4-5"),
            Some(4)
        );
        assert_eq!(interleaved_channel("rtp/avp/tcp;unicast"), Some(0));
        assert_eq!(interleaved_channel("RTP/AVP;unicast;client_port=5000-5001"), None);
        assert_eq!(interleaved_channel("RTP/AVP/UDP;unicast;client_port=5000-5001"), None);
        assert_eq!(interleaved_channel("RTP/AVP/TCP;interleaved=255"), None);
        assert_eq!(interleaved_channel("RTP/AVP/TCP;interleaved=x-y"), None);
        assert_eq!(interleaved_channel(""), None);
    }

    #[test]
    fn session_header_id() {
        assert_eq!(session_id("abc;timeout=60"), "abc");
        assert_eq!(session_id(" abc "), "abc");
    }
}
