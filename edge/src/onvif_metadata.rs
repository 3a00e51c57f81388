//! ONVIF metadata streams: which stream of a camera to record (`application/vnd.onvif.metadata`,
//! which `retina` depacketizes into one XML message per RTP marker), and the notifications in a
//! message (`tt:Event` → `wsnt:NotificationMessage`: a topic, a property operation, source and
//! data items), which become [`crate::events::EventKind::OnvifEvent`]s that `[[rule]]`s match.
//! Parsing is pure and never panics: a message that is not well-formed XML is an error the
//! caller counts, and the message is recorded all the same.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};

/// The SDP encoding (as retina lowercases it) of the metadata Convoy records: uncompressed XML.
pub const ENCODING: &str = "vnd.onvif.metadata";

/// The most notifications taken from one message (the rest are ignored).
pub const MAX_NOTIFICATIONS: usize = 64;
/// The most source or data items kept per notification.
pub const MAX_ITEMS: usize = 32;
/// The longest topic, item name or value kept (longer ones are cut at a character boundary).
pub const MAX_TEXT: usize = 256;

/// Chooses the metadata stream to record among `streams` (`(media, encoding)`): the first
/// uncompressed ONVIF metadata stream. `Err` says why none when the camera offers ONVIF
/// metadata Convoy does not record (gzip or EXI compressed).
pub fn choose_metadata(streams: &[(&str, &str)]) -> Result<Option<usize>, String> {
    if let Some(i) = streams.iter().position(|(media, encoding)| *media == "application" && *encoding == ENCODING) {
        return Ok(Some(i));
    }
    let other: Vec<String> = streams
        .iter()
        .filter(|(media, encoding)| *media == "application" && encoding.starts_with(ENCODING))
        .map(|(media, encoding)| format!("{media}/{encoding}"))
        .collect();
    if other.is_empty() {
        return Ok(None);
    }
    Err(format!(
        "metadata ({}) not recorded: Convoy records uncompressed ONVIF metadata (application/{ENCODING}); \
         set the camera's metadata compression off",
        other.join(", ")
    ))
}

/// One ONVIF notification of a metadata message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notification {
    /// The topic with its namespace prefixes removed, e.g. `RuleEngine/CellMotionDetector/Motion`
    /// for `tns1:RuleEngine/CellMotionDetector/Motion`.
    pub topic: String,
    /// `PropertyOperation` of its `tt:Message` (`Initialized`, `Changed`, `Deleted`), if given.
    pub operation: Option<String>,
    /// `tt:Source` simple items (name → value), e.g. `InputToken` → `1`.
    pub source: BTreeMap<String, String>,
    /// `tt:Data` simple items, e.g. `IsMotion` → `true`.
    pub data: BTreeMap<String, String>,
}

impl Notification {
    /// The state a property event reports: `Some(true)` when a data item is `true` (motion,
    /// an input's logical state), `Some(false)` when one is `false` or the property was
    /// deleted, `None` when the notification says nothing boolean (an instant event).
    pub fn state(&self) -> Option<bool> {
        if self.operation.as_deref() == Some("Deleted") {
            return Some(false);
        }
        self.data.values().find_map(|v| match v.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })
    }
}

/// Why a metadata message could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    /// The message is not UTF-8 text.
    #[error("metadata message is not UTF-8 text")]
    NotText,
    /// The XML is not well-formed.
    #[error("metadata message is not well-formed XML: {0}")]
    Xml(String),
}

/// Where the parser is inside a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Other,
    Topic,
    Source,
    Data,
}

