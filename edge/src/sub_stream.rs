//! A camera's sub stream (`sub_url`): a second RTSP stream of the same camera, usually smaller
//! and H.264, recorded by a mode of its own (`sub_mode`) into a log of its own.
//!
//! Everywhere inside the unit and towards central the sub stream runs as one more camera whose
//! id is derived from its camera's ([`sub_stream_id`]: `front` → `front.sub`): its own camera
//! task, status slot, live hub, log in the store and catalog for central. It shares its
//! camera's triggers (rules and the main stream's motion), so an event records both streams
//! when both are in event mode. The configuration check refuses a camera whose id is another
//! camera's sub stream id.

use crate::config::CameraConfig;
use crate::recording::gate::RecordingMode;

/// What a camera's id gets to name its sub stream (`front` → `front.sub`). A dot: the
/// technician's page never makes camera ids with one.
pub const SUB_STREAM_SUFFIX: &str = ".sub";

/// The id of camera `camera`'s sub stream: its log in the store, its camera id at central.
pub fn sub_stream_id(camera: &str) -> String {
    format!("{camera}{SUB_STREAM_SUFFIX}")
}

/// The camera's main stream as a camera of its own (the sub stream's keys left out, so a
/// change to them does not restart the main stream).
pub fn main_stream(camera: &CameraConfig) -> CameraConfig {
    CameraConfig {
        sub_url: None,
        sub_username: None,
        sub_password: None,
        sub_transport: None,
        sub_mode: None,
        ..camera.clone()
    }
}

/// The camera's sub stream as a camera of its own, if it has one: `sub_url`, the `sub_`
/// credentials and transport or else the camera's, `sub_mode` (default continuous) with the
/// camera's schedule, buffers, retention and sharing. Its motion is not detected again: the
/// main stream's motion holds both.
pub fn sub_stream(camera: &CameraConfig) -> Option<CameraConfig> {
    let url = camera.sub_url.clone()?;
    let mode = camera.sub_mode.unwrap_or_default();
    Some(CameraConfig {
        id: sub_stream_id(&camera.id),
        name: Some(format!("{} (sub stream)", camera.display_name())),
        url,
        username: camera.sub_username.clone().or_else(|| camera.username.clone()),
        password: camera.sub_password.clone().or_else(|| camera.password.clone()),
        transport: camera.sub_transport.unwrap_or(camera.transport),
        mode,
        schedule: camera.schedule.clone().filter(|_| mode == RecordingMode::Schedule),
        motion: false,
        ..main_stream(camera)
    })
}

/// One stream the unit ingests: a camera's main stream, or a sub stream and its camera's id.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// The stream as a camera (the main stream has the camera's id).
    pub config: CameraConfig,
    /// For a sub stream, the id of its camera.
    pub sub_of: Option<String>,
}

/// Every stream of `cameras`: all main streams in order, then the sub streams in order.
pub fn streams(cameras: &[CameraConfig]) -> Vec<Stream> {
    let mains = cameras.iter().map(|c| Stream { config: main_stream(c), sub_of: None });
    let subs = cameras.iter().filter_map(|c| Some(Stream { config: sub_stream(c)?, sub_of: Some(c.id.clone()) }));
    mains.chain(subs).collect()
}

/// The ids of every stream's log (cameras and their sub streams).
pub fn log_ids(cameras: &[CameraConfig]) -> Vec<String> {
    streams(cameras).into_iter().map(|s| s.config.id).collect()
}

/// The ids of the streams shared with central (cameras with `share`, and their sub streams).
pub fn shared_ids(cameras: &[CameraConfig]) -> Vec<String> {
    streams(cameras).into_iter().filter(|s| s.config.share).map(|s| s.config.id).collect()
}

/// Whether an HTTP request's `stream` parameter means the sub stream: absent or `main` is
/// the camera itself, `sub` its sub stream. The error says what is wrong (for a 400).
pub fn wants_sub(stream: Option<&str>) -> Result<bool, String> {
    match stream {
        None | Some("") | Some("main") => Ok(false),
        Some("sub") => Ok(true),
        Some(other) => Err(format!("stream={other:?} is not a stream: use stream=main (the default) or stream=sub")),
    }
}

/// The id of the stream an HTTP request means: `camera` itself, or with `stream=sub` its
/// sub stream's (see [`wants_sub`]).
pub fn resolve(camera: &str, stream: Option<&str>) -> Result<String, String> {
    Ok(if wants_sub(stream)? { sub_stream_id(camera) } else { camera.to_owned() })
}

/// Checks the cameras' sub stream keys: a `sub_` key needs `sub_url`, which must be an RTSP
/// URL other than `url`, and no camera id may be another camera's sub stream id.
pub fn check(cameras: &[CameraConfig]) -> Result<(), String> {
    for cam in cameras {
        let id = &cam.id;
        let Some(url) = &cam.sub_url else {
            let set = [
                ("sub_username", cam.sub_username.is_some()),
                ("sub_password", cam.sub_password.is_some()),
                ("sub_transport", cam.sub_transport.is_some()),
                ("sub_mode", cam.sub_mode.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
                return Err(format!("camera {id:?}: {key} is only used with sub_url: add sub_url or remove {key}"));
            }
            continue;
        };
        if !matches!(url.scheme(), "rtsp" | "rtsps") {
            return Err(format!("camera {id:?}: sub_url {url} must start with rtsp:// or rtsps://"));
        }
        if *url == cam.url {
            return Err(format!("camera {id:?}: sub_url is the same as url; give the sub stream's own URL"));
        }
        let sub = sub_stream_id(id);
        if cameras.iter().any(|c| c.id == sub) {
            return Err(format!(
                "camera id {sub:?} is the id of camera {id:?}'s sub stream (its log in the store): \
                 rename camera {sub:?} (e.g. without the dot) or remove sub_url from camera {id:?}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_stream_parameter_picks_the_stream() {
        assert_eq!(resolve("front", None).unwrap(), "front");
        assert_eq!(resolve("front", Some("main")).unwrap(), "front");
        assert_eq!(resolve("front", Some("sub")).unwrap(), "front.sub");
        let e = resolve("front", Some("third")).unwrap_err();
        assert!(e.contains("stream=sub"), "{e}");
    }
}
