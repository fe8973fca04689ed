use std::collections::{HashMap, HashSet};

use serde_json::json;

use super::*;

/// Checks `text` against the text format (0.0.4) and Prometheus's naming rules: every sample's family
/// has one HELP and one TYPE line before its samples, whose lines are together (a histogram's `_bucket`,
/// `_sum` and `_count` samples under its family); names and label names are valid, counters end in
/// `_total`, label values are quoted with their escapes, values are numbers.
/// Returns each series (name and labels) with its value.
fn parse(text: &str) -> HashMap<String, f64> {
    let is_name = |s: &str| {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current = String::new();
    let mut series = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("help text");
            assert!(is_name(name) && !help.is_empty(), "{line}");
            assert!(helped.insert(name.to_string()), "a second HELP: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("type");
            assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
            assert!(
                kind != "counter" || name.ends_with("_total"),
                "a counter's name ends in _total: {line}"
            );
            assert!(types.insert(name.into(), kind.into()).is_none(), "{line}");
            continue;
        }
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i..]),
            None => line.split_at(line.find(' ').expect("a value")),
        };
        // A histogram's samples are its family's name with `_bucket`, `_sum` or `_count`.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            .unwrap_or(name);
        assert!(
            types.contains_key(family) && helped.contains(family),
            "{line}"
        );
        if family != current {
            assert!(!finished.contains(family), "samples apart: {line}");
            finished.insert(std::mem::replace(&mut current, family.to_string()));
        }
        let (labels, value) = rest.rsplit_once(' ').expect("a value");
        let value: f64 = value.parse().expect("a number");
        if !labels.is_empty() {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .expect("braces");
            // label="value" pairs; a value ends at an unescaped quote.
            let mut rest = inner;
            while !rest.is_empty() {
                let (label, after) = rest.split_once("=\"").expect("label=\"");
                assert!(is_name(label), "{line}");
                let mut end = None;
                let mut escaped = false;
                for (i, c) in after.char_indices() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        (false, '\n') => panic!("a raw line feed: {line}"),
                        _ => {}
                    }
                }
                let end = end.expect("closing quote");
                rest = after[end + 1..]
                    .strip_prefix(',')
                    .unwrap_or(&after[end + 1..]);
            }
        }
        assert!(
            series.insert(format!("{name}{labels}"), value).is_none(),
            "a series twice: {line}"
        );
    }
    series
}

fn node(id: &str, host: &str, status: &str, sync: &str) -> Value {
    json!({"id": id, "hostname": host, "status": status, "sync_status": sync, "config_version": 7,
           "last_seen": 1_700_000_000, "cert_expiry": 1_800_000_000, "version": "1.0",
           "config_hash": "abc", "control_plane": "cp-1"})
}

#[test]
fn the_text_follows_the_format_and_names_every_node() {
    let counters = SyncCounters::default();
    counters.acked("delta", 300);
    counters.acked("full", 1000);
    counters.nacks.refused("too_large");
    counters.nacks.refused("too_large");
    counters
        .ack_latency
        .observe(std::time::Duration::from_millis(20));
    let times = crate::cluster::counters::EncodeTimes::default();
    times.delta.observe(std::time::Duration::from_micros(300));
    let cp = ControlPlane {
        name: "cp-1".into(),
        config_version: 9,
        connected: 1,
        counters: &counters,
        encode_times: &times,
        store_times: &Default::default(),
        change_log: (3, 1200),
    };
    let nodes = [
        node("a", "edge-1", "connected", "in_sync"),
        node("b", "we\"ird\\host\nname", "disconnected", "rejected"),
    ];
    let text = render(&cp, &census_of(&nodes), Some(&nodes));
    let series = parse(&text);
    let get = |s: &str| *series.get(s).unwrap_or_else(|| panic!("{s} in\n{text}"));
    assert_eq!(get("portcullis_cp_config_version"), 9.0);
    assert_eq!(
        get("portcullis_cp_data_planes_connected{control_plane=\"cp-1\"}"),
        1.0
    );
    assert_eq!(
        get("portcullis_cp_data_planes{status=\"disconnected\",sync_status=\"rejected\"}"),
        1.0
    );
    assert_eq!(
        get("portcullis_cp_data_planes{status=\"connected\",sync_status=\"behind\"}"),
        0.0
    );
    assert_eq!(
        get("portcullis_cp_config_received_bytes_total{control_plane=\"cp-1\",kind=\"delta\"}"),
        300.0
    );
    assert_eq!(
        get("portcullis_cp_config_nacks_total{control_plane=\"cp-1\",reason=\"too_large\"}"),
        2.0
    );
    let encoded = |kind: &str, le: &str| {
        get(&format!(
            "portcullis_cp_config_encode_seconds_bucket{{control_plane=\"cp-1\",kind=\"{kind}\",le=\"{le}\"}}"
        ))
    };
    assert_eq!(encoded("delta", "0.00025"), 0.0);
    assert_eq!(encoded("delta", "0.0005"), 1.0);
    assert_eq!(encoded("delta", "+Inf"), 1.0);
    assert_eq!(encoded("full", "+Inf"), 0.0);
    assert_eq!(
        get("portcullis_cp_store_write_seconds_count{control_plane=\"cp-1\",operation=\"commit\"}"),
        0.0
    );
    assert_eq!(
        get("portcullis_cp_config_encode_seconds_count{control_plane=\"cp-1\",kind=\"full_zstd\"}"),
        0.0
    );
    assert_eq!(
        get("portcullis_cp_config_ack_seconds_bucket{control_plane=\"cp-1\",le=\"0.01\"}"),
        0.0
    );
    assert_eq!(
        get("portcullis_cp_config_ack_seconds_bucket{control_plane=\"cp-1\",le=\"0.025\"}"),
        1.0
    );
    assert_eq!(
        get("portcullis_cp_config_ack_seconds_count{control_plane=\"cp-1\"}"),
        1.0
    );
    assert_eq!(
        get("portcullis_cp_change_log_bytes{control_plane=\"cp-1\"}"),
        1200.0
    );
    assert_eq!(
        get("portcullis_cp_data_plane_sync_status{node=\"a\",hostname=\"edge-1\",sync_status=\"in_sync\"}"),
        1.0
    );
    let weird = "we\\\"ird\\\\host\\nname";
    assert_eq!(
        get(&format!(
            "portcullis_cp_data_plane_connected{{node=\"b\",hostname=\"{weird}\"}}"
        )),
        0.0
    );
    assert_eq!(
        get("portcullis_cp_data_plane_cert_expiry_timestamp_seconds{node=\"a\",hostname=\"edge-1\"}"),
        1.8e9
    );
    // Without per-node series, only the totals.
    let totals = render(&cp, &census_of(&nodes), None);
    parse(&totals);
    assert!(!totals.contains("portcullis_cp_data_plane_"), "{totals}");
}
