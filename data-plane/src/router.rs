//! Route matching with Kong's semantics: hosts (exact and wildcard), paths (prefix and `~` regex), methods
//! and headers, ordered by Kong's priority rules. Built once per snapshot, off the request path.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use regex::Regex;
use shared::Route;
use uuid::Uuid;

#[derive(Debug, Clone)]
enum HostMatch {
    Exact(String),
    /// `*.example.com`: the suffix including the dot.
    AnyPrefix(String),
    /// `example.*`: the prefix including the dot.
    AnySuffix(String),
}

#[derive(Debug, Clone)]
enum PathMatch {
    Any,
    Prefix(String),
    Regex(Regex),
}

/// One (route, path) pair to try.
#[derive(Debug)]
struct Candidate {
    route: Arc<CompiledRoute>,
    path: PathMatch,
    /// Kong's ordering key; smaller sorts first.
    key: PriorityKey,
}

/// Categories, category weight, plain host, header count, path kind, regex priority, prefix length,
/// creation time, id.
type PriorityKey = (
    Reverse<u8>,
    Reverse<u8>,
    Reverse<bool>,
    Reverse<usize>,
    u8,
    Reverse<i64>,
    Reverse<usize>,
    i64,
    Uuid,
);

#[derive(Debug)]
struct CompiledRoute {
    id: Uuid,
    hosts: Vec<(HostMatch, Option<u16>)>,
    methods: Vec<String>,
    headers: Vec<(String, Vec<String>)>,
    /// The lists this route's candidates are in (to take them out when the route changes).
    lists: Vec<ListKey>,
}

/// Which candidate list: one per exact host, one per first path segment, and the rest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ListKey {
    Host(String),
    Segment(String),
    AnyHost,
}

/// A candidate list in priority order, shared between router versions until it changes.
type List = Arc<Vec<Arc<Candidate>>>;

/// What matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The matched route.
    pub route_id: Uuid,
    /// How many leading bytes of the path the route's path matched (for `strip_path`).
    pub matched_len: usize,
}

/// The request attributes routing looks at.
pub struct RequestInfo<'a> {
    pub method: &'a str,
    /// Host without port, lowercase.
    pub host: &'a str,
    pub port: Option<u16>,
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
}

/// A compiled router. Its maps are persistent: [`Router::updated`] builds the next router from this one
/// by recompiling only the routes that changed and re-merging only the lists they are in.
#[derive(Debug, Default, Clone)]
pub struct Router {
    routes: imbl::HashMap<Uuid, Arc<CompiledRoute>>,
    /// Candidates of routes whose hosts are all exact, indexed by each host.
    by_host: imbl::HashMap<String, List>,
    /// Candidates that every host may match whose prefix path starts with a complete segment (`/seg/…`),
    /// indexed by that segment.
    by_segment: imbl::HashMap<String, List>,
    /// Every other candidate that any host may match (no host, or a wildcard host).
    any_host: List,
}

