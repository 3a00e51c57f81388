//! SDP session descriptions for a clip (RFC 8866, H.264 parameters from RFC 6184).

use std::fmt::Write as _;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::clip::Clip;
use crate::rtp::{H264_CLOCK_RATE, H264_PAYLOAD_TYPE};

/// Control URL of the single video track, relative to the presentation's Content-Base.
pub const TRACK_CONTROL: &str = "trackID=0";

/// Builds the SDP for a clip served at `frame_rate` frames per second.
///
/// `origin` goes in the `o=` line (the server's address as the client sees
/// it); `session_id` should differ per server run. The presentation uses
/// `a=control:*` and the track `a=control:trackID=0`.
pub fn session_description(clip: &Clip, frame_rate: u32, origin: IpAddr, session_id: u64) -> String {
    let ip_version = match origin {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let mut sdp = String::with_capacity(512);
    // Writing to a String cannot fail.
    let _ = write!(
        sdp,
        "v=0\r\n\
         o=- {session_id} 1 IN {ip_version} {origin}\r\n\
         s=Convoy sim-camera\r\n\
         t=0 0\r\n\
         a=tool:convoy-sim-camera\r\n\
         a=type:broadcast\r\n\
         a=range:npt=0-\r\n\
         a=control:*\r\n\
         m=video 0 RTP/AVP {pt}\r\n\
         c=IN {ip_version} {any}\r\n\
         a=rtpmap:{pt} H264/{clock}\r\n\
         a=fmtp:{pt} packetization-mode=1;profile-level-id={pli};sprop-parameter-sets={sps},{pps}\r\n\
         a=framerate:{frame_rate}\r\n\
         a=control:{TRACK_CONTROL}\r\n",
        pt = H264_PAYLOAD_TYPE,
        clock = H264_CLOCK_RATE,
        any = if origin.is_ipv4() { "0.0.0.0" } else { "::" },
        pli = clip.profile_level_id(),
        sps = BASE64.encode(clip.sps()),
        pps = BASE64.encode(clip.pps()),
    );
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip() -> Clip {
        Clip::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../clips/testsrc-640x360-25fps.h264")).unwrap()
    }

    #[test]
    fn contains_required_lines() {
        let clip = clip();
        let sdp = session_description(&clip, 25, "127.0.0.1".parse().unwrap(), 42);
        let lines: Vec<&str> = sdp.split("\r\n").collect();
        assert_eq!(lines[0], "v=0");
        assert!(lines.contains(&"o=- 42 1 IN IP4 127.0.0.1"));
        assert!(lines.contains(&"m=video 0 RTP/AVP 96"));
        assert!(lines.contains(&"a=rtpmap:96 H264/90000"));
        assert!(lines.contains(&"a=control:trackID=0"));
        assert!(lines.contains(&"a=control:*"));
        assert!(lines.contains(&"a=framerate:25"));
        let fmtp = lines.iter().find(|l| l.starts_with("a=fmtp:96 ")).expect("fmtp line");
        let params: Vec<&str> = fmtp["a=fmtp:96 ".len()..].split(';').collect();
        assert!(params.contains(&"packetization-mode=1"));
        assert!(params.contains(&"profile-level-id=4d401e"));
        let sprop = params.iter().find_map(|p| p.strip_prefix("sprop-parameter-sets=")).expect("sprop-parameter-sets");
        let (sps, pps) = sprop.split_once(',').unwrap();
        assert_eq!(BASE64.decode(sps).unwrap(), clip.sps());
        assert_eq!(BASE64.decode(pps).unwrap(), clip.pps());
        assert!(sdp.ends_with("\r\n"));
        assert!(!sdp.contains("\n\n"));
    }

    #[test]
    fn ipv6_origin() {
        let sdp = session_description(&clip(), 30, "::1".parse().unwrap(), 1);
        assert!(sdp.contains("o=- 1 1 IN IP6 ::1\r\n"));
        assert!(sdp.contains("c=IN IP6 ::\r\n"));
        assert!(sdp.contains("a=framerate:30\r\n"));
    }
}
