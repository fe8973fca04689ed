//! Route parsing: matching fields (methods, hosts with a wildcard label and a port, paths as prefixes or
//! regular expressions, headers), Kong's defaults and the Service reference.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde_json::Value;

use super::{
    finish, read_common, read_name, read_ref, validate_host_name, Kind, ParseCtx, References,
    Route, RouteList,
};
use crate::error::StateError;
use crate::http_syntax;
use crate::keyword::Keyword;
use crate::protocol::{mixes_families, Protocol, MIXED_FAMILIES};
use crate::schema::Fields;

const METHOD_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Kong's Route fields this gateway does not match on; shown as `null` ([`crate::Entity::to_public_json`]).
pub const UNMATCHED: [&str; 3] = ["snis", "sources", "destinations"];

impl Route {
    /// Parses and validates a Route; `service` may be forced by a nested endpoint.
    pub fn parse(v: &Value, ctx: &ParseCtx<'_>) -> Result<Route, StateError> {
        let mut f = Fields::new(v, "")?;
        let mut refs = References::new();
        let (id, tags, created_at) = read_common(&mut f, ctx);
        let name = read_name(&mut f);
        let protocols = f
            .opt_many_of("protocols", &Protocol::names())
            .unwrap_or_else(|| vec!["http".into(), "https".into()]);
        if protocols.is_empty() {
            f.error("protocols", "length must be at least 1");
        }
        let typed: Vec<Protocol> = protocols
            .iter()
            .filter_map(|p| Protocol::parse(p))
            .collect();
        if mixes_families(&typed) {
            f.error("protocols", MIXED_FAMILIES);
        }
        // gRPC Routes (Kong's rules): no methods, and the path is never stripped.
        let grpc = typed.iter().any(|p| p.is_grpc());
        let methods = f.strings("methods");
        for (i, m) in methods.iter().enumerate() {
            if m.is_empty() || !m.chars().all(|c| METHOD_CHARS.contains(c)) {
                f.error(
                    &format!("methods.{}", i + 1),
                    "invalid value: methods are uppercase letters",
                );
            }
        }
        let hosts = f.strings("hosts");
        for (i, h) in hosts.iter().enumerate() {
            if let Err(msg) = validate_route_host(h) {
                f.error(&format!("hosts.{}", i + 1), msg);
            }
        }
        let paths = f.strings("paths");
        for (i, p) in paths.iter().enumerate() {
            if let Err(msg) = validate_route_path(p) {
                f.error(&format!("paths.{}", i + 1), msg);
            }
        }
        let mut headers = BTreeMap::new();
        if let Some(raw) = f.raw("headers") {
            match raw {
                Value::Object(m) => {
                    for (k, v) in m {
                        let values: Option<Vec<String>> = match v {
                            Value::String(s) => Some(vec![s.clone()]),
                            Value::Array(a) => {
                                a.iter().map(|x| x.as_str().map(str::to_string)).collect()
                            }
                            _ => None,
                        };
                        match values {
                            Some(vals) if !vals.is_empty() => {
                                let field = format!("headers.{k}");
                                f.check(
                                    &field,
                                    k,
                                    http_syntax::is_header_name,
                                    http_syntax::INVALID_HEADER_NAME,
                                );
                                for v in &vals {
                                    f.check(
                                        &field,
                                        v,
                                        http_syntax::is_header_value,
                                        http_syntax::INVALID_HEADER_VALUE,
                                    );
                                }
                                if k.eq_ignore_ascii_case("host") {
                                    f.error(&format!("headers.{k}"), "cannot contain 'host' header, which must be specified in the 'hosts' attribute");
                                }
                                headers.insert(k.to_ascii_lowercase(), vals);
                            }
                            _ => f.error(&format!("headers.{k}"), "expected an array of strings"),
                        }
                    }
                }
                _ => f.error("headers", "expected a map"),
            }
        }
        let regex_priority = f.int_or("regex_priority", i32::MIN as i64, i32::MAX as i64, 0);
        if grpc && !methods.is_empty() {
            f.error(
                "methods",
                "cannot set 'methods' when 'protocols' is 'grpc' or 'grpcs'",
            );
        }
        let strip_path = match f.opt_bool("strip_path") {
            Some(true) if grpc => {
                f.error(
                    "strip_path",
                    "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'",
                );
                true
            }
            Some(strip) => strip,
            None => !grpc,
        };
        let preserve_host = f.bool_or("preserve_host", false);
        let path_handling = f
            .opt_one_of("path_handling", &["v0", "v1"])
            .unwrap_or_else(|| "v0".into());
        let https_redirect_status_code = f.int_or("https_redirect_status_code", 0, 999, 426) as u16;
        if ![426, 301, 302, 307, 308].contains(&https_redirect_status_code) {
            f.error(
                "https_redirect_status_code",
                "expected one of: 426, 301, 302, 307, 308",
            );
        }
        let request_buffering = f.bool_or("request_buffering", true);
        let response_buffering = f.bool_or("response_buffering", true);
        // Kong's routes also match on TLS server names and stream addresses; a Route here matches
        // neither, so those fields may be sent only empty (as a Route read back shows them).
        for field in UNMATCHED {
            match f.raw(field) {
                None => {}
                Some(Value::Array(items)) if items.is_empty() => {}
                Some(_) => f.error(
                    field,
                    "not supported: routes do not match on TLS server names or stream addresses",
                ),
            }
        }
        let service = read_ref(&mut f, &mut refs, ctx, "service", Kind::Service);
        if hosts.is_empty()
            && paths.is_empty()
            && headers.is_empty()
            && (grpc || methods.is_empty())
        {
            f.error("@entity", nothing_to_match(&protocols, grpc));
        }
        let route = Route {
            id,
            name,
            protocols,
            methods,
            hosts,
            paths,
            headers,
            regex_priority,
            strip_path,
            preserve_host,
            path_handling,
            https_redirect_status_code,
            request_buffering,
            response_buffering,
            service,
            tags,
            created_at,
            updated_at: ctx.now,
            given_empty: given_empty(v),
        };
        finish(f, refs, route)
    }
}