impl Router {
    /// Compiles `routes`; a route whose regex does not compile is reported (the CP validated it already).
    pub fn build<'a>(routes: impl IntoIterator<Item = &'a Route>) -> Result<Router, String> {
        Router::default().updated(&[], routes)
    }

    /// The router with the routes `removed` taken out and `added` put in (an added route replaces the one
    /// with its id). Only the candidate lists these routes are in are rebuilt; the others are shared.
    pub fn updated<'a>(
        &self,
        removed: &[Uuid],
        added: impl IntoIterator<Item = &'a Route>,
    ) -> Result<Router, String> {
        let mut next = self.clone();
        let mut gone: HashSet<Uuid> = removed.iter().copied().collect();
        let mut touched: HashSet<ListKey> = HashSet::new();
        let mut fresh: HashMap<ListKey, Vec<Arc<Candidate>>> = HashMap::new();
        for r in added {
            gone.insert(r.id);
            let (route, candidates) = compile(r)?;
            for (list, c) in candidates {
                touched.insert(list.clone());
                fresh.entry(list).or_default().push(c);
            }
            next.routes.insert(r.id, route);
        }
        for id in removed {
            next.routes.remove(id);
        }
        for id in &gone {
            if let Some(old) = self.routes.get(id) {
                touched.extend(old.lists.iter().cloned());
            }
        }
        for list in touched {
            let mut add = fresh.remove(&list).unwrap_or_default();
            add.sort_by_key(|c| c.key);
            let old = next.list(&list);
            let mut merged = Vec::with_capacity(old.len() + add.len());
            let mut add = add.into_iter().peekable();
            for c in old.iter().filter(|c| !gone.contains(&c.route.id)) {
                while let Some(a) = add.next_if(|a| a.key < c.key) {
                    merged.push(a);
                }
                merged.push(c.clone());
            }
            merged.extend(add);
            next.set_list(list, merged);
        }
        Ok(next)
    }

    fn list(&self, key: &ListKey) -> List {
        match key {
            ListKey::Host(h) => self.by_host.get(h).cloned().unwrap_or_default(),
            ListKey::Segment(s) => self.by_segment.get(s).cloned().unwrap_or_default(),
            ListKey::AnyHost => self.any_host.clone(),
        }
    }

    fn set_list(&mut self, key: ListKey, list: Vec<Arc<Candidate>>) {
        match key {
            ListKey::Host(h) if list.is_empty() => {
                self.by_host.remove(&h);
            }
            ListKey::Host(h) => {
                self.by_host.insert(h, Arc::new(list));
            }
            ListKey::Segment(s) if list.is_empty() => {
                self.by_segment.remove(&s);
            }
            ListKey::Segment(s) => {
                self.by_segment.insert(s, Arc::new(list));
            }
            ListKey::AnyHost => self.any_host = Arc::new(list),
        }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Finds the highest-priority route matching the request.
    pub fn find(&self, req: &RequestInfo<'_>) -> Option<Match> {
        let empty: &[Arc<Candidate>] = &[];
        let host_list = self
            .by_host
            .get(req.host)
            .map(|l| l.as_slice())
            .unwrap_or(empty);
        let segment_list = first_segment(req.path)
            .and_then(|seg| self.by_segment.get(seg))
            .map(|l| l.as_slice())
            .unwrap_or(empty);
        // Each list is in global priority order; merging them tries candidates in that order.
        let lists = [host_list, segment_list, self.any_host.as_slice()];
        let mut pos = [0usize; 3];
        loop {
            let mut best: Option<(usize, &Candidate)> = None;
            for (l, list) in lists.iter().enumerate() {
                if let Some(c) = list.get(pos[l]) {
                    if best.is_none_or(|(_, b)| c.key < b.key) {
                        best = Some((l, c));
                    }
                }
            }
            let (l, next) = best?;
            pos[l] += 1;
            if let Some(m) = try_candidate(next, req) {
                return Some(m);
            }
        }
    }
}

/// Compiles one route into its matcher and its candidates with the lists they go in.
/// A compiled route and its candidates, each with the list it goes in.
type Compiled = (Arc<CompiledRoute>, Vec<(ListKey, Arc<Candidate>)>);

fn compile(r: &Route) -> Result<Compiled, String> {
    let hosts = r
        .hosts
        .iter()
        .map(|h| {
            let (name, port) = match h.rsplit_once(':') {
                Some((n, p)) if p.parse::<u16>().is_ok() => {
                    (n.to_ascii_lowercase(), p.parse().ok())
                }
                _ => (h.to_ascii_lowercase(), None),
            };
            let m = if let Some(s) = name.strip_prefix('*') {
                HostMatch::AnyPrefix(s.to_string())
            } else if let Some(p) = name.strip_suffix('*') {
                HostMatch::AnySuffix(p.to_string())
            } else {
                HostMatch::Exact(name)
            };
            (m, port)
        })
        .collect::<Vec<_>>();
    let plain_host = hosts.iter().any(|(h, _)| matches!(h, HostMatch::Exact(_)));
    let exact_only =
        !hosts.is_empty() && hosts.iter().all(|(h, _)| matches!(h, HostMatch::Exact(_)));
    // Kong weighs categories: hosts 0x40, headers 0x20, paths 0x10, methods 0x08; with as many
    // categories, the heavier set wins.
    let flags = [
        (!r.hosts.is_empty(), 0x40u8),
        (!r.headers.is_empty(), 0x20),
        (!r.paths.is_empty(), 0x10),
        (!r.methods.is_empty(), 0x08),
    ];
    let categories = flags.iter().filter(|(set, _)| *set).count() as u8;
    let bits = flags
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, b)| b)
        .sum::<u8>();
    let mut paths = Vec::new();
    for p in &r.paths {
        if let Some(re) = p.strip_prefix('~') {
            let re = Regex::new(&format!("^(?:{re})"))
                .map_err(|e| format!("route {}: invalid regex path '{p}': {e}", r.id))?;
            paths.push((PathMatch::Regex(re), 0u8, p.len()));
        } else {
            paths.push((PathMatch::Prefix(p.clone()), 1u8, p.len()));
        }
    }
    if paths.is_empty() {
        paths.push((PathMatch::Any, 2u8, 0));
    }
    let mut placed = Vec::new();
    for (path, kind, len) in paths {
        // Kong: more matching attributes first, then the heavier attributes; plain hosts before
        // wildcards; more headers first; regex paths (by regex_priority) before prefix paths (longest
        // first); then oldest first.
        let (prio, plen) = match kind {
            0 => (r.regex_priority, 0),
            _ => (0, len),
        };
        let key = (
            Reverse(categories),
            Reverse(bits),
            Reverse(plain_host),
            Reverse(r.headers.len()),
            kind,
            Reverse(prio),
            Reverse(plen),
            r.created_at,
            r.id,
        );
        let lists: Vec<ListKey> = if exact_only {
            let mut hosts_seen = Vec::new();
            for (h, _) in &hosts {
                if let HostMatch::Exact(name) = h {
                    if !hosts_seen.contains(name) {
                        hosts_seen.push(name.clone());
                    }
                }
            }
            hosts_seen.into_iter().map(ListKey::Host).collect()
        } else if let Some(seg) = indexable_segment(&path) {
            vec![ListKey::Segment(seg.to_string())]
        } else {
            vec![ListKey::AnyHost]
        };
        placed.push((lists, path, key));
    }
    let route = Arc::new(CompiledRoute {
        id: r.id,
        hosts,
        methods: r.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.iter().map(|x| x.to_ascii_lowercase()).collect(),
                )
            })
            .collect(),
        lists: {
            let mut all: Vec<ListKey> = placed.iter().flat_map(|(l, _, _)| l.clone()).collect();
            all.dedup();
            all
        },
    });
    let mut candidates = Vec::new();
    for (lists, path, key) in placed {
        let c = Arc::new(Candidate {
            route: route.clone(),
            path,
            key,
        });
        for l in lists {
            candidates.push((l, c.clone()));
        }
    }
    Ok((route, candidates))
}

