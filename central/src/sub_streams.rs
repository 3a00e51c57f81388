//! Cameras' sub streams as central sees them. A unit shares a camera's sub stream (edge
//! `sub_url`) as one more camera whose id is the camera's with [`SUB_STREAM_SUFFIX`]
//! (`front` → `front.sub`; the unit refuses a configuration where that id is another
//! camera's). The hello carries no relation (its wire format is frozen), so central pairs
//! them by id: the operator's page plays a camera's sub stream live when the browser cannot
//! play the camera's own codec (H.265).

/// What the unit appends to a camera's id to name its sub stream (edge
/// `sub_stream::SUB_STREAM_SUFFIX`; the same contract).
pub const SUB_STREAM_SUFFIX: &str = ".sub";

/// Camera `id`'s relations among its unit's camera ids: the id of its sub stream, and for a
/// sub stream the id of its camera (each only when the other is shared too).
pub fn relations<'a>(id: &str, ids: impl Iterator<Item = &'a str> + Clone) -> (Option<String>, Option<String>) {
    let sub = format!("{id}{SUB_STREAM_SUFFIX}");
    let sub_stream = ids.clone().any(|c| c == sub).then_some(sub);
    let sub_of = id.strip_suffix(SUB_STREAM_SUFFIX).filter(|main| ids.clone().any(|c| c == *main)).map(str::to_owned);
    (sub_stream, sub_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_and_its_sub_stream_are_paired_by_id() {
        let ids = ["front", "front.sub", "rear", "side.sub"];
        let of = |id: &str| relations(id, ids.iter().copied());
        assert_eq!(of("front"), (Some("front.sub".to_owned()), None));
        assert_eq!(of("front.sub"), (None, Some("front".to_owned())));
        assert_eq!(of("rear"), (None, None), "no sub stream shared");
        assert_eq!(of("side.sub"), (None, None), "a camera of that id without its main camera is a camera");
    }
}
