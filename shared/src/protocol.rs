//! The protocols Routes and Services speak, as Kong names them: HTTP, gRPC and WebSocket, each in clear
//! and over TLS. A Route's protocols come from one family only. A gRPC Route's requests are gRPC calls
//! (HTTP/2) and its Service may be reached over gRPC (h2c or h2 over TLS) or HTTP; a WebSocket Route
//! takes WebSocket handshakes only, and a WebSocket Service is reached over HTTP(S) with the upgrade.

use crate::keyword::Keyword;

crate::keywords! {
    /// A Route's or Service's protocol.
    pub enum Protocol { Grpc = "grpc", Grpcs = "grpcs", Http = "http", Https = "https", Ws = "ws", Wss = "wss" }
}

/// Protocols that go together on a Route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Http,
    Grpc,
    WebSocket,
}

impl Protocol {
    /// Whether it runs over TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Grpcs | Protocol::Wss)
    }

    /// Whether it is gRPC.
    pub fn is_grpc(self) -> bool {
        self.family() == Family::Grpc
    }

    pub fn family(self) -> Family {
        match self {
            Protocol::Http | Protocol::Https => Family::Http,
            Protocol::Grpc | Protocol::Grpcs => Family::Grpc,
            Protocol::Ws | Protocol::Wss => Family::WebSocket,
        }
    }
}

impl Family {
    /// The family's protocol over TLS or in clear.
    pub fn over(self, tls: bool) -> Protocol {
        match (self, tls) {
            (Family::Http, false) => Protocol::Http,
            (Family::Http, true) => Protocol::Https,
            (Family::Grpc, false) => Protocol::Grpc,
            (Family::Grpc, true) => Protocol::Grpcs,
            (Family::WebSocket, false) => Protocol::Ws,
            (Family::WebSocket, true) => Protocol::Wss,
        }
    }
}

impl Protocol {
    /// The port a Service of this protocol defaults to.
    pub fn default_port(self) -> u16 {
        if self.is_tls() {
            443
        } else {
            80
        }
    }
}

/// A set of protocols, as one byte: what a Route accepts or a plugin runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProtocolSet(u8);

impl ProtocolSet {
    fn bit(p: Protocol) -> u8 {
        1 << (p as u8)
    }

    /// The protocols among `names` (unknown names are left out: they were refused on write).
    pub fn of<S: AsRef<str>>(names: &[S]) -> ProtocolSet {
        ProtocolSet(
            names
                .iter()
                .filter_map(|n| Protocol::parse(n.as_ref()))
                .fold(0, |acc, p| acc | ProtocolSet::bit(p)),
        )
    }

    pub fn contains(self, p: Protocol) -> bool {
        self.0 & ProtocolSet::bit(p) != 0
    }

    /// The family of the set's protocols (a Route's are of one family): the first present, HTTP when
    /// empty.
    pub fn family(self) -> Family {
        Protocol::ALL
            .iter()
            .find(|p| self.contains(**p))
            .map_or(Family::Http, |p| p.family())
    }
}

/// Why a set of Route protocols mixes families.
pub const MIXED_FAMILIES: &str =
    "these sets are mutually exclusive: ('http', 'https'), ('grpc', 'grpcs'), ('ws', 'wss')";

/// Whether `protocols` mixes families.
pub fn mixes_families(protocols: &[Protocol]) -> bool {
    protocols.windows(2).any(|w| w[0].family() != w[1].family())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_tls_and_ports() {
        assert!(Protocol::Grpcs.is_tls() && Protocol::Grpcs.is_grpc());
        assert!(!Protocol::Http.is_grpc());
        assert_eq!(Family::Grpc.over(true), Protocol::Grpcs);
        assert_eq!(Family::Http.over(false), Protocol::Http);
        assert_eq!(Family::WebSocket.over(true), Protocol::Wss);
        assert_eq!(Protocol::Wss.default_port(), 443);
        assert!(mixes_families(&[Protocol::Ws, Protocol::Https]));
        assert_eq!(Protocol::Grpcs.default_port(), 443);
        assert_eq!(Protocol::Grpc.default_port(), 80);
        assert!(mixes_families(&[Protocol::Http, Protocol::Grpcs]));
        assert!(!mixes_families(&[Protocol::Grpc, Protocol::Grpcs]));
        assert_eq!(
            Protocol::names(),
            ["grpc", "grpcs", "http", "https", "ws", "wss"]
        );
        let set = ProtocolSet::of(&["grpcs", "https", "websocket"]);
        assert!(set.contains(Protocol::Grpcs) && set.contains(Protocol::Https));
        assert!(!set.contains(Protocol::Grpc) && !set.contains(Protocol::Ws));
        assert_eq!(set.family(), Family::Grpc);
        assert_eq!(ProtocolSet::of(&["wss"]).family(), Family::WebSocket);
        assert_eq!(ProtocolSet::default().family(), Family::Http);
    }
}