/// The notifications in one metadata message (`tt:MetadataStream`), in order. Elements are
/// matched by local name, whatever prefixes the camera uses; other content (video analytics,
/// PTZ) is passed over.
pub fn notifications(message: &[u8]) -> Result<Vec<Notification>, MetadataError> {
    let text = std::str::from_utf8(message).map_err(|_| MetadataError::NotText)?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut out = Vec::new();
    let mut current: Option<Notification> = None;
    let mut part = Part::Other;
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| MetadataError::Xml(e.to_string()))?;
        match event {
            Event::Eof => break,
            Event::Start(e) => {
                depth += 1;
                start(&e, &mut current, &mut part, false)?;
            }
            Event::Empty(e) => start(&e, &mut current, &mut part, true)?,
            Event::End(e) => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| MetadataError::Xml("an end tag without its start tag".into()))?;
                match e.local_name().as_ref() {
                    "NotificationMessage" => {
                        if let Some(n) = current.take().filter(|n| !n.topic.is_empty())
                            && out.len() < MAX_NOTIFICATIONS
                        {
                            out.push(n);
                        }
                        part = Part::Other;
                    }
                    "Topic" | "Source" | "Data" => part = Part::Other,
                    _ => {}
                }
            }
            Event::Text(t) if part == Part::Topic => {
                if let Some(n) = &mut current {
                    push_text(&mut n.topic, &t.xml10_content());
                }
            }
            Event::GeneralRef(r) if part == Part::Topic => {
                let c = r.resolve_char_ref().map_err(|e| MetadataError::Xml(e.to_string()))?;
                if let (Some(n), Some(c)) = (&mut current, c) {
                    push_text(&mut n.topic, c.encode_utf8(&mut [0; 4]));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(MetadataError::Xml("the document ends inside an element".into()));
    }
    for n in &mut out {
        n.topic = strip_prefixes(n.topic.trim());
    }
    Ok(out)
}

/// A start (or empty) tag inside a message.
fn start(
    e: &BytesStart<'_>,
    current: &mut Option<Notification>,
    part: &mut Part,
    empty: bool,
) -> Result<(), MetadataError> {
    match e.local_name().as_ref() {
        "NotificationMessage" if !empty => *current = Some(Notification::default()),
        "Topic" if !empty && current.is_some() => *part = Part::Topic,
        "Source" if !empty && current.is_some() => *part = Part::Source,
        "Data" if !empty && current.is_some() => *part = Part::Data,
        "Message" => {
            if let Some(n) = current
                && let Some(op) = attribute(e, "PropertyOperation")?
            {
                n.operation = Some(op);
            }
        }
        "SimpleItem" if matches!(part, Part::Source | Part::Data) => {
            let Some(n) = current else { return Ok(()) };
            let items = if *part == Part::Source { &mut n.source } else { &mut n.data };
            if let (Some(name), Some(value)) = (attribute(e, "Name")?, attribute(e, "Value")?)
                && items.len() < MAX_ITEMS
            {
                items.insert(name, value);
            }
        }
        _ => {}
    }
    Ok(())
}

/// The value of the attribute with local name `name`, unescaped and cut to [`MAX_TEXT`].
fn attribute(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, MetadataError> {
    for a in e.attributes() {
        let a = a.map_err(|e| MetadataError::Xml(e.to_string()))?;
        if a.key.local_name().as_ref() == name {
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| MetadataError::Xml(e.to_string()))?;
            let mut out = String::new();
            push_text(&mut out, &value);
            return Ok(Some(out));
        }
    }
    Ok(None)
}

/// Appends `text` to `to`, keeping `to` within [`MAX_TEXT`] bytes.
fn push_text(to: &mut String, text: &str) {
    for c in text.chars() {
        if to.len() + c.len_utf8() > MAX_TEXT {
            return;
        }
        to.push(c);
    }
}