fn try_candidate(c: &Candidate, req: &RequestInfo<'_>) -> Option<Match> {
    let route = &c.route;
    if !route.methods.is_empty() && !route.methods.iter().any(|m| m == req.method) {
        return None;
    }
    if !route.hosts.is_empty()
        && !route
            .hosts
            .iter()
            .any(|(h, port)| host_matches(h, *port, req))
    {
        return None;
    }
    for (name, values) in &route.headers {
        let ok = req.headers.get_all(name.as_str()).iter().any(|v| {
            v.to_str()
                .map(|s| values.iter().any(|x| x.eq_ignore_ascii_case(s.trim())))
                .unwrap_or(false)
        });
        if !ok {
            return None;
        }
    }
    let matched_len = match &c.path {
        PathMatch::Any => 0,
        PathMatch::Prefix(p) => {
            if req.path.starts_with(p.as_str()) {
                p.len()
            } else {
                return None;
            }
        }
        PathMatch::Regex(re) => re.find(req.path)?.end(),
    };
    Some(Match {
        route_id: route.id,
        matched_len,
    })
}

/// The first segment of a prefix path when the prefix ends it with `/` (`/seg/…`), so that only request
/// paths starting with exactly that segment can match.
fn indexable_segment(p: &PathMatch) -> Option<&str> {
    let PathMatch::Prefix(prefix) = p else {
        return None;
    };
    first_segment(prefix).filter(|seg| !seg.is_empty())
}

/// The first segment of a request path, when another `/` follows it.
fn first_segment(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    rest.split_once('/').map(|(seg, _)| seg)
}