/// The list fields `v` gives as an empty array (or Kong's `{}`, which Lua's JSON cannot tell from one).
fn given_empty(v: &Value) -> BTreeSet<RouteList> {
    RouteList::ALL
        .iter()
        .copied()
        .filter(|l| match v.get(l.as_str()) {
            Some(Value::Array(items)) => items.is_empty(),
            Some(Value::Object(map)) => map.is_empty(),
            _ => false,
        })
        .collect()
}

/// Checks a route host: a hostname, optionally with one leading or trailing `*` label and a port.
fn validate_route_host(h: &str) -> Result<(), &'static str> {
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) if !n.contains(':') => (n, Some(p)),
        _ => (h, None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return Err("invalid port number");
        }
    }
    validate_host_name(name)
}

/// Checks a route path: a prefix starting with `/`, or a regex starting with `~`.
fn validate_route_path(p: &str) -> Result<(), String> {
    if let Some(re) = p.strip_prefix('~') {
        return Regex::new(re)
            .map(|_| ())
            .map_err(|e| format!("invalid regex: '{re}': {e}"));
    }
    if !p.starts_with('/') {
        return Err("should start with: / (fixed path) or ~/ (regex path)".into());
    }
    if p.contains("//") {
        return Err("must not have empty segments".into());
    }
    if !http_syntax::is_header_value(p) || p.contains(' ') {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(())
}

/// Kong's message for a Route that matches on nothing: the fields that would do, for the protocol its
/// check is about (the secure one when listed, whose list adds `snis`).
fn nothing_to_match(protocols: &[String], grpc: bool) -> String {
    let (plain, secure) = match (grpc, protocols.iter().any(|p| p.starts_with("ws"))) {
        (true, _) => ("grpc", "grpcs"),
        (false, true) => ("ws", "wss"),
        (false, false) => ("http", "https"),
    };
    let tls = protocols.iter().any(|p| p == secure);
    let mut fields = if grpc { vec![] } else { vec!["'methods'"] };
    fields.extend(["'hosts'", "'headers'", "'paths'"]);
    if tls {
        fields.push("'snis'");
    }
    let protocol = if tls { secure } else { plain };
    format!(
        "must set one of {} when 'protocols' is '{protocol}'",
        fields.join(", ")
    )
}