/// `tns1:RuleEngine/tnsaxis:Motion` → `RuleEngine/Motion`.
fn strip_prefixes(topic: &str) -> String {
    topic.split('/').map(|part| part.rsplit(':').next().unwrap_or(part)).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as cameras send it: a motion property event and video analytics.
    pub(crate) const MOTION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema">
<tt:VideoAnalytics><tt:Frame UtcTime="2026-11-26T10:00:00.000Z"/></tt:VideoAnalytics>
<tt:Event><wsnt:NotificationMessage xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2"
 xmlns:tns1="http://www.onvif.org/ver10/topics">
<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic>
<wsnt:Message><tt:Message UtcTime="2026-11-26T10:00:00.000Z" PropertyOperation="Changed">
<tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="vsc&amp;1"/>
<tt:SimpleItem Name="Rule" Value="MyMotion"/></tt:Source>
<tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data>
</tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event>
</tt:MetadataStream>"#;

    #[test]
    fn a_motion_event_is_read_with_its_items() {
        let n = notifications(MOTION.as_bytes()).unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].topic, "RuleEngine/CellMotionDetector/Motion");
        assert_eq!(n[0].operation.as_deref(), Some("Changed"));
        assert_eq!(n[0].source["VideoSourceConfigurationToken"], "vsc&1");
        assert_eq!(n[0].source["Rule"], "MyMotion");
        assert_eq!(n[0].data["IsMotion"], "true");
        assert_eq!(n[0].state(), Some(true));
        let stopped = MOTION.replace("Value=\"true\"", "Value=\"false\"");
        assert_eq!(notifications(stopped.as_bytes()).unwrap()[0].state(), Some(false));
    }

    #[test]
    fn a_digital_input_and_instant_events() {
        let input = r#"<MetadataStream><Event><NotificationMessage><Topic>tns1:Device/Trigger/DigitalInput</Topic>
            <Message><Message PropertyOperation="Initialized"><Source><SimpleItem Name="InputToken" Value="1"/></Source>
            <Data><SimpleItem Name="LogicalState" Value="false"/></Data></Message></Message></NotificationMessage>
            <NotificationMessage><Topic>tns1:VideoSource/tnsaxis:Tampering</Topic></NotificationMessage>
            <NotificationMessage><Topic></Topic></NotificationMessage></Event></MetadataStream>"#;
        let n = notifications(input.as_bytes()).unwrap();
        assert_eq!(n.len(), 2, "a notification without a topic is passed over: {n:?}");
        assert_eq!((n[0].topic.as_str(), n[0].state()), ("Device/Trigger/DigitalInput", Some(false)));
        assert_eq!(n[0].source["InputToken"], "1");
        assert_eq!((n[1].topic.as_str(), n[1].state()), ("VideoSource/Tampering", None));
        let deleted = input.replace("Initialized", "Deleted").replace("\"false\"", "\"true\"");
        assert_eq!(notifications(deleted.as_bytes()).unwrap()[0].state(), Some(false));
    }

    #[test]
    fn messages_without_events_have_no_notifications() {
        let analytics = "<tt:MetadataStream xmlns:tt=\"x\"><tt:VideoAnalytics/></tt:MetadataStream>";
        assert_eq!(notifications(analytics.as_bytes()), Ok(Vec::new()));
        assert_eq!(notifications(b""), Ok(Vec::new()));
    }

    #[test]
    fn bad_messages_are_errors_never_panics() {
        assert_eq!(notifications(&[0xff, 0xfe, b'<']), Err(MetadataError::NotText));
        for bad in [
            "<a><b></a>",
            "<a>",
            "</a>",
            "<a x=\"1></a>",
            "<NotificationMessage><Message PropertyOperation=x/></NotificationMessage>",
            "<NotificationMessage><Topic>&#xffffffff;</Topic></NotificationMessage>",
        ] {
            assert!(notifications(bad.as_bytes()).is_err(), "{bad}");
        }
        // Every truncation and every single-byte change of a real message: no panic.
        let bytes = MOTION.as_bytes();
        for end in 0..bytes.len() {
            let _ = notifications(&bytes[..end]);
        }
        for i in 0..bytes.len() {
            for b in [0u8, b'<', b'>', b'"', b'&', 0xc3] {
                let mut m = bytes.to_vec();
                m[i] = b;
                let _ = notifications(&m);
            }
        }
    }

    #[test]
    fn sizes_are_bounded() {
        let topic = "T".repeat(10_000);
        let items: String = (0..100).map(|i| format!("<SimpleItem Name=\"n{i}\" Value=\"v\"/>")).collect();
        let one = format!(
            "<NotificationMessage><Topic>{topic}</Topic><Message><Message><Data>{items}</Data></Message></Message></NotificationMessage>"
        );
        let message = format!("<MetadataStream><Event>{}</Event></MetadataStream>", one.repeat(100));
        let n = notifications(message.as_bytes()).unwrap();
        assert_eq!(n.len(), MAX_NOTIFICATIONS);
        assert_eq!((n[0].topic.len(), n[0].data.len()), (MAX_TEXT, MAX_ITEMS));
    }

    #[test]
    fn the_uncompressed_metadata_stream_is_chosen_or_why_not_is_said() {
        let v = ("video", "h264");
        assert_eq!(choose_metadata(&[v]), Ok(None));
        assert_eq!(choose_metadata(&[v, ("audio", "pcmu"), ("application", ENCODING)]), Ok(Some(2)));
        assert_eq!(
            choose_metadata(&[v, ("application", "vnd.onvif.metadata.gzip"), ("application", ENCODING)]),
            Ok(Some(2))
        );
        let why = choose_metadata(&[v, ("application", "vnd.onvif.metadata.exi.onvif")]).unwrap_err();
        assert!(why.contains("application/vnd.onvif.metadata.exi.onvif") && why.contains("uncompressed"), "{why}");
        assert_eq!(choose_metadata(&[v, ("application", "x-other")]), Ok(None));
    }
}