fn host_matches(h: &HostMatch, port: Option<u16>, req: &RequestInfo<'_>) -> bool {
    if port.is_some() && port != req.port {
        return false;
    }
    match h {
        HostMatch::Exact(name) => name == req.host,
        HostMatch::AnyPrefix(suffix) => {
            req.host.len() > suffix.len() && req.host.ends_with(suffix.as_str())
        }
        HostMatch::AnySuffix(prefix) => {
            req.host.len() > prefix.len() && req.host.starts_with(prefix.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shared::{ConfigState, ParseCtx};

    fn route(n: u128, v: serde_json::Value) -> Route {
        let state = ConfigState::default();
        let ctx = ParseCtx {
            id: Uuid::from_u128(n),
            now: n as i64,
            created_at: None,
            resolver: &state,
        };
        Route::parse(&v, &ctx).unwrap()
    }

    fn find(
        r: &Router,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<(u128, usize)> {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        r.find(&RequestInfo {
            method,
            host,
            port: Some(8000),
            path,
            headers: &h,
        })
        .map(|m| (m.route_id.as_u128(), m.matched_len))
    }

    #[test]
    fn kong_priority_rules() {
        let routes = vec![
            route(1, json!({"paths": ["/"]})),
            route(2, json!({"paths": ["/api"]})),
            route(3, json!({"paths": ["/api/v1"]})),
            route(4, json!({"paths": ["/api"], "hosts": ["example.com"]})),
            route(5, json!({"paths": ["/api"], "hosts": ["*.example.com"]})),
            route(
                6,
                json!({"paths": ["~/api/v[0-9]+/special"], "regex_priority": 5}),
            ),
            route(
                7,
                json!({"paths": ["/api"], "methods": ["POST"], "hosts": ["example.com"]}),
            ),
            route(
                8,
                json!({"paths": ["/api"], "headers": {"x-version": ["2"]}}),
            ),
            route(9, json!({"hosts": ["*.hosts.test"]})),
        ];
        let r = Router::build(&routes).unwrap();
        assert_eq!(find(&r, "GET", "other", "/x", &[]), Some((1, 1)));
        assert_eq!(find(&r, "GET", "other", "/api/x", &[]), Some((2, 4)));
        assert_eq!(
            find(&r, "GET", "other", "/api/v1/x", &[]),
            Some((3, 7)),
            "longest prefix wins"
        );
        assert_eq!(
            find(&r, "GET", "other", "/api/v1/special", &[]),
            Some((6, 15)),
            "regex before prefix"
        );
        assert_eq!(
            find(&r, "GET", "example.com", "/api", &[]),
            Some((4, 4)),
            "host adds an attribute"
        );
        assert_eq!(
            find(&r, "POST", "example.com", "/api", &[]),
            Some((7, 4)),
            "three attributes beat two"
        );
        assert_eq!(
            find(&r, "GET", "a.example.com", "/api", &[]),
            Some((5, 4)),
            "wildcard host"
        );
        assert_eq!(
            find(&r, "GET", "example.com.evil", "/api", &[]),
            Some((2, 4)),
            "exact host is exact"
        );
        assert_eq!(
            find(&r, "GET", "other", "/api", &[("X-Version", "2")]),
            Some((8, 4)),
            "header match"
        );
        assert_eq!(
            find(&r, "GET", "a.hosts.test", "/x", &[]),
            Some((9, 0)),
            "a host outweighs a path"
        );
    }

    #[test]
    fn regex_priority_orders_regexes() {
        let routes = vec![
            route(1, json!({"paths": ["~/users/\\d+"], "regex_priority": 1})),
            route(2, json!({"paths": ["~/users/1"], "regex_priority": 10})),
        ];
        let r = Router::build(&routes).unwrap();
        assert_eq!(find(&r, "GET", "h", "/users/12", &[]).map(|m| m.0), Some(2));
        assert_eq!(find(&r, "GET", "h", "/users/34", &[]).map(|m| m.0), Some(1));
        assert_eq!(
            find(&r, "GET", "h", "/x/users/1", &[]),
            None,
            "regex paths are anchored"
        );
    }

    #[test]
    fn no_match_is_none() {
        let r = Router::build(&[route(1, json!({"paths": ["/a"], "methods": ["GET"]}))]).unwrap();
        assert_eq!(find(&r, "POST", "h", "/a", &[]), None);
        assert_eq!(find(&r, "GET", "h", "/b", &[]), None);
    }

    #[test]
    fn segment_index_keeps_priority_and_prefix_semantics() {
        let routes = vec![
            route(1, json!({"paths": ["/api/v1/"]})),
            route(2, json!({"paths": ["/api"]})),
            route(3, json!({"paths": ["/api/v1/users/"]})),
            route(4, json!({"paths": ["~/api/v\\d+/special"]})),
            route(5, json!({"paths": ["/apix/"]})),
        ];
        let r = Router::build(&routes).unwrap();
        let find = |path: &str| find(&r, "GET", "h", path, &[]).map(|(id, _)| id);
        assert_eq!(
            find("/api/v1/users/7"),
            Some(3),
            "longest indexed prefix first"
        );
        assert_eq!(find("/api/v1/x"), Some(1));
        assert_eq!(
            find("/api/v2/special"),
            Some(4),
            "regex (not indexed) still beats prefixes"
        );
        assert_eq!(
            find("/api"),
            Some(2),
            "no second slash: only unindexed routes apply"
        );
        assert_eq!(find("/apix/1"), Some(5));
        assert_eq!(
            find("/apixy"),
            Some(2),
            "'/api' is a plain string prefix, as in Kong"
        );
        assert_eq!(find("/other"), None);
    }
}
