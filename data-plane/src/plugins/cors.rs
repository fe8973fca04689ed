//! `cors`: answers CORS preflights itself, before any authentication (Kong's priority 2000), and adds
//! the CORS fields to every other answer of the route, the refusals of later plugins included, so a
//! browser app can read a 401 too. Origins are matched as Kong matches them: `*`; an exact origin,
//! compared after normalising (scheme, host, port without its default); or a regular expression matched
//! whole, against the origin's host when the expression has no `:`, else against the whole origin.

use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::StatusCode;
use regex::Regex;
use shared::plugins::cors::{is_regex_origin, Config};

use super::exchange::Exchange;
use super::instance::BuildCtx;
use super::plugin::Plugin;
use super::refusal::Refusal;

static ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");
static REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");

/// One configured instance, its field values made once.
pub struct Cors {
    origins: Origins,
    credentials: bool,
    preflight_continue: bool,
    allow_origin_absent: bool,
    private_network: bool,
    allow_headers: Option<HeaderValue>,
    allow_methods: HeaderValue,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

/// The configured origins.
enum Origins {
    /// No origin, or `*` alone: `Access-Control-Allow-Origin: *`.
    Any,
    /// One exact origin: sent as it is, whatever the request's origin.
    One(HeaderValue),
    /// Several, or an expression: the request's origin when one matches.
    Listed(Vec<Rule>),
}

enum Rule {
    Any,
    Exact(String),
    Pattern { re: Regex, by_host: bool },
}

/// Builds an instance from its plugin entity.
pub fn build(p: &shared::Plugin, ctx: &BuildCtx) -> Result<Arc<dyn Plugin>, String> {
    let config = Config::parse(&p.config, ctx.state.as_ref())
        .map_err(|e| format!("invalid config: {}", e.summary()))?;
    let value = |s: String| {
        HeaderValue::from_str(&s).map_err(|_| format!("'{s}' cannot be a header field value"))
    };
    let joined = |items: &[String]| {
        (!items.is_empty())
            .then(|| value(items.join(",")))
            .transpose()
    };
    let origins = match config.origins.as_slice() {
        [] => Origins::Any,
        [only] if only == "*" => Origins::Any,
        [only] if !is_regex_origin(only) => Origins::One(value(only.clone())?),
        many => Origins::Listed(many.iter().map(|o| rule(o)).collect::<Result<_, _>>()?),
    };
    Ok(Arc::new(Cors {
        origins,
        credentials: config.credentials,
        preflight_continue: config.preflight_continue,
        allow_origin_absent: config.allow_origin_absent,
        private_network: config.private_network,
        allow_headers: joined(&config.headers)?,
        allow_methods: value(config.methods.join(","))?,
        expose_headers: joined(&config.exposed_headers)?,
        max_age: config.max_age.map(HeaderValue::from),
    }))
}

fn rule(origin: &str) -> Result<Rule, String> {
    if origin == "*" {
        return Ok(Rule::Any);
    }
    if !is_regex_origin(origin) {
        return Ok(Rule::Exact(normalize(origin).0));
    }
    // Matched whole: anchored at both ends, whether or not the expression says so.
    let body = origin.strip_prefix('^').unwrap_or(origin);
    let body = body.strip_suffix('$').unwrap_or(body);
    let re = Regex::new(&format!("^(?:{body})$"))
        .map_err(|e| format!("origin '{origin}' is not a valid regex: {e}"))?;
    Ok(Rule::Pattern {
        re,
        by_host: !origin.contains(':'),
    })
}

/// An origin as compared: `scheme://host[:port]` without the scheme's default port, and its host. Text
/// that is not a URL is both.
fn normalize(origin: &str) -> (String, String) {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return (origin.to_string(), origin.to_string());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (authority, None),
    };
    let scheme = scheme.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let port = port.filter(|p| !matches!((scheme.as_str(), *p), ("http", "80") | ("https", "443")));
    let domain = match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    };
    (domain, host)
}

fn origin(ex: &Exchange) -> Option<&HeaderValue> {
    ex.origin.as_ref()
}

/// The fields an answer gets, in the order they are decided.
type Out = Vec<(HeaderName, HeaderValue)>;

