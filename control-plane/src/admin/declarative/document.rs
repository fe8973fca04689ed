//! A declarative document read without building a tree of the whole body: the body becomes JSON text
//! once (YAML is transcoded event by event), the top level is split into raw sections, and each entity
//! is parsed on its own when its turn comes. Memory follows the body's size, whatever the body holds.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::admin::BodyFormat;

/// The document as JSON text.
pub struct Document {
    text: String,
}

/// The top-level members of a document, each still unparsed.
pub type Sections<'a> = BTreeMap<String, &'a RawValue>;

impl Document {
    /// Reads a request body. Kong's wrapper `{"config": "<YAML or JSON text>"}` (or a `config` form
    /// field) is unwrapped; the error names what could not be read, never the body.
    pub fn from_body(bytes: &[u8], format: BodyFormat) -> Result<Document, String> {
        let doc = match format {
            BodyFormat::Yaml => Document::from_yaml(bytes)?,
            BodyFormat::Json => Document {
                text: String::from_utf8(bytes.to_vec())
                    .map_err(|_| "Cannot parse JSON body: not UTF-8".to_string())?,
            },
            BodyFormat::Form => {
                let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
                    .map_err(|e| format!("Cannot parse form body: {e}"))?;
                let config = pairs
                    .into_iter()
                    .find(|(k, _)| k == "config")
                    .map(|(_, v)| v)
                    .ok_or("a form body needs a 'config' field holding the document")?;
                return Document::from_text(&config);
            }
        };
        // Validates the JSON once, and finds a wrapped document.
        let wrapped = match doc.sections()?.get("config") {
            Some(raw) if raw.get().starts_with('"') => Some(
                serde_json::from_str::<String>(raw.get())
                    .map_err(|e| format!("Cannot parse config: {e}"))?,
            ),
            _ => None,
        };
        match wrapped {
            Some(text) => Document::from_text(&text),
            None => Ok(doc),
        }
    }

    /// A document given as text, JSON or YAML.
    fn from_text(text: &str) -> Result<Document, String> {
        if text.trim_start().starts_with('{') {
            let doc = Document {
                text: text.to_string(),
            };
            doc.sections()
                .map_err(|e| format!("Cannot parse config: {e}"))?;
            return Ok(doc);
        }
        Document::from_yaml(text.as_bytes()).map_err(|e| format!("Cannot parse config: {e}"))
    }

    fn from_yaml(bytes: &[u8]) -> Result<Document, String> {
        let mut out = Vec::with_capacity(bytes.len());
        let de = serde_yaml::Deserializer::from_slice(bytes);
        serde_transcode::transcode(de, &mut serde_json::Serializer::new(&mut out))
            .map_err(|e| format!("Cannot parse YAML body: {e}"))?;
        let text = String::from_utf8(out).map_err(|_| "YAML body is not UTF-8".to_string())?;
        Ok(Document { text })
    }

    /// The top-level members; the document must be an object.
    pub fn sections(&self) -> Result<Sections<'_>, String> {
        match serde_json::from_str::<Sections<'_>>(&self.text) {
            Ok(s) => Ok(s),
            Err(e) if e.is_data() => Err("expected an object".into()),
            Err(e) => Err(format!("Cannot parse JSON body: {e}")),
        }
    }
}

/// The elements of an array section, each unparsed; `None` when the section is not an array.
pub fn elements(raw: &RawValue) -> Option<Vec<&RawValue>> {
    if raw.get() == "null" {
        return Some(Vec::new());
    }
    serde_json::from_str::<Vec<&RawValue>>(raw.get()).ok()
}

/// Parses one element; it was already validated as JSON, so only its depth can make this fail.
pub fn parse(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_yaml_and_wrapped_documents_read_alike() {
        let json = br#"{"_format_version": "3.0", "services": [{"name": "a", "url": "http://x"}]}"#;
        let yaml = b"_format_version: '3.0'\nservices:\n  - name: a\n    url: http://x\n";
        let wrapped = serde_json::json!({"config": std::str::from_utf8(yaml).unwrap()}).to_string();
        for (bytes, format) in [
            (&json[..], BodyFormat::Json),
            (&yaml[..], BodyFormat::Yaml),
            (wrapped.as_bytes(), BodyFormat::Json),
        ] {
            let doc = Document::from_body(bytes, format).unwrap();
            let sections = doc.sections().unwrap();
            let services = elements(sections["services"]).unwrap();
            assert_eq!(parse(services[0])["name"], "a");
        }
    }

    #[test]
    fn unreadable_documents_are_named() {
        assert!(Document::from_body(b"[1, 2]", BodyFormat::Json)
            .err()
            .unwrap()
            .contains("object"));
        assert!(Document::from_body(b"{\"a\": ", BodyFormat::Json)
            .err()
            .unwrap()
            .contains("Cannot parse JSON"));
        assert!(Document::from_body(b"a: [", BodyFormat::Yaml)
            .err()
            .unwrap()
            .contains("YAML"));
        assert!(elements(&RawValue::from_string("{}".into()).unwrap()).is_none());
    }
}
