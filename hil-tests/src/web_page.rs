//! What a browser test does with a page, whichever browser shows it: Chromium over the
//! DevTools protocol ([`Browser`]) or Firefox over WebDriver BiDi ([`Firefox`]).

use std::path::Path;

use serde_json::{Value, json};

use crate::browser::Browser;
use crate::firefox::Firefox;

/// A page in a real browser, driven by a test.
pub trait WebPage {
    /// The browser's name and version, for messages.
    fn browser_name(&mut self) -> String;
    /// Opens `url` and waits until the document has loaded.
    fn goto(&mut self, url: &str) -> anyhow::Result<()>;
    /// Evaluates JavaScript (promises awaited) and returns its value as JSON.
    fn eval(&mut self, expression: &str) -> anyhow::Result<Value>;
    /// Clicks the element `selector` finds, with real mouse events.
    fn click(&mut self, selector: &str) -> anyhow::Result<()>;
    /// A left click at viewport coordinates.
    fn click_at(&mut self, x: f64, y: f64) -> anyhow::Result<()>;
    /// Types `text` into whatever has the focus.
    fn type_text(&mut self, text: &str) -> anyhow::Result<()>;
    /// A PNG of the whole page.
    fn screenshot(&mut self, path: &Path) -> anyhow::Result<()>;
}

impl WebPage for Browser {
    fn browser_name(&mut self) -> String {
        Browser::eval(self, "navigator.userAgent").map_or_else(|_| "Chromium".into(), |v| v.to_string())
    }
    fn goto(&mut self, url: &str) -> anyhow::Result<()> {
        Browser::goto(self, url)
    }
    fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        Browser::eval(self, expression)
    }
    fn click(&mut self, selector: &str) -> anyhow::Result<()> {
        Browser::click(self, selector)
    }
    fn click_at(&mut self, x: f64, y: f64) -> anyhow::Result<()> {
        Browser::click_at(self, x, y)
    }
    fn type_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.page("Input.insertText", json!({ "text": text }))?;
        Ok(())
    }
    fn screenshot(&mut self, path: &Path) -> anyhow::Result<()> {
        Browser::screenshot(self, path)
    }
}

impl WebPage for Firefox {
    fn browser_name(&mut self) -> String {
        format!("Firefox {}", self.version())
    }
    fn goto(&mut self, url: &str) -> anyhow::Result<()> {
        Firefox::goto(self, url)
    }
    fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        Firefox::eval(self, expression)
    }
    fn click(&mut self, selector: &str) -> anyhow::Result<()> {
        Firefox::click(self, selector)
    }
    fn click_at(&mut self, x: f64, y: f64) -> anyhow::Result<()> {
        Firefox::click_at(self, x, y)
    }
    fn type_text(&mut self, text: &str) -> anyhow::Result<()> {
        Firefox::type_text(self, text)
    }
    fn screenshot(&mut self, path: &Path) -> anyhow::Result<()> {
        Firefox::screenshot(self, path)
    }
}