impl Cors {
    /// `Access-Control-Allow-Origin` (and `Vary: Origin` unless every origin is allowed); true when
    /// every origin is.
    fn allow_origin(&self, req_origin: Option<&HeaderValue>, out: &mut Out) -> bool {
        let matched = match &self.origins {
            Origins::Any => {
                out.push((
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                ));
                return true;
            }
            Origins::One(o) => Some(Match::Origin(o.clone())),
            Origins::Listed(rules) => req_origin
                .and_then(|o| o.to_str().ok())
                .and_then(|o| self.first_match(rules, o)),
        };
        out.push((header::VARY, HeaderValue::from_static("Origin")));
        match matched {
            Some(Match::All) => {
                out.retain(|(n, _)| n != header::VARY);
                out.push((
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                ));
                return true;
            }
            Some(Match::Origin(o)) => out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, o)),
            None => {}
        }
        false
    }

    fn first_match(&self, rules: &[Rule], req_origin: &str) -> Option<Match> {
        let (domain, host) = normalize(req_origin);
        rules.iter().find_map(|r| {
            let found = match r {
                Rule::Any => return Some(Match::All),
                Rule::Exact(e) => *e == domain,
                Rule::Pattern { re, by_host } => {
                    re.is_match(if *by_host { &host } else { &domain })
                }
            };
            match found {
                true => HeaderValue::from_str(&domain).ok().map(Match::Origin),
                false => None,
            }
        })
    }

    /// `Access-Control-Allow-Credentials`; with every origin allowed, the request's origin replaces `*`,
    /// which browsers refuse beside credentials.
    fn allow_credentials(&self, all: bool, req_origin: Option<&HeaderValue>, out: &mut Out) {
        if !self.credentials {
            return;
        }
        let yes = (
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        match (all, req_origin) {
            (false, _) => out.push(yes),
            (true, Some(o)) => {
                out.retain(|(n, _)| n != header::ACCESS_CONTROL_ALLOW_ORIGIN);
                out.push((header::VARY, HeaderValue::from_static("Origin")));
                out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone()));
                out.push(yes);
            }
            (true, None) => {}
        }
    }

    /// The answer to a preflight.
    fn preflight(&self, ex: &Exchange) -> Refusal {
        let req_origin = origin(ex);
        let mut out = Out::new();
        let all = self.allow_origin(req_origin, &mut out);
        self.allow_credentials(all, req_origin, &mut out);
        let requested = ex.parts.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS);
        if let Some(h) = self.allow_headers.as_ref().or(requested) {
            out.push((header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
        }
        out.push((
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.clone(),
        ));
        if let Some(age) = &self.max_age {
            out.push((header::ACCESS_CONTROL_MAX_AGE, age.clone()));
        }
        if self.private_network
            && ex
                .parts
                .headers
                .get(&REQUEST_PRIVATE_NETWORK)
                .map(|v| v.as_bytes())
                == Some(b"true")
        {
            out.push((
                ALLOW_PRIVATE_NETWORK.clone(),
                HeaderValue::from_static("true"),
            ));
        }
        out.into_iter().fold(
            Refusal::empty(StatusCode::OK, "preflight"),
            |answer, (name, value)| answer.with_field(name, value),
        )
    }
}

enum Match {
    All,
    Origin(HeaderValue),
}

#[async_trait::async_trait]
impl Plugin for Cors {
    async fn access(&self, ex: &mut Exchange) -> Result<(), Refusal> {
        if !ex.preflight || self.preflight_continue {
            return Ok(());
        }
        Err(self.preflight(ex))
    }

    fn header_filter(&self, ex: &Exchange, resp: &mut http::response::Parts) {
        // A preflight the upstream answered keeps the upstream's own fields.
        if ex.preflight {
            return;
        }
        let req_origin = origin(ex);
        if req_origin.is_none() && !self.allow_origin_absent {
            return;
        }
        let mut out = Out::new();
        let all = self.allow_origin(req_origin, &mut out);
        self.allow_credentials(all, req_origin, &mut out);
        if let Some(exposed) = &self.expose_headers {
            out.push((header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed.clone()));
        }
        let headers = &mut resp.headers;
        headers.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        for (name, value) in out {
            match name == header::VARY {
                true if has_vary_origin(headers) => {}
                true => {
                    headers.append(name, value);
                }
                false => {
                    headers.insert(name, value);
                }
            }
        }
    }
}

fn has_vary_origin(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("origin"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_before_they_are_compared() {
        assert_eq!(
            normalize("https://App.Example.com:443").0,
            "https://app.example.com"
        );
        assert_eq!(normalize("http://a.test:8080/x").0, "http://a.test:8080");
        assert_eq!(normalize("null"), ("null".into(), "null".into()));
    }

    #[test]
    fn patterns_match_whole_hosts_or_whole_origins() {
        let Rule::Pattern { re, by_host } = rule(r".*\.example\.com").unwrap() else {
            panic!()
        };
        assert!(by_host && re.is_match("api.example.com"));
        assert!(!re.is_match("api.example.com.evil.test"));
        let Rule::Pattern { re, by_host } = rule(r"^https://[a-z]+\.test:8443$").unwrap() else {
            panic!()
        };
        assert!(!by_host && re.is_match("https://app.test:8443"));
    }
}
